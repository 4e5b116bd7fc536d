#include "dmtrain/observe/sample_grid.hpp"

#include <cmath>
#include <filesystem>
#include <iomanip>
#include <sstream>

#include "dmtrain/diffusion/noise_source.hpp"
#include "dmtrain/diffusion/sampling.hpp"
#include "dmtrain/util/image_io.hpp"
#include "dmtrain/util/log.hpp"
#include "dmtrain/util/stop_request.hpp"

namespace dmtrain::observe {

namespace {

// One grid from `weights` (a copy of the network holding them) to `path`.
void write_grid(const config::RunConfig& cfg, models::UNetModelImpl& weights,
                const diffusion::GaussianDiffusion& diffusion, const at::Device& device,
                const std::string& path) {
  const auto& s = cfg.sample;
  weights.eval();
  const auto sampling = diffusion.respaced(s.steps);
  const int64_t n = s.count, c = cfg.model.in_channels, hw = cfg.model.image_size;
  diffusion::NoiseSource noise(s.seed, {n, c, hw, hw});
  diffusion::SampleOptions o;
  o.device = device;
  // A stop signal does not wait for the grid: the checkpoint it asks for comes first.
  o.progress = [](int64_t, int64_t) { util::throw_if_stop_requested("sample grid"); };
  if (cfg.model.num_classes > 0) o.y = at::arange(n, at::kLong).remainder(cfg.model.num_classes);
  const diffusion::ModelFn fn = [&](const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) {
    return weights.forward(x, t, y);
  };
  at::Tensor images = s.sampler == "ddim"
                          ? diffusion::ddim_sample_loop(sampling, fn, noise, s.eta, o)
                          : diffusion::p_sample_loop(sampling, fn, noise, o);
  const int64_t nrow = static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(n))));
  util::write_png(path, util::make_grid(images.to(at::kCPU, at::kFloat), nrow));
  log::info("samples " + path);
}

}  // namespace

std::vector<SampleGrid> write_sample_grids(const config::RunConfig& cfg,
                                           const models::UNetModelImpl& model, const ema::Ema& ema,
                                           const diffusion::GaussianDiffusion& diffusion,
                                           const at::Device& device, const std::string& run_dir,
                                           int64_t iteration) {
  std::ostringstream stem;
  stem << "iter_" << std::setw(6) << std::setfill('0') << iteration;
  const auto file = [&](const std::string& suffix) {
    return (std::filesystem::path(run_dir) / "samples" / (stem.str() + suffix + ".png")).string();
  };
  std::vector<SampleGrid> grids;
  for (size_t i = 0; i < ema.rates().size(); ++i) {
    auto copy = std::dynamic_pointer_cast<models::UNetModelImpl>(model.clone(device));
    ema.copy_to(i, *copy);
    const std::string rate = ema::ema_rate_text(ema.rates()[i]);
    grids.push_back({"ema_" + rate, file(i == 0 ? "" : "_ema" + rate)});
    write_grid(cfg, *copy, diffusion, device, grids.back().path);
  }
  if (cfg.sample.raw) {
    auto copy = std::dynamic_pointer_cast<models::UNetModelImpl>(model.clone(device));
    grids.push_back({"raw", file("_raw")});
    write_grid(cfg, *copy, diffusion, device, grids.back().path);
  }
  return grids;
}

bool sample_grids_due(const config::RunConfig& cfg, const util::Progress& p) {
  return util::every(cfg.sample.every, p.done) && !p.at_end();
}

}  // namespace dmtrain::observe
