// dmtrain sample: N images from a trained model, as a PNG grid and/or a GD-evaluator .npz
// (arr_0 uint8 N,H,W,C -- C is the model's channel count, 1 for grayscale models, not replicated
// to 3; arr_1 int64 labels when class-conditional). Sample i depends only on (seed, i): see
// dmtrain/eval/sample_images.hpp for the noise design.
#include <cmath>
#include <iostream>

#include "commands.hpp"
#include "dmtrain/diffusion/gaussian_diffusion.hpp"
#include "dmtrain/eval/sample_images.hpp"
#include "dmtrain/recipe/build.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/image_io.hpp"
#include "dmtrain/util/log.hpp"
#include "dmtrain/util/npy.hpp"
#include "model_source.hpp"

namespace dmtrain::app {
namespace {

struct SampleArgs {
  ModelArgs model;
  int64_t n = 16;
  std::string out_png, out_npz;
  uint64_t seed = 0;
  std::string sampler, steps, classes, noise;
  double eta = 0.0;
  int64_t batch = 16;
  bool no_clip = false;
  CLI::Option* seed_opt = nullptr;
  CLI::Option* eta_opt = nullptr;
} args;

void run_sample() {
  if (args.out_png.empty() && args.out_npz.empty()) {
    throw Error("sample: give --out-png FILE and/or --out-npz FILE");
  }
  LoadedModel m = load_model(args.model);
  const auto& cfg = m.cfg;
  eval::SampleImagesOptions o;
  o.n = args.n;
  o.image_shape = {cfg.model.in_channels, cfg.model.image_size, cfg.model.image_size};
  o.seed = args.seed_opt->count() ? args.seed : cfg.sample.seed;
  o.sampler = args.sampler.empty() ? cfg.sample.sampler : args.sampler;
  o.eta = args.eta_opt->count() ? args.eta : cfg.sample.eta;
  o.batch = args.batch;
  o.clip_denoised = !args.no_clip;
  o.device = m.device;
  o.labels = eval::make_labels(args.classes, args.n, cfg.model.num_classes, o.seed);
  if (!args.noise.empty()) o.initial_noise = util::read_npy(args.noise).to(at::kFloat);
  const std::string steps = args.steps.empty() ? cfg.sample.steps : args.steps;
  const diffusion::GaussianDiffusion sampling =
      diffusion::GaussianDiffusion(recipe::diffusion_options(cfg)).respaced(steps);
  log::info(c10::str("sampling ", o.n, " images with ", o.sampler, " over ",
                     sampling.num_timesteps(), " steps (respacing '", steps, "'), seed ", o.seed,
                     ", batch ", o.batch, " on ", m.device));
  const diffusion::ModelFn fn = [&m](const at::Tensor& x, const at::Tensor& t,
                                     const at::Tensor& y) { return m.model->forward(x, t, y); };
  int64_t last_logged = -1;
  o.progress = [&](int64_t done, int64_t step, int64_t total) {
    if (step == total && done != last_logged) {
      last_logged = done;
      log::info(c10::str("  ", std::min(done + o.batch, o.n), "/", o.n, " samples"));
    }
  };
  const eval::SampledImages s = eval::sample_images(sampling, fn, o);
  if (!args.out_npz.empty()) {
    util::write_samples_npz(args.out_npz, s.images, s.labels);
    log::info("wrote " + args.out_npz);
  }
  if (!args.out_png.empty()) {
    // make_grid wants model-space floats and truncates (x + 1) * 127.5; mapping pixel v to the
    // centre of its bin, (v + 0.5) / 127.5 - 1, makes that give back v exactly.
    const at::Tensor f = s.images.permute({0, 3, 1, 2}).to(at::kFloat).add(0.5).div(127.5).sub(1.0);
    const int64_t nrow = static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(o.n))));
    util::write_png(args.out_png, util::make_grid(f, nrow));
    log::info("wrote " + args.out_png);
  }
}

}  // namespace

void add_sample_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "sample", "Sample images from a checkpoint or reference weights (PNG grid and/or .npz)");
  add_model_options(*cmd, args.model);
  cmd->add_option("--n,-n", args.n, "Number of samples")->capture_default_str();
  cmd->add_option("--out-png", args.out_png, "PNG grid of all samples");
  cmd->add_option("--out-npz", args.out_npz,
                  ".npz for the guided-diffusion evaluator: arr_0 uint8 N,H,W,C (+ arr_1 labels)");
  args.seed_opt = cmd->add_option("--seed", args.seed,
                                  "Noise seed; sample i uses seed*1000003+i (default sample.seed)");
  cmd->add_option("--sampler", args.sampler, "ddpm | ddim (default sample.sampler)")
      ->check(CLI::IsMember({"ddpm", "ddim"}));
  cmd->add_option("--steps", args.steps,
                  "Respacing spec: 250, ddim50, 10,15,20 ... (default sample.steps)");
  args.eta_opt = cmd->add_option("--eta", args.eta, "DDIM eta (default sample.eta)");
  cmd->add_option("--batch", args.batch, "Samples per forward pass (does not change the images)")
      ->capture_default_str();
  cmd->add_option("--classes", args.classes,
                  "Class-conditional models: 'random' or a comma list repeated cyclically "
                  "(default 0,1,2,...)");
  cmd->add_option("--noise", args.noise,
                  "Initial noise x_T as .npy float32 [N,C,H,W] (e.g. from another framework)");
  cmd->add_flag("--no-clip", args.no_clip, "Do not clamp the x0 prediction to [-1, 1]");
  cmd->callback([] {
    run_sample();
    set_exit_code(0);
  });
}

}  // namespace dmtrain::app
