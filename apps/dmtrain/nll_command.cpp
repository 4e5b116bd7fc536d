// dmtrain nll: bits/dim of a data split under a model (improved-diffusion's image_nll.py):
// the full variational bound over every step of the trained process, averaged over images.
#include <fstream>
#include <iomanip>
#include <iostream>

#include "commands.hpp"
#include "dmtrain/data/dataset.hpp"
#include "dmtrain/diffusion/gaussian_diffusion.hpp"
#include "dmtrain/eval/nll.hpp"
#include "dmtrain/recipe/build.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/log.hpp"
#include "model_source.hpp"

namespace dmtrain::app {
namespace {

struct NllArgs {
  ModelArgs model;
  std::string split = "test";
  int64_t n = 0;
  int64_t batch = 16;
  uint64_t seed = 0;
  std::string out;
} args;

data::ImageSet open_split(const LoadedModel& m) {
  const auto& cfg = m.cfg;
  if (!m.has_data()) {
    throw Error("nll: config '" + args.model.config +
                "' names no data set: add a data section or --set data.path=DIR");
  }
  data::DatasetOptions d;
  d.format = cfg.data.format;
  d.path = cfg.data.path;
  d.split = args.split;
  d.image_size = cfg.model.image_size;
  d.channels = cfg.model.in_channels;
  d.labels = cfg.model.num_classes > 0 && cfg.data.labels == "none" ? "folder" : cfg.data.labels;
  if (cfg.model.num_classes == 0) d.labels = "none";
  // The packed cache holds the training split; only that split may use it.
  d.cache = args.split == "train" ? cfg.data.cache : "";
  d.num_threads = static_cast<int>(std::max<int64_t>(1, cfg.data.num_workers));
  data::ImageSet set = data::open_dataset(d);
  if (cfg.model.num_classes > 0 && !set.has_labels()) {
    throw Error("nll: the model is class-conditional (model.num_classes = " +
                std::to_string(cfg.model.num_classes) + ") but data '" + cfg.data.path +
                "' (split " + args.split + ") has no labels");
  }
  return set;
}

void run_nll() {
  LoadedModel m = load_model(args.model);
  data::ImageSet set = open_split(m);
  at::Tensor images = set.images, labels = set.labels;
  if (args.n > 0 && args.n < set.size()) {
    images = images.narrow(0, 0, args.n);
    if (labels.defined()) labels = labels.narrow(0, 0, args.n);
  }
  const diffusion::GaussianDiffusion diffusion(recipe::diffusion_options(m.cfg));
  log::info(c10::str("nll of ", images.size(0), " images of split '", args.split, "' over ",
                     diffusion.num_timesteps(), " steps, batch ", args.batch, " on ", m.device));
  const diffusion::ModelFn fn = [&m](const at::Tensor& x, const at::Tensor& t,
                                     const at::Tensor& y) { return m.model->forward(x, t, y); };
  eval::NllOptions o;
  o.batch = args.batch;
  o.seed = args.seed;
  o.device = m.device;
  o.progress = [&](int64_t done, int64_t total) {
    log::info(c10::str("  ", done, "/", total, " images"));
  };
  const eval::NllResult r = eval::image_nll(diffusion, fn, images, labels, o);
  std::cout << std::setprecision(6) << "bits/dim " << r.mean_bpd << " over " << r.total_bpd.size(0)
            << " images (split " << args.split << ")\n";
  if (!args.out.empty()) {
    std::ofstream os(args.out);
    if (!os) throw Error("--out '" + args.out + "' cannot be written");
    eval::write_nll_csv(os, r);
    os.close();
    if (!os) throw Error("--out '" + args.out + "': write failed");
    log::info("wrote " + args.out);
  }
}

}  // namespace

void add_nll_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "nll", "Bits/dim of a data split under a model (full variational bound, as image_nll.py)");
  add_model_options(*cmd, args.model);
  cmd->add_option("--data-split", args.split, "train | test (of the config's data section)")
      ->check(CLI::IsMember({"train", "test"}))
      ->capture_default_str();
  cmd->add_option("--n,-n", args.n, "Use the first N images (0 = all)")->capture_default_str();
  cmd->add_option("--batch", args.batch, "Images per forward pass")->capture_default_str();
  cmd->add_option("--seed", args.seed, "Noise seed (batch b uses seed + b)")->capture_default_str();
  cmd->add_option("--out,-o", args.out, "Per-image CSV: index,label,total_bpd,prior_bpd,vb_bpd");
  cmd->callback([] {
    run_nll();
    set_exit_code(0);
  });
}

}  // namespace dmtrain::app
