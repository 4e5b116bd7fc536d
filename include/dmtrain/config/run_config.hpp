// RunConfig: the typed description of one training run, as resolved from YAML.
//
// Contract: every field has its default here (defaults live in code); config/load.hpp fills a
// RunConfig from YAML files and --set overrides, strictly (unknown keys, wrong types and
// out-of-range values are errors naming file, line and key); config/schema.hpp lists every key
// with its type, range and documentation. Each section maps onto one component's options: the
// recipe area converts them (recipe/build.hpp), or, for a component whose options are a plain
// struct (models/kernel_options.hpp, timestep/options.hpp), the section holds that struct
// itself, its one home.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "dmtrain/models/kernel_options.hpp"
#include "dmtrain/timestep/options.hpp"

namespace dmtrain::config {

struct ModelConfig {
  int64_t image_size = 32;
  int64_t in_channels = 3;
  int64_t model_channels = 128;
  bool learn_sigma = true;  // 6 output channels for RGB: mean and variance interpolation
  int64_t num_res_blocks = 3;
  std::vector<int64_t> channel_mult = {1, 2, 2, 2};
  std::vector<int64_t> attention_resolutions = {16, 8};  // in pixels, as the references' flags
  double dropout = 0.3;
  int64_t num_heads = 4;
  int64_t num_head_channels = -1;   // -1: use num_heads
  int64_t num_heads_upsample = -1;  // -1: same as num_heads
  bool use_scale_shift_norm = true;
  bool resblock_updown = false;
  bool use_new_attention_order = false;
  int64_t num_classes = 0;  // 0: unconditional
};

struct DiffusionConfig {
  int64_t steps = 4000;
  std::string noise_schedule = "cosine";  // linear | cosine
  std::string mean_type = "epsilon";      // epsilon | x0 | v
  std::string loss = "rescaled_mse";      // mse | rescaled_mse | kl | rescaled_kl
  bool rescale_timesteps = true;
  std::string timestep_respacing = "";  // training uses all steps unless set
};

// The timestep sampler: its kind, and each kind's options as the sampler takes them
// (timestep/options.hpp, their one home).
struct TimestepConfig {
  // uniform | clts | loss-second-moment | speed | logit-normal | laplace
  std::string sampler = "uniform";
  timestep::CltsOptions clts;                 // clts.num_timesteps: set from the process
  timestep::SpeedOptions speed;               // SpeeD (timestep/speed_sampler.hpp)
  timestep::LogitNormalOptions logit_normal;  // SD3's logit-normal t
  timestep::LaplaceOptions laplace;  // Laplace log-SNR sampling [Hang et al. 2024: mu 0, b 0.5]
};

struct OptimConfig {
  double lr = 1e-4;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  bool decoupled_weight_decay = true;  // AdamW
  bool momentum_decay = false;         // MDLRC: Demon decay of beta1 (Eq. 9)
  double beta1_min = 0.5;
  bool lr_compensation = false;  // MDLRC: lr_k (1 - beta1_k) constant (Eq. 10)
  std::string lr_schedule =
      "constant";                 // constant | mdlrc | linear | cosine (without compensation)
  double lr_min_ratio = 0.0;      // linear / cosine floor, a fraction of lr
  int64_t warmup_iterations = 0;  // lr ramps linearly over these (0: none)
  double grad_clip = 0.0;         // 0: off; else max global L2 norm
};

struct DataConfig {
  std::string format = "auto";  // auto | idx | cifar-bin | folder | cache | synthetic
  std::string path = "";
  std::string split = "train";       // train | test (IDX and CIFAR folders hold both)
  std::string cache = "";            // packed cache file; prepared on first use
  std::string labels = "none";       // none | folder | prefix
  std::string on_bad_file = "fail";  // fail | skip (image folders)
  bool random_flip = true;
  int64_t num_workers = 2;
};

// Post-hoc EMA (EDM2; ema/posthoc_ema.hpp): power-function EMA profiles kept during training
// and snapshotted, combined afterwards by `dmtrain ema` into the EMA of any length. Off when
// sigma_rels is empty; snapshot_every must then be > 0 (load.cpp).
struct PosthocEmaConfig {
  std::vector<double> sigma_rels;  // relative EMA lengths of the profiles (EDM2: [0.05, 0.10])
  int64_t snapshot_every = 0;      // iterations between snapshots of the profiles (and at the end)
};

struct TrainConfig {
  int64_t iterations = 0;    // required, > 0
  int64_t batch_size = 128;  // global, split over ranks
  uint64_t seed = 0;
  std::string precision = "auto";  // auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16 | fp16
  std::string device = "auto";     // auto | cpu | cuda
  std::string run_dir = "runs/default";
  std::vector<double> ema_rates = {0.9999};
  bool ema_warmup = false;  // rate_k = min(rate, (1 + k) / (10 + k)), as k-diffusion / EDM
  int64_t threads = 0;      // CPU intra-op threads; 0: OMP_NUM_THREADS, else the free cores
  int64_t max_consecutive_nonfinite = 10;
  int64_t micro_batches = 1;       // gradient accumulation: each rank's batch in this many chunks
                                   // (less activation memory, the same optimizer step)
  bool channels_last = false;      // NHWC weights and activations on CUDA; the CIFAR10 and
                                   // ImageNet128 configs turn it on (docs/benchmarks.md)
  bool cudnn_benchmark = true;     // let cuDNN time its algorithms for the (fixed) shapes
  bool cuda_graphs = true;         // replay forward+backward as a CUDA graph (one GPU, one chunk)
  bool graph_optimizer = true;     // and the optimizer + EMA update inside it (flat buffers)
  bool graph_grad_gather = false;  // graph_optimizer: gradients gathered, not accumulated
  bool prefetch_inputs = false;    // next iteration's batch and draws during this one
  // How the UNet's layers are computed (train.fused_kernels, fast_conv_bias,
  // attention_token_major, nhwc_group_norm_rows, group_norm_cached_backward, fast_avg_pool):
  // the model's own options struct, bound key by key (config/schema.cpp).
  models::KernelOptions kernels;
  PosthocEmaConfig posthoc_ema;
};

struct CheckpointConfig {
  int64_t every = 10000;  // 0: only at the end and on signals
  int64_t keep_last = 2;
  int64_t keep_every = 0;  // 0: none kept beyond keep_last
  bool async = true;       // write in the background (checkpoint/async_checkpoint.hpp)
};

struct LogConfig {
  int64_t every = 100;
  std::string level = "info";
  bool tensorboard = true;  // <run_dir>/tensorboard/events.out.tfevents.*
};

struct SampleConfig {
  int64_t every = 0;  // 0: only at the end
  int64_t count = 64;
  std::string sampler = "ddim";  // ddpm | ddim
  std::string steps = "50";      // respacing spec for sampling ("250", "ddim50", ...)
  double eta = 0.0;
  uint64_t seed = 0;
  bool raw = true;  // also a grid of the raw weights (early EMA grids are mostly noise)
};

// Periodic FID of the first EMA during training (rank 0; eval/fid.hpp). Off when fid_every = 0.
struct EvalConfig {
  int64_t fid_every = 0;       // iterations between evaluations (and at the end); 0: off
  int64_t fid_samples = 5000;  // samples per evaluation (same noise every time)
  std::string inception = "";  // FID Inception-v3 TorchScript file (docs/evaluation.md)
  std::string reference = "";  // .npz with mu, sigma of the reference set (dmtrain fid --cache-ref)
  std::string steps = "ddim50";  // respacing of the sampler (DDIM, eta 0)
  int64_t batch = 250;           // samples per forward
  uint64_t seed = 0;
};

// Multi-process runs (ignored by a single process).
struct DistConfig {
  double timeout_s = 600;   // rendezvous and every collective: a dead or hung rank ends the job
  int64_t bucket_mib = 25;  // gradient all-reduce bucket size (as DDP's bucket_cap_mb)
  // The data-parallel step as a CUDA graph (forward, backward with its bucketed NCCL all-reduce,
  // optimizer + EMA); off until measured on several GPUs.
  bool graph_step = false;
};

struct RunConfig {
  ModelConfig model;
  DiffusionConfig diffusion;
  TimestepConfig timestep;
  timestep::LossWeightingOptions loss_weight;  // none | min-snr | p2, and the terms it weights
  OptimConfig optim;
  DataConfig data;
  TrainConfig train;
  CheckpointConfig checkpoint;
  LogConfig log;
  SampleConfig sample;
  DistConfig dist;
  EvalConfig eval;
};

}  // namespace dmtrain::config
