// LaplaceSampler: Laplace importance sampling of log SNR (Hang et al. 2024, "Improved Noise
// Schedule for Diffusion Training", arXiv 2407.03297): training noise levels are drawn so that
// lambda = log SNR follows a Laplace density centred at mu, which concentrates training on the
// transition between signal and noise (lambda near 0):
//
//   p(lambda) = exp(-|lambda - mu| / b) / (2b)        (the paper's setting: mu 0, b 0.5)
//   F(lambda) = 1/2 exp((lambda - mu) / b)            for lambda < mu
//             = 1 - 1/2 exp(-(lambda - mu) / b)       for lambda >= mu
//
// The paper works in continuous time, u ~ U(0, 1) mapped to lambda(u) = mu - b sgn(0.5 - u)
// ln(1 - 2|u - 0.5|) (the Laplace quantile). Our reading for a discrete process (the study's
// cosine schedule with T = 4000 and its abar_t): draw that continuous lambda and train at the
// timestep whose log SNR is nearest, so
//
//   lambda_t = ln(abar_t / (1 - abar_t))                 (decreasing in t)
//   e_0 = +inf, e_T = -inf, e_t = (lambda_{t-1} + lambda_t) / 2   (bin edges half-way in lambda)
//   p(t) = F(e_t) - F(e_{t+1})                           (exactly the mass of t's bin)
//
// The paper changes the distribution of noise levels, not the loss: the weight is 1 (no
// importance correction), as for the logit-normal sampler. Stateless apart from its kind.
#pragma once
#include <string>

#include "dmtrain/timestep/options.hpp"
#include "dmtrain/timestep/sampler.hpp"

namespace dmtrain::timestep {

// Throws dmtrain::Error naming `<prefix>.laplace.mu` (not finite) or `.b` (<= 0).
void validate(const LaplaceOptions& options, const std::string& prefix = "timestep");

// p(t) above for the process with cumulative alphas abar (float64 [T]); float64 [T].
at::Tensor laplace_probabilities(const at::Tensor& alphas_cumprod, double mu, double b);

class LaplaceSampler : public TimestepSampler {
 public:
  LaplaceSampler(const at::Tensor& alphas_cumprod, const LaplaceOptions& options);
  at::Tensor probabilities(int64_t /*iteration*/) const override { return p_; }
  std::string name() const override { return "laplace"; }

 protected:
  at::Tensor weights_for(const at::Tensor& p, const at::Tensor& t) const override;

 private:
  at::Tensor p_;
};

}  // namespace dmtrain::timestep
