// train(): the whole training run described by a RunConfig, in one readable function.
//
// Per iteration k (0-based) of K = train.iterations:
//   batch <- loader; (t, w_sampler) <- timestep sampler at k; w <- w_sampler * loss_weight(t);
//   loss <- mean(w * diffusion.training_losses(model, x0, t, noise)) under autocast;
//   backward (loss-scaled in fp16); skip the step if the loss or a gradient is not finite;
//   optional global-norm clipping; optimizer step with (beta1_k, lr_k); EMA update per rate;
//   loss-aware samplers see the per-example losses.
// Every log.every iterations a status line and a metrics.jsonl record; every
// checkpoint.every iterations, at the end, and on SIGINT/SIGTERM/SIGUSR1 an atomic checkpoint
// (checkpoint/checkpoint.hpp) of everything needed for a bit-exact continuation on the same device:
// model, EMAs, optimizer, sampler, loss scaler, iteration, loader position, RNG states, config.
// At the end (and every sample.every iterations) a fixed-noise sample grid from the first EMA.
//
// Run directory (train.run_dir): config.yaml (resolved), train.log, metrics.jsonl,
// checkpoints/iter_<k>/, samples/iter_<k>.png, ema_<rate>.pt (exported at the end); locked by
// rank 0 for the whole run, holding one run only (checkpoint/run_dir_lock.hpp,
// checkpoint/run_dir.hpp).
#pragma once
#include <cstdint>
#include <string>

#include "dmtrain/config/run_config.hpp"

namespace dmtrain::train {

struct TrainOptions {
  std::string resume;                // "": fresh run; "auto": newest valid checkpoint, if any;
                                     // else a checkpoint folder
  bool allow_config_change = false;  // resume although model/diffusion sections changed
  bool restart = false;              // fresh start in a run dir with checkpoints: move the old
                                     // run aside into <run_dir>/previous-<UTC time>/
  int64_t stop_at = -1;              // stop (with a checkpoint) after this iteration; for tests
                                     // and for splitting a run over several jobs
  bool single_rank_group = false;    // one process with a process group of its own (tests: the
                                     // data-parallel paths, e.g. dist.graph_step, on one GPU)
};

struct TrainResult {
  int64_t iteration = 0;  // iterations done
  std::string last_checkpoint;
  bool interrupted = false;      // stopped by a signal
  int64_t graph_steps = 0;       // iterations replayed from a CUDA graph (train.cuda_graphs)
  int64_t prefetched_steps = 0;  // iterations whose inputs were prepared during the one before
  int rank = 0, world_size = 1;  // of this process in its job
};

// "NVIDIA H100 80GB HBM3", or "CPU (N threads)".
std::string device_name(const std::string& device_config);

TrainResult train(const config::RunConfig& cfg, const TrainOptions& options = {});

}  // namespace dmtrain::train
