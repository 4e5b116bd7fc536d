// Config sections -> component options. Kept in one file so that the mapping from YAML keys to
// the references' flags can be read (and reviewed) at once.
#include "dmtrain/recipe/build.hpp"

#include "dmtrain/data/loader.hpp"

#include <c10/util/StringUtil.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "dmtrain/data/dataset.hpp"
#include "dmtrain/diffusion/gaussian_diffusion.hpp"
#include "dmtrain/ema/ema_files.hpp"
#include "dmtrain/optim/mdlrc_adam.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/log.hpp"

namespace dmtrain::recipe {
namespace {

// The resolutions (pixels) of the net's levels: image_size / 2^level.
std::vector<int64_t> net_resolutions(const config::ModelConfig& m) {
  std::vector<int64_t> out;
  for (size_t level = 0; level < m.channel_mult.size(); ++level) {
    out.push_back(m.image_size >> level);
  }
  return out;
}

std::string join(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s;
}

// model.attention_resolutions as downsample rates. A resolution the net never reaches (above the
// image, where the references' image_size // res is 0, or below its last level) adds nothing:
// dropped here, warned of by check_run_config. One that does not divide the image size is
// refused: the references would round it to another level.
std::vector<int64_t> attention_ds(const config::ModelConfig& m) {
  const std::vector<int64_t> have = net_resolutions(m);
  std::vector<int64_t> kept;
  for (int64_t r : m.attention_resolutions) {
    if (r > m.image_size) continue;
    if (m.image_size % r != 0) {
      throw Error(c10::str("model.attention_resolutions: ", r, " does not divide model.image_size ",
                           m.image_size, " (the net has resolutions ", join(have), ")"));
    }
    if (std::find(have.begin(), have.end(), r) != have.end()) kept.push_back(r);
  }
  return models::attention_ds_from_resolutions(m.image_size, kept);
}

}  // namespace

models::UNetOptions unet_options(const config::RunConfig& cfg) {
  const auto& m = cfg.model;
  models::UNetOptions o;
  o.image_size(m.image_size)
      .in_channels(m.in_channels)
      .model_channels(m.model_channels)
      .num_res_blocks(m.num_res_blocks)
      .attention_resolutions(attention_ds(m))
      .dropout(m.dropout)
      .channel_mult(std::vector<double>(m.channel_mult.begin(), m.channel_mult.end()))
      .num_classes(m.num_classes)
      .num_heads(m.num_heads)
      .num_head_channels(m.num_head_channels)
      .num_heads_upsample(m.num_heads_upsample)
      .use_scale_shift_norm(m.use_scale_shift_norm)
      .resblock_updown(m.resblock_updown)
      .use_new_attention_order(m.use_new_attention_order)
      .kernels(cfg.train.kernels);
  o.learn_sigma(m.learn_sigma);
  try {
    o.validate();
  } catch (const Error& e) {
    // Its messages name the option ("UNetOptions.num_heads: ..."); the user wrote the key.
    std::string msg = e.what();
    const std::string from = "UNetOptions.";
    if (msg.rfind(from, 0) == 0) msg = "model." + msg.substr(from.size());
    throw Error(msg);
  }
  return o;
}

diffusion::GaussianDiffusionOptions diffusion_options(const config::RunConfig& cfg) {
  const auto& d = cfg.diffusion;
  diffusion::GaussianDiffusionOptions o;
  o.schedule = d.noise_schedule;
  o.steps = d.steps;
  o.mean_type = diffusion::parse_mean_type(d.mean_type);
  // As the references' create_gaussian_diffusion: a learned sigma is the learned range between
  // beta~_t and beta_t; otherwise the fixed large variance (sigma_small = False).
  o.var_type =
      cfg.model.learn_sigma ? diffusion::VarType::kLearnedRange : diffusion::VarType::kFixedLarge;
  o.loss_type = diffusion::parse_loss_type(d.loss);
  o.rescale_timesteps = d.rescale_timesteps;
  o.timestep_respacing = d.timestep_respacing;
  return o;
}

int auto_cpu_threads(int cores, double load_average) {
  const int busy = static_cast<int>(std::lround(std::max(0.0, load_average)));
  return std::max(1, cores - busy);
}

at::Device pick_device(const std::string& want, const std::string& what, int local_rank) {
  const bool cuda = at::hasCUDA();
  if (want == "cuda" && !cuda) throw Error(what + " is 'cuda' but no CUDA device is visible");
  if (want == "cpu" || (want == "auto" && !cuda)) return at::Device(at::kCPU);
  const int n = static_cast<int>(at::getNumGPUs());
  if (local_rank >= n) {
    throw Error(c10::str("local rank ", local_rank, " needs GPU ", local_rank, " but only ", n,
                         " are visible (CUDA_VISIBLE_DEVICES?); start at most ", n,
                         " processes per node"));
  }
  return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(local_rank));
}

timestep::TimestepSamplerOptions sampler_options(const config::RunConfig& cfg) {
  timestep::TimestepSamplerOptions o;
  o.kind = cfg.timestep.sampler;
  // The process the model trains on: with diffusion.timestep_respacing its t runs over the kept
  // steps only (drawing from all diffusion.steps indexed past its tables).
  const diffusion::GaussianDiffusion process(diffusion_options(cfg));
  o.num_timesteps = process.num_timesteps();
  o.clts = cfg.timestep.clts;  // its num_timesteps: o.num_timesteps, set above, takes precedence
  o.speed = cfg.timestep.speed;
  o.logit_normal = cfg.timestep.logit_normal;
  o.laplace = cfg.timestep.laplace;
  // SpeeD's weights and m, and Laplace's log SNR, come from that process's abar.
  if (o.kind == "speed" || o.kind == "laplace") o.alphas_cumprod = process.alphas_cumprod();
  timestep::validate(o, "timestep");
  return o;
}

timestep::LossWeightingOptions weighting_options(const config::RunConfig& cfg) {
  timestep::validate(cfg.loss_weight, "loss_weight");
  return cfg.loss_weight;
}

int64_t synthetic_image_count(const config::RunConfig& cfg, double ram_bytes) {
  const double per_image = static_cast<double>(cfg.model.image_size) *
                           static_cast<double>(cfg.model.image_size) *
                           static_cast<double>(cfg.model.in_channels);
  int64_t n = std::max<int64_t>(1024, 4 * cfg.train.batch_size);
  if (ram_bytes > 0 && static_cast<double>(n) * per_image > ram_bytes / 16) {
    n = std::max<int64_t>(1024, static_cast<int64_t>(ram_bytes / 16 / per_image));
  }
  return n;
}

std::shared_ptr<const data::ImageSet> open_data(const config::RunConfig& cfg) {
  const auto& d = cfg.data;
  if (d.format == "synthetic") {
    // Random pixels (and labels) of the model's shape: for benchmarks and smoke tests that must
    // not depend on a data set. Seeded, so runs on it are reproducible too.
    auto set = std::make_shared<data::ImageSet>();
    const int64_t per_image = cfg.model.image_size * cfg.model.image_size * cfg.model.in_channels;
    const double ram = data::physical_memory_bytes();
    // A batch that cannot fit fails now, before gigabytes of random pixels are made for it.
    data::check_batch_fits(cfg.train.batch_size, per_image, ram);
    const int64_t n = synthetic_image_count(cfg, ram);
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(cfg.train.seed);
    set->images =
        at::randint(0, 256, {n, cfg.model.image_size, cfg.model.image_size, cfg.model.in_channels},
                    gen, at::kByte);
    if (cfg.model.num_classes > 0) {
      set->labels = at::randint(0, cfg.model.num_classes, {n}, gen, at::kLong);
      for (int64_t c = 0; c < cfg.model.num_classes; ++c)
        set->class_names.push_back(std::to_string(c));
    }
    return set;
  }
  data::DatasetOptions o;
  o.format = d.format;
  o.path = d.path;
  o.split = d.split;
  o.image_size = cfg.model.image_size;
  o.channels = cfg.model.in_channels;
  o.labels = d.labels;
  o.cache = d.cache;
  o.on_bad_file = d.on_bad_file;
  o.num_threads = static_cast<int>(std::max<int64_t>(1, d.num_workers));
  return std::make_shared<const data::ImageSet>(data::open_dataset(o));
}

optim::MdlrcAdamOptions optimizer_options(const config::RunConfig& cfg) {
  const auto& c = cfg.optim;
  optim::MdlrcAdamOptions o(c.lr);
  o.beta1(c.beta1)
      .beta2(c.beta2)
      .eps(c.eps)
      .weight_decay(c.weight_decay)
      .decoupled_weight_decay(c.decoupled_weight_decay)
      .momentum_decay(c.momentum_decay)
      .lr_compensation(c.lr_compensation)
      .beta1_min(c.beta1_min)
      .lr_schedule(c.lr_schedule)
      .lr_min_ratio(c.lr_min_ratio)
      .warmup_iterations(c.warmup_iterations)
      .total_iterations(cfg.train.iterations);
  return o;
}

std::unique_ptr<optim::MdlrcAdam> make_optimizer(std::vector<at::Tensor> params,
                                                 const config::RunConfig& cfg) {
  return std::make_unique<optim::MdlrcAdam>(std::move(params), optimizer_options(cfg));
}

namespace {

// `spec` respaces the trained process as the sample grids and FID do, or an error names `key`.
void check_respacing(const diffusion::GaussianDiffusion& process, const std::string& spec,
                     const std::string& key) {
  try {
    (void)process.respaced(spec);
  } catch (const Error& e) {
    throw Error(c10::str(key, " '", spec, "' is not a respacing of the trained process's ",
                         process.num_timesteps(), " steps: ", e.what()));
  }
}

}  // namespace

std::vector<std::string> check_run_config(const config::RunConfig& cfg) {
  std::vector<std::string> warnings;
  const auto& m = cfg.model;
  (void)unet_options(cfg);
  // Each rank's batch is cut into train.micro_batches chunks: they must divide it on one process
  // (the trainer checks the per-rank share of a multi-process job when it starts).
  if (cfg.train.batch_size % cfg.train.micro_batches != 0) {
    throw Error(c10::str("train.micro_batches (", cfg.train.micro_batches,
                         ") must divide train.batch_size (", cfg.train.batch_size, ")"));
  }
  const std::vector<int64_t> have = net_resolutions(m);
  std::vector<int64_t> unreached;
  for (int64_t r : m.attention_resolutions) {
    if (std::find(have.begin(), have.end(), r) == have.end()) unreached.push_back(r);
  }
  if (!unreached.empty()) {
    warnings.push_back(c10::str("model.attention_resolutions: the net never reaches ",
                                join(unreached), " (its resolutions are ", join(have),
                                ": model.image_size / 2^level for the ", have.size(),
                                " levels of model.channel_mult), so no attention is added there"));
  }
  const diffusion::GaussianDiffusion process(diffusion_options(cfg));
  // The grids at sample.every and at the end; FID (eval.steps) only runs with eval.fid_every.
  check_respacing(process, cfg.sample.steps, "sample.steps");
  if (cfg.eval.fid_every > 0) check_respacing(process, cfg.eval.steps, "eval.steps");
  (void)timestep::make_sampler(sampler_options(cfg));
  (void)weighting_options(cfg);
  optim::validate(optimizer_options(cfg), "optim");
  // The final exports are named by the rate's 6 significant digits: two must not share a file.
  std::set<std::string> files;
  for (double rate : cfg.train.ema_rates) {
    if (!files.insert(ema::final_ema_file(rate)).second) {
      throw Error(c10::str("train.ema_rates: two rates export to the same file ",
                           ema::final_ema_file(rate),
                           " (rates must differ in 6 significant digits)"));
    }
  }
  for (const auto& w : warnings) log::warn(w);
  return warnings;
}

}  // namespace dmtrain::recipe
