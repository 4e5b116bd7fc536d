// Timestep respacing (ID/GD respace.py): sample or evaluate with a subset of the T trained steps.
//
// space_timesteps picks the kept steps from a spec string; respace_betas turns a base schedule and
// the kept steps into the shorter process whose alphas_cumprod are the base's at the kept steps,
// plus timestep_map (respaced index -> original index) that the model must see instead of the
// respaced index. Both are pure functions returning new objects the caller owns.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace dmtrain::diffusion {

// `spec` is "N" or "N1,N2,..." (steps per equal section of [0, T), sections as large as possible
// first, each strided with rounding as ID does), or "ddimN" (the one integer stride giving exactly
// N steps, as in the DDIM paper). Throws dmtrain::Error on a malformed spec, a section asked for
// more steps than it has, or a ddim count no integer stride gives.
std::set<int64_t> space_timesteps(int64_t num_timesteps, const std::string& spec);

struct Respacing {
  at::Tensor betas;                   // float64 [K], K = use_timesteps.size()
  std::vector<int64_t> timestep_map;  // [K], increasing original timesteps
};

// new beta_k = 1 - abar(orig_k) / abar(orig_{k-1}) (abar before the first kept step is 1), computed
// in float64 from the base betas' cumulative product exactly as ID does.
Respacing respace_betas(const at::Tensor& base_betas, const std::set<int64_t>& use_timesteps);

}  // namespace dmtrain::diffusion
