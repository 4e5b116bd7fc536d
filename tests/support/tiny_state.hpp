// A tiny run's checkpointed components (model, EMA, optimizer, sampler, loss scaler and the
// TrainState over them), seeded, on a device: what the TrainState and checkpoint tests save,
// load and compare.
#pragma once
#include <ATen/CPUGeneratorImpl.h>

#include <cstdint>
#include <memory>

#include "dmtrain/checkpoint/train_state.hpp"
#include "dmtrain/recipe/build.hpp"
#include "dmtrain/timestep/uniform_sampler.hpp"
#include "support/tiny_run.hpp"

namespace dmtrain::test_support {

struct TinyState {
  config::RunConfig cfg;
  models::UNetModel model{nullptr};
  std::unique_ptr<ema::Ema> ema;
  std::unique_ptr<optim::MdlrcAdam> opt;
  timestep::UniformSampler sampler{50};
  optim::LossScaler scaler{false};
  std::unique_ptr<checkpoint::TrainState> state;

  explicit TinyState(uint64_t seed, at::Device device = at::kCPU) {
    cfg = tiny_config("/unused", "/unused");
    at::manual_seed(seed);
    model = models::UNetModel(recipe::unet_options(cfg));
    model->to(device);
    ema = std::make_unique<ema::Ema>(*model, cfg.train.ema_rates);
    opt = recipe::make_optimizer(model->parameters(), cfg);
    state = std::make_unique<checkpoint::TrainState>(
        model, *ema, *opt, sampler, scaler, at::make_generator<at::CPUGeneratorImpl>(seed + 1),
        at::make_generator<at::CPUGeneratorImpl>(seed + 2));
  }

  // One optimizer step on random gradients and the EMA update after it: every tensor a
  // checkpoint holds changes in place, as in training.
  void step() {
    for (auto& p : model->parameters()) p.mutable_grad() = at::randn_like(p);
    state->fence_checkpoint();  // as train_step() does before the update
    opt->step();
    ema->update(*model);
  }
};

}  // namespace dmtrain::test_support
