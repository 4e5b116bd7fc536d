// What a sweep knows of one of its runs from the run directory alone.
//
// A run is finished when its run dir says so, not when its metrics reached the last step: its
// config.yaml is the run's config, the newest checkpoint that verifies (checkpoint.hpp) is at
// train.iterations, and every final EMA export (ema_<rate>.pt and ema_<rate>.safetensors for each
// of train.ema_rates) is present and matches its checksum file. A run killed after its last
// metrics line, during the final checkpoint or the exports, is therefore unfinished, and its
// re-launch (--resume auto) completes it.
//
// other_config_problem(run_dir, cfg) is "" when the run dir holds no run yet (no config.yaml) or a
// run of the same configuration as `cfg` (every schema key but train.run_dir equal); otherwise it
// names the run dir and each key that differs ("optim.lr 0.0001 -> 0.0002", saved -> now), so a
// sweep re-launched with other values refuses to pass off the old runs as its own.
#pragma once
#include <string>

#include "dmtrain/config/run_config.hpp"

namespace dmtrain::sweep {

// "" when the run in `run_dir` finished, else why not ("no config.yaml", "newest valid checkpoint
// is iter 5 of 10", "ema_0.9999.pt is missing", ...).
std::string unfinished_reason(const std::string& run_dir);
std::string other_config_problem(const std::string& run_dir, const config::RunConfig& cfg);

}  // namespace dmtrain::sweep
