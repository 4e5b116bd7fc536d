// Post-hoc EMA (Karras et al., EDM2, arXiv 2312.02696, sec. 3 and appendix C): during training
// keep a few power-function EMA profiles and periodic snapshots of them; afterwards combine the
// snapshots into the EMA of any chosen length.
//
// Contract.
//   Profile: the power EMA with exponent gamma at step t averages the weights theta_1..theta_t
//     with the continuous weight p(s) = (gamma+1) s^gamma / t^(gamma+1) on [0, t], theta_tau
//     holding on (tau-1, tau]. The update at step t (delta = t - previous update step, 1 when no
//     step was skipped) is  ema <- beta ema + (1 - beta) theta,  beta = (1 - delta/t)^(gamma+1),
//     which gives exactly those weights (theta_tau's is (tau^(g+1) - (tau-1)^(g+1)) / t^(g+1)).
//     The first update (t = delta) copies theta.
//   sigma_rel: the profile's standard deviation relative to t,
//     sigma_rel = sqrt((gamma+1) / ((gamma+2)^2 (gamma+3))); sigma_rel in (0, 1/sqrt(12)]
//     maps one to one to gamma >= 0 (0.10 <-> 6.94, 0.05 <-> 16.97, the paper's pair).
//   Snapshots: <run_dir>/posthoc_ema/snap_<step, 12 digits>_<gamma, 9 digits>.pt, each a torch
//     archive of the profile's parameters by name (as Ema::save, so load_ema_weights reads it)
//     plus the keys posthoc_ema_step, posthoc_ema_gamma; written to .tmp, fsync'ed, renamed,
//     then a checksum sidecar (util/file_hash.hpp).
//   Reconstruction: the target profile (gamma_r, t_r) is approximated in L2 by sum_i x_i p_i of
//     the snapshot profiles with steps <= t_r; A x = b with A_ij = <p_i, p_j>, b_i = <p_i, p_r>
//     (closed form below, appendix C.2/C.3), solved by least squares; the result is
//     sum_i x_i snapshot_i, accumulated snapshot by snapshot (one in memory at a time).
// Errors are dmtrain::Error naming the file or the value.
#pragma once
#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/serialize/archive.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dmtrain/config/run_config.hpp"

namespace dmtrain::ema {

double gamma_to_sigma_rel(double gamma);
// The gamma >= 0 of sigma_rel; throws for sigma_rel outside (0, 1/sqrt(12)] (larger ones need
// gamma < 0, a profile that weighs the start of training most).
double sigma_rel_to_gamma(double sigma_rel);
// <p_a, p_b>: the inner product of two normalized power profiles (gamma, t) on [0, max(t)].
double power_profile_inner(double gamma_a, double t_a, double gamma_b, double t_b);

// The running profiles of one model (one per sigma_rel), on the parameters' device and dtype.
class PowerEma {
 public:
  PowerEma(const torch::nn::Module& model, std::vector<double> sigma_rels);

  // After the optimizer step that makes `step` steps taken (or counted: a skipped step's weight
  // goes to the next update). step must exceed the previous update's.
  void update(const torch::nn::Module& model, int64_t step);
  const std::vector<double>& sigma_rels() const { return sigma_rels_; }
  const std::vector<double>& gammas() const { return gammas_; }
  int64_t step() const { return step_; }  // of the last update; 0 before the first
  const std::vector<std::string>& names() const { return names_; }
  const std::vector<at::Tensor>& params(size_t i) const { return ema_[i]; }

  // The whole state (step, gammas, every profile) for TrainState (train_state.hpp).
  void save(torch::serialize::OutputArchive& archive) const;
  // Throws dmtrain::Error when the archive's gammas differ from this one's or a parameter is
  // missing or mis-shaped.
  void load(torch::serialize::InputArchive& archive);

  // Writes every profile's snapshot at step() under run_dir; returns the paths.
  std::vector<std::string> write_snapshots(const std::string& run_dir) const;

 private:
  std::vector<std::string> names_;
  std::vector<double> sigma_rels_, gammas_;
  int64_t step_ = 0;
  std::vector<std::vector<at::Tensor>> ema_;
};

std::string snapshot_dir(const std::string& run_dir);   // <run_dir>/posthoc_ema
std::string snapshot_file(int64_t step, double gamma);  // snap_<step>_<gamma>.pt

struct Snapshot {
  std::string path;
  int64_t step = 0;
  double gamma = 0;
};
// The snapshots under snapshot_dir(run_dir), by step then gamma (read from each file).
std::vector<Snapshot> list_snapshots(const std::string& run_dir);

// Least-squares coefficients of `snaps` (those with step <= step; the others get 0) for the
// profile (sigma_rel, step). Throws when no snapshot has step <= step.
std::vector<double> posthoc_coefficients(const std::vector<Snapshot>& snaps, double sigma_rel,
                                         int64_t step);

struct Reconstruction {
  std::vector<double> coefficients;  // one per snapshot given
  std::vector<std::string> names;
  std::vector<at::Tensor> params;  // on the CPU; float32 (double for double snapshots)
};
Reconstruction reconstruct(const std::vector<Snapshot>& snaps, double sigma_rel, int64_t step);

// Why a reconstruction's weights cannot be trusted, "" when they can: as an average of weights
// its coefficients sum to 1; when they sum to more than `tolerance` away, the profile asked for
// lies outside what the snapshots' profiles represent (a sigma_rel far from the tracked ones,
// too few snapshots) and every weight comes out scaled by the sum (sigma_rel 0.15 from profiles
// 0.05 and 0.10 with five snapshot steps: 0.979, a model with FID above 160).
std::string reconstruction_problem(const std::vector<double>& coefficients, double sigma_rel,
                                   double tolerance = 0.005);

// `names` -> `params` as an EMA file (the archive of Ema::save), atomically, with its checksum
// sidecar: `dmtrain sample --checkpoint RUN_DIR --weights FILE` reads it.
void write_ema_file(const std::vector<std::string>& names, const std::vector<at::Tensor>& params,
                    const std::string& path);
std::string posthoc_ema_file(double sigma_rel);  // ema_phema_<sigma_rel, 6 digits>.pt

}  // namespace dmtrain::ema
