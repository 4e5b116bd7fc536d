// dmtrain consistency: the paper's consistency experiment (Sec. 3.1, Eq. 1). Every model is
// sampled with the same seed, so sample i of every model starts from the same x_T and receives the
// same per-step noise (eval::sample_images); the mean pairwise PSNR of their image sets is printed
// with the per-pair table, and --out writes a PNG with one row of images per model.
// --samples compares image sets sampled earlier instead (`dmtrain sample --out-npz` with the same
// --n, --seed, --sampler, --steps and --eta draws the images this command would), so that runs
// trained on different machines or days can be compared without their weights.
// The x0-prediction counterexample (paper Eq. 5) is a config away: train with
// `diffusion.mean_type: x0` (default epsilon) and compare.
#include <iomanip>
#include <iostream>

#include "commands.hpp"
#include "dmtrain/diffusion/gaussian_diffusion.hpp"
#include "dmtrain/eval/consistency.hpp"
#include "dmtrain/eval/sample_images.hpp"
#include "dmtrain/recipe/build.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/image_io.hpp"
#include "dmtrain/util/log.hpp"
#include "dmtrain/util/npy.hpp"
#include "model_source.hpp"

namespace dmtrain::app {
namespace {

struct ConsistencyArgs {
  std::vector<std::string> checkpoints, samples;
  ModelArgs model;  // --set, --ema, --no-ema, --device, shared by every checkpoint
  int64_t n = 32, batch = 16;
  uint64_t seed = 0;
  std::string sampler = "ddim", steps = "50", classes, out;
  double eta = 0.0;
} args;

// arr_0 of a samples .npz (uint8 N,H,W,C, as `dmtrain sample --out-npz` writes it).
at::Tensor read_sample_set(const std::string& path) {
  for (auto& [name, array] : util::read_npz(path)) {
    if (name != "arr_0") continue;
    if (array.scalar_type() != at::kByte || array.dim() != 4) {
      throw Error(c10::str("consistency: ", path, ": arr_0 is ", array.scalar_type(), " ",
                           array.sizes(), ", not uint8 images N,H,W,C (dmtrain sample --out-npz)"));
    }
    return array;
  }
  throw Error("consistency: " + path + " has no arr_0 (write it with dmtrain sample --out-npz)");
}

void run_consistency() {
  const bool from_samples = !args.samples.empty();
  if (from_samples == !args.checkpoints.empty()) {
    throw Error("consistency: give either --checkpoints or --samples (2 or more), not both");
  }
  const std::vector<std::string>& names = from_samples ? args.samples : args.checkpoints;
  std::vector<at::Tensor> sets;
  for (const auto& path : args.samples) sets.push_back(read_sample_set(path));
  for (const auto& ckpt : args.checkpoints) {
    ModelArgs ma = args.model;
    ma.checkpoint = ckpt;
    LoadedModel m = load_model(ma);
    const auto& cfg = m.cfg;
    eval::SampleImagesOptions o;
    o.n = args.n;
    o.image_shape = {cfg.model.in_channels, cfg.model.image_size, cfg.model.image_size};
    o.seed = args.seed;
    o.sampler = args.sampler;
    o.eta = args.eta;
    o.batch = args.batch;
    o.device = m.device;
    o.labels = eval::make_labels(args.classes, args.n, cfg.model.num_classes, args.seed);
    const auto sampling =
        diffusion::GaussianDiffusion(recipe::diffusion_options(cfg)).respaced(args.steps);
    log::info(c10::str("sampling ", args.n, " images from ", m.description, " (mean_type ",
                       cfg.diffusion.mean_type, ", ", args.sampler, ", ", sampling.num_timesteps(),
                       " steps, seed ", args.seed, ")"));
    const diffusion::ModelFn fn = [&m](const at::Tensor& x, const at::Tensor& t,
                                       const at::Tensor& y) { return m.model->forward(x, t, y); };
    sets.push_back(eval::sample_images(sampling, fn, o).images);
  }
  const eval::ConsistencyResult r = eval::pairwise_psnr(sets);
  std::cout << std::fixed << std::setprecision(3);
  const int64_t k = static_cast<int64_t>(sets.size());
  for (int64_t i = 0; i < k; ++i) {
    for (int64_t j = i + 1; j < k; ++j) {
      std::cout << "PSNR " << i << " " << j << " " << r.table[i][j].item<double>() << " dB  ("
                << names[static_cast<size_t>(i)] << " vs " << names[static_cast<size_t>(j)]
                << ")\n";
    }
  }
  std::cout << "consistency " << r.mean << " dB (mean PSNR over " << k * (k - 1) / 2 << " pairs, "
            << sets[0].size(0) << " samples each)\n";
  if (!args.out.empty()) {
    util::write_png(args.out, eval::consistency_grid(sets));
    log::info("wrote " + args.out + " (one row per model, in the order given)");
  }
}

}  // namespace

void add_consistency_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "consistency",
      "Mean pairwise PSNR of models sampled from the same noise (paper Sec. 3.1); the x0 "
      "counterexample is diffusion.mean_type: x0");
  cmd->add_option("--checkpoints", args.checkpoints,
                  "Checkpoint folders or run directories (2 or more)")
      ->expected(2, -1);
  cmd->add_option("--samples", args.samples,
                  "Instead of --checkpoints: samples .npz files (2 or more) written by dmtrain "
                  "sample --out-npz with the same --n, --seed, --sampler, --steps, --eta")
      ->expected(2, -1);
  cmd->add_option("--n,-n", args.n, "Samples per model")->capture_default_str();
  cmd->add_option("--seed", args.seed, "Noise seed shared by every model")->capture_default_str();
  cmd->add_option("--sampler", args.sampler, "ddpm | ddim")
      ->check(CLI::IsMember({"ddpm", "ddim"}))
      ->capture_default_str();
  cmd->add_option("--steps", args.steps, "Respacing spec of each model's process")
      ->capture_default_str();
  cmd->add_option("--eta", args.eta, "DDIM eta")->capture_default_str();
  cmd->add_option("--batch", args.batch, "Samples per forward pass")->capture_default_str();
  cmd->add_option("--classes", args.classes, "Class labels as `dmtrain sample --classes`");
  cmd->add_option("--out,-o", args.out, "PNG: one row of samples per model");
  add_weight_choice_options(*cmd, args.model);
  cmd->callback([] {
    run_consistency();
    set_exit_code(0);
  });
}

}  // namespace dmtrain::app
