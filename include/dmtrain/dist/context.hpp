// dmtrain::dist::Context: who this process is in a (possibly) multi-process job, read from the
// launcher's environment variables. Nothing here talks to other processes; it only decides rank,
// world size and rendezvous address so that a later process group (c10d TCPStore +
// ProcessGroupNCCL) can be built from it.
//
// Sources, first match wins:
//  1. torchrun (`torchrun --no-python`, or `dmtrain --nproc-per-node N`): RANK, WORLD_SIZE,
//     LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT, GROUP_RANK (node rank). Selected
//     when RANK or WORLD_SIZE is set; then both are required. LOCAL_RANK defaults to RANK and
//     LOCAL_WORLD_SIZE to WORLD_SIZE (one node). MASTER_ADDR and MASTER_PORT are required when
//     WORLD_SIZE > 1.
//  2. Slurm (`srun dmtrain ...`): SLURM_PROCID (rank), SLURM_NTASKS (world), SLURM_LOCALID,
//     SLURM_NODEID (node rank), SLURM_NTASKS_PER_NODE or else SLURM_TASKS_PER_NODE ("4(x2),2").
//     MASTER_ADDR if set, else the first host of SLURM_JOB_NODELIST (or SLURM_NODELIST) expanded
//     from Slurm's compressed form. MASTER_PORT if set, else kSlurmPortBase + SLURM_JOB_ID %
//     kSlurmPortSpan: every task of a job computes the same port without talking, and two jobs
//     sharing a node are unlikely to collide. Selected when SLURM_PROCID is set.
//  3. Neither: a single process (rank 0 of 1) that runs alone.
// Invariants of a returned Context: 0 <= rank < world_size, 0 <= local_rank < local_world_size
// <= world_size, 1 <= master_port <= 65535. Inconsistent or non-numeric values throw
// dmtrain::Error naming the variable and its value.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

namespace dmtrain::dist {

// Default rendezvous port of a Slurm job without MASTER_PORT: 20000 + SLURM_JOB_ID % 20000.
constexpr int kSlurmPortBase = 20000;
constexpr int kSlurmPortSpan = 20000;
// torchrun's default port; used by a single process (which never opens it) and by Slurm steps
// without SLURM_JOB_ID.
constexpr int kDefaultMasterPort = 29500;

struct Context {
  int rank = 0;
  int local_rank = 0;
  int world_size = 1;
  int local_world_size = 1;
  int node_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = kDefaultMasterPort;
  // Where the values came from: "single", "torchrun" or "slurm" (for logs).
  std::string source = "single";

  bool distributed() const { return world_size > 1; }
  bool is_main() const { return rank == 0; }
};

using Getenv = std::function<const char*(const char*)>;

// Reads the launcher's variables through `getenv` (a fake one in tests). Throws dmtrain::Error.
Context from_env(const Getenv& getenv = ::getenv);

// Expands a Slurm node list ("gpu[01-03,07],cpu5" -> gpu01 gpu02 gpu03 gpu07 cpu5), keeping
// zero padding and allowing several bracket groups per name ("r[1-2]n[1-2]"). `variable` names
// the source in error messages. Throws dmtrain::Error on malformed input.
std::vector<std::string> expand_nodelist(const std::string& nodelist,
                                         const std::string& variable = "SLURM_JOB_NODELIST");

// Expands SLURM_TASKS_PER_NODE ("4(x2),2" -> 4 4 2). Throws dmtrain::Error on malformed input.
std::vector<int> expand_tasks_per_node(const std::string& value,
                                       const std::string& variable = "SLURM_TASKS_PER_NODE");

}  // namespace dmtrain::dist
