// dmtrain::dist::launch_local: the one-node launcher behind `dmtrain --nproc-per-node N`. It
// fork/execs N copies of the program with torchrun's environment (RANK, LOCAL_RANK, WORLD_SIZE,
// LOCAL_WORLD_SIZE, GROUP_RANK=0, MASTER_ADDR=127.0.0.1, MASTER_PORT) plus NCCL_NVLS_ENABLE=0
// unless the environment sets it (NVLink multicast stays off on our machines; a user's value
// wins), so each worker's dist::from_env sees a torchrun job.
//
// Contract:
//  - Each child runs in its own process group and dies with the launcher (PR_SET_PDEATHSIG), so
//    a terminal's Ctrl-C reaches the workers exactly once: the launcher forwards SIGINT, SIGTERM
//    and SIGUSR1 (the trainer checkpoints on SIGUSR1/SIGTERM) to every child's group.
//    (Side effect: workers are background jobs of a terminal; they must not read stdin.)
//  - When a child exits non-zero (or is killed by a signal: 128 + signo), the others get SIGTERM,
//    then SIGKILL after `grace_seconds`; a dead rank never leaves the rest hanging in a
//    collective. The launcher returns the first failing child's code, else 0.
//  - The launcher's own signal handlers are restored before it returns.
#pragma once
#include <string>
#include <vector>

namespace dmtrain::dist {

// Runs nproc copies of argv[0] (a path, or a name looked up in PATH) with argv[1..] minus any
// "--nproc-per-node N" / "--nproc-per-node=N"; master_port 0 picks a free port. Blocks until all
// children have exited. Throws dmtrain::Error for nproc < 1, an empty argv or a bad port.
int launch_local(int nproc, const std::vector<std::string>& argv, int master_port,
                 double grace_seconds = 10.0);

// A TCP port that is free on 127.0.0.1 right now (bind to port 0 and read it back). Another
// process could take it before the workers bind it; good enough for one machine's rendezvous.
int pick_free_port();

// argv without "--nproc-per-node N" and "--nproc-per-node=N" (what the workers receive).
std::vector<std::string> strip_nproc_flag(const std::vector<std::string>& argv);

}  // namespace dmtrain::dist
