// dmtrain consistency: the paper's consistency experiment (Sec. 3.1, Eq. 1). Every model is
// sampled with the same seed, so sample i of every model starts from the same x_T and receives the
// same per-step noise (eval::sample_images); the mean pairwise PSNR of their image sets is printed
// with the per-pair table, and --out writes a PNG with one row of images per model.
// The x0-prediction counterexample (paper Eq. 5) is a config away: train with
// `diffusion.mean_type: x0` (default epsilon) and compare.
#include <iomanip>
#include <iostream>

#include "commands.hpp"
#include "dmtrain/diffusion/gaussian_diffusion.hpp"
#include "dmtrain/eval/consistency.hpp"
#include "dmtrain/eval/sample_images.hpp"
#include "dmtrain/train/build.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/image_io.hpp"
#include "dmtrain/util/log.hpp"
#include "model_source.hpp"

namespace dmtrain::app {
namespace {

struct ConsistencyArgs {
  std::vector<std::string> checkpoints;
  ModelArgs model;  // --set, --ema, --no-ema, --device, shared by every checkpoint
  int64_t n = 32, batch = 16;
  uint64_t seed = 0;
  std::string sampler = "ddim", steps = "50", classes, out;
  double eta = 0.0;
} args;

void run_consistency() {
  if (args.checkpoints.size() < 2) throw Error("consistency: give at least 2 --checkpoints");
  std::vector<at::Tensor> sets;
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
        diffusion::GaussianDiffusion(train::diffusion_options(cfg)).respaced(args.steps);
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
                << args.checkpoints[static_cast<size_t>(i)] << " vs "
                << args.checkpoints[static_cast<size_t>(j)] << ")\n";
    }
  }
  std::cout << "consistency " << r.mean << " dB (mean PSNR over " << k * (k - 1) / 2 << " pairs, "
            << args.n << " samples each)\n";
  if (!args.out.empty()) {
    util::write_png(args.out, eval::consistency_grid(sets));
    log::info("wrote " + args.out + " (one row per model, in --checkpoints order)");
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
      ->required()
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
