// scripts/slurm/train.sbatch outside Slurm: srun/scancel/scontrol are stubs in PATH and dmtrain
// is a shell script that checkpoints (writes a line) and exits 130 on SIGUSR1, as the trainer
// does. Sending SIGUSR1 to the batch shell must relay it to dmtrain and then requeue the job.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "support/scratch_dir.hpp"

namespace fs = std::filesystem;

namespace {

void write_exe(const fs::path& p, const std::string& body) {
  std::ofstream(p) << "#!/bin/bash\n" << body;
  fs::permissions(p, fs::perms::owner_all);
}

}  // namespace

TEST(DistSlurmScript, Usr1CheckpointsThenRequeues) {
  const fs::path dir = dmtrain::test_support::scratch_dir("sbatch");
  const std::string d = dir.string();
  write_exe(dir / "srun", "echo \"srun $*\" >> " + d + "/log\nshift\nexec \"$@\"\n");
  // scancel fails, as outside a real allocation: the script falls back to signalling srun.
  write_exe(dir / "scancel", "echo \"scancel $*\" >> " + d + "/log\nexit 1\n");
  write_exe(dir / "scontrol", "echo \"scontrol $*\" >> " + d + "/log\n");
  write_exe(dir / "fakedm", "echo \"dmtrain $* NVLS=$NCCL_NVLS_ENABLE\" >> " + d +
                                "/log\ntrap 'echo checkpoint >> " + d +
                                "/log; exit 130' USR1\ntouch " + d +
                                "/started\nfor i in $(seq 200); do sleep 0.05; done\nexit 7\n");
  const std::string script = std::string(DMTRAIN_SOURCE_DIR) + "/scripts/slurm/train.sbatch";
  const std::string cmd = "cd " + d + " && (SLURM_JOB_ID=42 SLURM_JOB_NODELIST=n1 DMTRAIN=" + d +
                          "/fakedm PATH=" + d + ":$PATH bash " + script +
                          " cfg.yaml --set a=b > out 2>&1 & P=$!; i=0; while [ ! -f started ] "
                          "&& [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; kill -USR1 $P; "
                          "wait $P; echo rc=$? >> log)";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::ifstream in(dir / "log");
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ss.str(), "srun --kill-on-bad-exit=1 " + d +
                          "/fakedm --config cfg.yaml --resume auto --set a=b\n"
                          "dmtrain --config cfg.yaml --resume auto --set a=b NVLS=0\n"
                          "scancel --signal=USR1 42\n"
                          "checkpoint\n"
                          "scontrol requeue 42\n"
                          "rc=0\n");
  fs::remove_all(dir);
}
