// dmtrain landscape: the loss-landscape probes of paper Sec. 3.3 between two checkpoints of one
// architecture (dmtrain/eval/landscape.hpp): the training loss along theta(a) = (1 - a) theta_A +
// a theta_B for --points values of a in [--from, --to], and the top --hessian-top Hessian
// eigenvalues at A and at B (Lanczos, --lanczos-steps), all on one fixed batch of --batch
// training images with timesteps and noise drawn from --seed.
// CSV (long format): kind,alpha,index,value with rows `line,a,0,loss(a)` and
// `hessian,0|1,i,lambda_i` (alpha 0 = A, 1 = B); plot with scripts/plot_landscape.py.
#include <ATen/CPUGeneratorImpl.h>

#include <fstream>
#include <iomanip>
#include <iostream>

#include "commands.hpp"
#include "dmtrain/data/dataset.hpp"
#include "dmtrain/diffusion/gaussian_diffusion.hpp"
#include "dmtrain/eval/landscape.hpp"
#include "dmtrain/recipe/build.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/log.hpp"
#include "model_source.hpp"

namespace dmtrain::app {
namespace {

struct LandscapeArgs {
  std::vector<std::string> checkpoints;
  ModelArgs model;  // --set, --ema, --no-ema, --device, shared by both checkpoints
  int64_t points = 21, batch = 64, hessian_top = 3, lanczos_steps = 20;
  double from = 0.0, to = 1.0;
  uint64_t seed = 0;
  std::string out = "landscape.csv";
} args;

LoadedModel load(const std::string& ckpt) {
  ModelArgs ma = args.model;
  ma.checkpoint = ckpt;
  LoadedModel m = load_model(ma);
  for (auto& p : m.model->parameters()) p.requires_grad_(true);
  return m;
}

// `batch` training images (and labels) picked by a permutation seeded with `seed`.
std::pair<at::Tensor, at::Tensor> pick_images(const config::RunConfig& cfg) {
  data::DatasetOptions d;
  d.format = cfg.data.format;
  d.path = cfg.data.path;
  d.split = "train";
  d.image_size = cfg.model.image_size;
  d.channels = cfg.model.in_channels;
  d.labels =
      cfg.model.num_classes > 0 ? (cfg.data.labels == "none" ? "folder" : cfg.data.labels) : "none";
  d.cache = cfg.data.cache;
  const data::ImageSet set = data::open_dataset(d);
  const int64_t n = std::min(args.batch, set.size());
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(args.seed);
  const at::Tensor idx = at::randperm(set.size(), gen, at::kLong).narrow(0, 0, n);
  return {set.images.index_select(0, idx),
          set.labels.defined() ? set.labels.index_select(0, idx) : at::Tensor()};
}

std::vector<double> hessian_at(LoadedModel& m, const diffusion::GaussianDiffusion& diffusion,
                               const eval::FixedBatch& batch) {
  const diffusion::ModelFn fn = [&m](const at::Tensor& x, const at::Tensor& t,
                                     const at::Tensor& y) { return m.model->forward(x, t, y); };
  // The fused GroupNorm kernels' backward is not differentiable again (eval/landscape.hpp).
  models::KernelOptions kernels = m.model->options.kernels();
  kernels.fused_group_norm = false;
  m.model->set_kernels(kernels);
  const auto params = m.model->parameters();
  const eval::HvpFn hvp =
      eval::make_hvp([&] { return eval::fixed_batch_loss(diffusion, fn, batch); }, params);
  eval::LanczosOptions o;
  o.k = args.hessian_top;
  o.steps = args.lanczos_steps;
  o.seed = args.seed;
  return eval::top_hessian_eigenvalues(hvp, params, o);
}

void run_landscape() {
  if (args.checkpoints.size() != 2) throw Error("landscape: give exactly 2 --checkpoints");
  LoadedModel a = load(args.checkpoints[0]);
  LoadedModel b = load(args.checkpoints[1]);
  if (!a.has_data()) throw Error("landscape: the config of A names no data set");
  const auto [images, labels] = pick_images(a.cfg);
  const diffusion::GaussianDiffusion diffusion(recipe::diffusion_options(a.cfg));
  const eval::FixedBatch batch =
      eval::make_fixed_batch(images, labels, diffusion.num_timesteps(), args.seed, a.device);
  log::info(c10::str("fixed batch of ", images.size(0), " training images, seed ", args.seed,
                     ", loss ", a.cfg.diffusion.loss, " over ", diffusion.num_timesteps(),
                     " steps"));
  std::ofstream os(args.out);
  if (!os) throw Error("--out '" + args.out + "' cannot be written");
  os << "kind,alpha,index,value\n" << std::setprecision(17);

  std::vector<at::Tensor> theta_a, theta_b;
  for (const auto& p : a.model->parameters()) theta_a.push_back(p.detach().clone());
  for (const auto& p : b.model->parameters()) theta_b.push_back(p.detach());
  const diffusion::ModelFn fn = [&a](const at::Tensor& x, const at::Tensor& t,
                                     const at::Tensor& y) { return a.model->forward(x, t, y); };
  const auto line = eval::loss_along_line(
      a.model->parameters(), theta_a, theta_b, eval::linspace(args.from, args.to, args.points),
      [&] { return eval::fixed_batch_loss(diffusion, fn, batch); });
  for (const auto& p : line) {
    os << "line," << p.alpha << ",0," << p.loss << "\n";
    std::cout << std::setprecision(6) << "alpha " << p.alpha << " loss " << p.loss << "\n";
  }
  if (args.hessian_top > 0) {
    LoadedModel* models[2] = {&a, &b};
    for (int which = 0; which < 2; ++which) {
      log::info(c10::str("top ", args.hessian_top, " Hessian eigenvalues at ",
                         args.checkpoints[static_cast<size_t>(which)], " (", args.lanczos_steps,
                         " Lanczos steps)"));
      const auto eig = hessian_at(*models[which], diffusion, batch);
      for (size_t i = 0; i < eig.size(); ++i) {
        os << "hessian," << which << "," << i << "," << eig[i] << "\n";
        std::cout << "hessian " << (which == 0 ? "A" : "B") << " lambda_" << i << " " << eig[i]
                  << "\n";
      }
    }
  }
  os.close();
  if (!os) throw Error("--out '" + args.out + "': write failed");
  log::info("wrote " + args.out);
}

}  // namespace

void add_landscape_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "landscape",
      "Loss along the line between two checkpoints and top Hessian eigenvalues (paper Sec. 3.3)");
  cmd->add_option("--checkpoints", args.checkpoints, "Checkpoints A and B (same architecture)")
      ->required()
      ->expected(2);
  cmd->add_option("--points", args.points, "Values of a on the line")->capture_default_str();
  cmd->add_option("--from", args.from, "First a (0 = A)")->capture_default_str();
  cmd->add_option("--to", args.to, "Last a (1 = B)")->capture_default_str();
  cmd->add_option("--batch", args.batch, "Training images in the fixed batch")
      ->capture_default_str();
  cmd->add_option("--seed", args.seed, "Seed of the batch, its timesteps/noise and Lanczos")
      ->capture_default_str();
  cmd->add_option("--hessian-top", args.hessian_top, "Hessian eigenvalues per endpoint (0 = none)")
      ->capture_default_str();
  cmd->add_option("--lanczos-steps", args.lanczos_steps,
                  "Krylov dimension (memory: this many copies of the parameters)")
      ->capture_default_str();
  cmd->add_option("--out,-o", args.out, "CSV: kind,alpha,index,value")->capture_default_str();
  add_weight_choice_options(*cmd, args.model);
  cmd->callback([] {
    run_landscape();
    set_exit_code(0);
  });
}

}  // namespace dmtrain::app
