#include "dmtrain/train/sample_grid.hpp"

#include <filesystem>
#include <iomanip>
#include <sstream>

#include "dmtrain/diffusion/noise_source.hpp"
#include "dmtrain/diffusion/sampling.hpp"
#include "dmtrain/util/image_io.hpp"
#include "dmtrain/util/log.hpp"

namespace dmtrain::train {

std::string write_sample_grid(const config::RunConfig& cfg, const models::UNetModelImpl& model,
                              const Ema& ema, const diffusion::GaussianDiffusion& diffusion,
                              const at::Device& device, const std::string& run_dir,
                              int64_t iteration) {
  const auto& s = cfg.sample;
  // A copy of the network holding the EMA weights: sampling never disturbs training state.
  auto copy = std::dynamic_pointer_cast<models::UNetModelImpl>(model.clone(device));
  ema.copy_to(0, *copy);
  copy->eval();
  const auto sampling = diffusion.respaced(s.steps);
  const int64_t n = s.count, c = cfg.model.in_channels, hw = cfg.model.image_size;
  diffusion::NoiseSource noise(s.seed, {n, c, hw, hw});
  diffusion::SampleOptions o;
  o.device = device;
  if (cfg.model.num_classes > 0) o.y = at::arange(n, at::kLong).remainder(cfg.model.num_classes);
  const diffusion::ModelFn fn = [&](const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) {
    return copy->forward(x, t, y);
  };
  at::Tensor images = s.sampler == "ddim" ? diffusion::ddim_sample_loop(sampling, fn, noise, s.eta, o)
                                          : diffusion::p_sample_loop(sampling, fn, noise, o);
  const int64_t nrow = static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(n))));
  std::ostringstream name;
  name << "iter_" << std::setw(6) << std::setfill('0') << iteration << ".png";
  const std::string path = (std::filesystem::path(run_dir) / "samples" / name.str()).string();
  util::write_png(path, util::make_grid(images.to(at::kCPU, at::kFloat), nrow));
  log::info("samples " + path);
  return path;
}

}  // namespace dmtrain::train
