// TimestepSampler: the distribution from which the trainer draws diffusion timesteps t for each
// training example, plus the per-example loss weight that goes with each draw.
//
// Contract:
//  - sample(B, k, gen) draws B timesteps i.i.d. from probabilities(k) with torch::multinomial
//    (with replacement) on `gen`, so the draw is a deterministic function of the generator state,
//    k and the sampler's state. Tensors are returned on the CPU (the trainer moves them): t is
//    int64 [B], weights and loss_weights float32 [B].
//  - Two kinds of weight, because the references apply them to different terms of the loss:
//    `weights` are importance weights (1 / (T p(t)) for an unbiased objective, as ID's
//    non-uniform samplers): they multiply an example's whole loss, VLB term included.
//    `loss_weights` are a per-timestep weighting of the objective that comes with the sampler
//    (SpeeD's change-aware weight), a loss weighting like Min-SNR: the trainer applies them to
//    the terms that `loss_weight.terms` names (timestep/loss_weighting.hpp). Undefined: none.
//  - probabilities(k) is the full distribution p_k(t), float64 [T] on the CPU, summing to 1.
//  - update_with_losses(t, losses) feeds per-example losses to loss-aware samplers. In distributed
//    runs the trainer passes the all-gathered values (identical on every rank, in rank order), so
//    a sampler never communicates itself: identical inputs on every rank give identical state.
//  - save/load write and read the sampler's whole state through a torch archive (the chosen
//    serialisation). Every sampler writes its name() under "kind"; load throws dmtrain::Error
//    when the archive holds another kind of sampler.
#pragma once
#include <ATen/ATen.h>
#include <torch/serialize/archive.h>

#include <cstdint>
#include <string>

namespace dmtrain::timestep {

class TimestepSampler {
 public:
  struct Draw {
    at::Tensor t;             // int64 [B], values in {0..T-1}
    at::Tensor weights;       // float32 [B], importance weights of the whole per-example loss
    at::Tensor loss_weights;  // float32 [B] or undefined: the sampler's own loss weighting
  };

  explicit TimestepSampler(int64_t num_timesteps);
  virtual ~TimestepSampler() = default;

  int64_t num_timesteps() const { return num_timesteps_; }

  // Draws `batch` timesteps at optimizer iteration `iteration`. The default draws from
  // probabilities(iteration) and weighs each draw by weights_for(p, t) and loss_weights_for(t).
  virtual Draw sample(int64_t batch, int64_t iteration, at::Generator& gen);
  virtual at::Tensor probabilities(int64_t iteration) const = 0;
  virtual void update_with_losses(const at::Tensor& /*t*/, const at::Tensor& /*losses*/) {}
  // Whether update_with_losses does anything: the trainer skips copying the per-example losses
  // to the host (a device sync) for samplers that ignore them.
  virtual bool uses_losses() const { return false; }
  virtual std::string name() const = 0;

  virtual void save(torch::serialize::OutputArchive& archive) const;
  virtual void load(torch::serialize::InputArchive& archive);

 protected:
  // Loss weights for draws t from distribution p (float64 [T]); float32 [B].
  virtual at::Tensor weights_for(const at::Tensor& p, const at::Tensor& t) const = 0;
  // The sampler's loss weighting of draws t; float32 [B], or undefined (the default) for none.
  virtual at::Tensor loss_weights_for(const at::Tensor& /*t*/) const { return {}; }
  // 1 / (T p(t)): the importance weight that keeps the uniform-t objective unbiased.
  at::Tensor importance_weights(const at::Tensor& p, const at::Tensor& t) const;

 private:
  int64_t num_timesteps_;
};

}  // namespace dmtrain::timestep
