// The subcommands of the dmtrain executable, one file each (apps/dmtrain/<name>_command.cpp).
// Each add_* registers its options and a callback on the CLI11 app; a callback throws
// dmtrain::Error for bad input, which main() turns into a one-line message and exit code 2.
// A subcommand reports its exit code through set_exit_code().
#pragma once
#include <CLI/CLI.hpp>

namespace dmtrain::app {

void set_exit_code(int code);
int exit_code();

// dmtrain --config FILE [--set k=v]... [--dry-run] [--resume auto|DIR] ...   (the main job)
void add_train_options(CLI::App& app);
int run_train();

// dmtrain schedule | sample | nll (schedule_command.cpp, sample_command.cpp, nll_command.cpp).
void add_schedule_command(CLI::App& app);
void add_sample_command(CLI::App& app);
void add_nll_command(CLI::App& app);

// dmtrain fid | consistency | landscape (fid_command.cpp, consistency_command.cpp,
// landscape_command.cpp): FID / Inception Score, the paper's consistency PSNR (Sec. 3.1) and its
// loss-landscape probes (Sec. 3.3).
void add_fid_command(CLI::App& app);
void add_consistency_command(CLI::App& app);
void add_landscape_command(CLI::App& app);

// dmtrain data prepare|verify|bench
void add_data_command(CLI::App& app);

// dmtrain sweep --config FILE --grid KEY=V1,V2 ... [--print] [--index I] [--summary]
void add_sweep_command(CLI::App& app);

// dmtrain bench --config FILE [--steps N] [--batch B]
void add_bench_command(CLI::App& app);

// dmtrain config keys [--format text|markdown]   (config_command.cpp; docs/config.md)
void add_config_command(CLI::App& app);

// dmtrain ema --run RUN_DIR --sigma-rel 0.05,0.10 [--step K] [--out DIR]   (ema_command.cpp):
// post-hoc EMA reconstruction from the snapshots of train.posthoc_ema (EDM2)
void add_ema_command(CLI::App& app);

// dmtrain compare --baseline RUN [RUN...] --arm NAME=RUN[,RUN...] [--arm ...] [--targets X,Y]
// [--csv F] [--markdown F]   (compare_command.cpp; sweep/compare.hpp): runs' FID curves compared
// as iterations to a target FID, with ratios, same-seed ratios and the baseline's noise floor
void add_compare_command(CLI::App& app);

// dmtrain export --run RUN_DIR [--weights ema:<rate>|raw|phema:<sigma_rel>] --out FILE
// (export_command.cpp): a run's weights as a plain state dict for Python, with the reference
// UNetModel's arguments beside it
void add_export_command(CLI::App& app);

}  // namespace dmtrain::app
