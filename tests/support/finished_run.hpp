// A run directory that says its run finished, made with the library's own writers and no
// training: config.yaml (train.iterations, train.ema_rates as given), a committed checkpoint at
// the last iteration, and each final EMA export (.pt and .safetensors, arbitrary bytes) with its
// checksum file. What sweep/run_status.hpp checks; the tests then break one part at a time.
#pragma once
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "dmtrain/checkpoint/checkpoint.hpp"
#include "dmtrain/config/load.hpp"
#include "dmtrain/ema/ema_files.hpp"
#include "dmtrain/util/file_hash.hpp"

namespace dmtrain::test_support {

inline config::RunConfig finished_run_config(const std::filesystem::path& dir, int64_t iterations) {
  config::RunConfig c;
  c.data.format = "synthetic";
  c.train.iterations = iterations;
  c.train.ema_rates = {0.9, 0.99};
  c.train.run_dir = dir.string();
  return c;
}

inline void make_finished_run_dir(const std::filesystem::path& dir, int64_t iterations,
                                  int64_t checkpoint_at = -1) {
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  const config::RunConfig c = finished_run_config(dir, iterations);
  std::ofstream(dir / "config.yaml") << config::dump_config(c);
  checkpoint::CheckpointWriter w((dir / "checkpoints").string(),
                                 checkpoint_at < 0 ? iterations : checkpoint_at);
  w.write("state.txt", [](const std::string& p) { std::ofstream(p) << "state"; });
  w.commit();
  for (const double rate : c.train.ema_rates) {
    for (const std::string& name :
         {ema::final_ema_file(rate), ema::final_ema_safetensors_file(rate)}) {
      std::ofstream(dir / name) << "weights of " << name;
      util::write_hash_sidecar((dir / name).string());
    }
  }
}

}  // namespace dmtrain::test_support
