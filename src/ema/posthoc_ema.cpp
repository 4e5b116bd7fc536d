// Implementation of dmtrain/ema/posthoc_ema.hpp (the formulas are derived there and below).
#include "dmtrain/ema/posthoc_ema.hpp"

#include <c10/util/StringUtil.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <sstream>

#include "dmtrain/util/checked_write.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/file_hash.hpp"
#include "dmtrain/util/log.hpp"

namespace dmtrain::ema {
namespace {

namespace fs = std::filesystem;

constexpr const char* kStepKey = "posthoc_ema_step";
constexpr const char* kGammaKey = "posthoc_ema_gamma";

std::vector<at::Tensor> param_list(const torch::nn::Module& model) {
  std::vector<at::Tensor> out;
  for (const auto& p : model.named_parameters()) out.push_back(p.value());
  return out;
}

bool is_meta_key(const std::string& key) {
  return key.rfind("posthoc_ema_", 0) == 0;
}

// Reads `names` from `a` into `into` (shapes checked); `what` names the source in errors.
void read_params(torch::serialize::InputArchive& a, const std::vector<std::string>& names,
                 std::vector<at::Tensor>& into, const std::string& what) {
  at::NoGradGuard no_grad;
  for (size_t j = 0; j < names.size(); ++j) {
    at::Tensor t;
    if (!a.try_read(names[j], t)) throw Error(what + " has no parameter '" + names[j] + "'");
    if (t.sizes() != into[j].sizes()) {
      throw Error(what + ": parameter '" + names[j] + "' has shape " + c10::str(t.sizes()) +
                  ", the model has " + c10::str(into[j].sizes()));
    }
    into[j].copy_(t);
  }
}

// Writes an archive through path.tmp (fsync'ed, renamed), then its checksum sidecar. A stale
// sidecar is removed first so that it never vouches for new bytes.
void save_atomically(torch::serialize::OutputArchive& a, const std::string& path) {
  const std::string tmp = path + ".tmp";
  try {
    fs::remove(util::hash_sidecar_path(path));
    // Checked writes: LibTorch's writer aborts the process on a full disk (util/checked_write.hpp).
    util::write_checked(
        tmp, [&a](const std::string& p) { a.save_to(p); }, "EMA snapshot");
    util::fsync_path(tmp);
    fs::rename(tmp, path);
  } catch (const fs::filesystem_error& e) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw Error("cannot write '" + path + "': " + e.code().message());
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);  // no torn .tmp left behind
    throw;
  }
  util::write_hash_sidecar(path);
}

std::string fixed_digits(double v, int digits) {
  std::ostringstream os;
  os << std::setprecision(digits) << v;
  return os.str();
}

}  // namespace

double gamma_to_sigma_rel(double gamma) {
  return std::sqrt((gamma + 1) / ((gamma + 2) * (gamma + 2) * (gamma + 3)));
}

double sigma_rel_to_gamma(double sigma_rel) {
  const double max = gamma_to_sigma_rel(0);  // 1/sqrt(12)
  if (!(sigma_rel > 0 && sigma_rel <= max)) {
    throw Error(c10::str("sigma_rel ", sigma_rel, " is outside (0, ", max,
                         "] (the power EMAs with exponent gamma >= 0)"));
  }
  // sigma_rel(gamma) falls monotonically on [0, inf) and is about 1/gamma for large gamma:
  // bisection on [0, 2/sigma_rel + 10] converges to the cubic's largest root.
  double lo = 0, hi = 2 / sigma_rel + 10;
  for (int i = 0; i < 200 && hi - lo > 1e-13 * hi; ++i) {
    const double mid = 0.5 * (lo + hi);
    (gamma_to_sigma_rel(mid) > sigma_rel ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

// p(s) = (g+1) s^g / t^(g+1) on [0, t]. With m = min(t_a, t_b):
//   <p_a, p_b> = (g_a+1)(g_b+1) / (t_a^(g_a+1) t_b^(g_b+1)) * m^(g_a+g_b+1) / (g_a+g_b+1),
// taken through logarithms (t^g overflows for large t and g).
double power_profile_inner(double gamma_a, double t_a, double gamma_b, double t_b) {
  const double m = std::min(t_a, t_b);
  const double log_v = (gamma_a + gamma_b + 1) * std::log(m) - (gamma_a + 1) * std::log(t_a) -
                       (gamma_b + 1) * std::log(t_b);
  return (gamma_a + 1) * (gamma_b + 1) / (gamma_a + gamma_b + 1) * std::exp(log_v);
}

// ---- PowerEma --------------------------------------------------------------------------------

PowerEma::PowerEma(const torch::nn::Module& model, std::vector<double> sigma_rels)
    : sigma_rels_(std::move(sigma_rels)) {
  for (double s : sigma_rels_) gammas_.push_back(sigma_rel_to_gamma(s));
  for (const auto& p : model.named_parameters()) names_.push_back(p.key());
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < sigma_rels_.size(); ++i) {
    std::vector<at::Tensor> copy;
    for (const auto& p : param_list(model)) copy.push_back(p.detach().clone());
    ema_.push_back(std::move(copy));
  }
}

void PowerEma::update(const torch::nn::Module& model, int64_t step) {
  if (step <= step_) {
    throw Error(c10::str("power EMA update at step ", step, " after step ", step_));
  }
  at::NoGradGuard no_grad;
  const auto params = param_list(model);
  const double frac = static_cast<double>(step - step_) / static_cast<double>(step);
  for (size_t i = 0; i < gammas_.size(); ++i) {
    const double beta = std::pow(1.0 - frac, gammas_[i] + 1);
    at::_foreach_lerp_(ema_[i], params, at::Scalar(1.0 - beta));
  }
  step_ = step;
}

void PowerEma::save(torch::serialize::OutputArchive& a) const {
  a.write("step", at::tensor(step_));
  a.write("gammas", at::tensor(gammas_, at::kDouble));
  for (size_t i = 0; i < ema_.size(); ++i) {
    torch::serialize::OutputArchive p;
    for (size_t j = 0; j < names_.size(); ++j) p.write(names_[j], ema_[i][j]);
    a.write("profile_" + std::to_string(i), p);
  }
}

void PowerEma::load(torch::serialize::InputArchive& a) {
  at::Tensor g;
  a.read("gammas", g);
  std::vector<double> saved(g.data_ptr<double>(), g.data_ptr<double>() + g.numel());
  bool same = saved.size() == gammas_.size();
  for (size_t i = 0; same && i < saved.size(); ++i) {
    same = std::fabs(saved[i] - gammas_[i]) <= 1e-9 * gammas_[i];
  }
  if (!same) throw Error("the saved power EMA profiles have other gammas than this run's");
  at::Tensor s;
  a.read("step", s);
  for (size_t i = 0; i < ema_.size(); ++i) {
    torch::serialize::InputArchive p;
    a.read("profile_" + std::to_string(i), p);
    read_params(p, names_, ema_[i], "power EMA profile " + std::to_string(i));
  }
  step_ = s.item<int64_t>();
}

std::vector<std::string> PowerEma::write_snapshots(const std::string& run_dir) const {
  const std::string dir = snapshot_dir(run_dir);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error("cannot create '" + dir + "': " + ec.message());
  std::vector<std::string> out;
  for (size_t i = 0; i < ema_.size(); ++i) {
    torch::serialize::OutputArchive a;
    for (size_t j = 0; j < names_.size(); ++j) a.write(names_[j], ema_[i][j]);
    a.write(kStepKey, at::tensor(step_));
    a.write(kGammaKey, at::tensor(gammas_[i], at::kDouble));
    out.push_back(dir + "/" + snapshot_file(step_, gammas_[i]));
    save_atomically(a, out.back());
  }
  return out;
}

// ---- snapshots and their reconstruction ------------------------------------------------------

std::string snapshot_dir(const std::string& run_dir) {
  return (fs::path(run_dir) / "posthoc_ema").string();
}

std::string snapshot_file(int64_t step, double gamma) {
  // 12 digits sort by step; gamma with 9 digits names it closely enough to compute with (the
  // file holds the exact value, which reconstruct() checks).
  std::ostringstream os;
  os << "snap_" << std::setw(12) << std::setfill('0') << step << "_" << fixed_digits(gamma, 9)
     << ".pt";
  return os.str();
}

std::vector<Snapshot> list_snapshots(const std::string& run_dir) {
  const fs::path dir = snapshot_dir(run_dir);
  if (!fs::is_directory(dir)) throw Error("'" + dir.string() + "' does not exist");
  std::vector<Snapshot> out;
  // From the names, not the files: listing must not read every snapshot of a large model.
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.size() < 22 || name.rfind("snap_", 0) != 0 ||
        name.compare(name.size() - 3, 3, ".pt") != 0 || name[17] != '_') {
      continue;
    }
    Snapshot s;
    s.path = e.path().string();
    try {
      s.step = std::stoll(name.substr(5, 12));
      s.gamma = std::stod(name.substr(18, name.size() - 21));
    } catch (const std::exception&) {
      continue;
    }
    out.push_back(s);
  }
  std::sort(out.begin(), out.end(), [](const Snapshot& a, const Snapshot& b) {
    return a.step != b.step ? a.step < b.step : a.gamma < b.gamma;
  });
  return out;
}

std::vector<double> posthoc_coefficients(const std::vector<Snapshot>& snaps, double sigma_rel,
                                         int64_t step) {
  const double gamma = sigma_rel_to_gamma(sigma_rel);
  std::vector<size_t> used;
  for (size_t i = 0; i < snaps.size(); ++i) {
    if (snaps[i].step <= step && snaps[i].step > 0) used.push_back(i);
  }
  if (used.empty()) throw Error(c10::str("no power EMA snapshot at or before step ", step));
  // Times in units of the target step: the inner products scale as 1/t, the solution not.
  const auto t = [&](size_t i) { return static_cast<double>(snaps[i].step) / step; };
  const int64_t n = static_cast<int64_t>(used.size());
  at::Tensor A = at::empty({n, n}, at::kDouble), b = at::empty({n, 1}, at::kDouble);
  auto a_ = A.accessor<double, 2>();
  auto b_ = b.accessor<double, 2>();
  for (int64_t r = 0; r < n; ++r) {
    const size_t i = used[r];
    for (int64_t c = 0; c < n; ++c) {
      a_[r][c] = power_profile_inner(snaps[i].gamma, t(i), snaps[used[c]].gamma, t(used[c]));
    }
    b_[r][0] = power_profile_inner(snaps[i].gamma, t(i), gamma, 1.0);
  }
  // gelsd (SVD): A is a Gram matrix, near singular when profiles nearly coincide.
  const at::Tensor x = std::get<0>(at::linalg_lstsq(A, b, std::nullopt, "gelsd"));
  std::vector<double> out(snaps.size(), 0.0);
  for (int64_t r = 0; r < n; ++r) out[used[r]] = x[r][0].item<double>();
  return out;
}

Reconstruction reconstruct(const std::vector<Snapshot>& snaps, double sigma_rel, int64_t step) {
  Reconstruction rec;
  rec.coefficients = posthoc_coefficients(snaps, sigma_rel, step);
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < snaps.size(); ++i) {
    if (rec.coefficients[i] == 0.0) continue;
    const Snapshot& s = snaps[i];
    torch::serialize::InputArchive a;
    try {
      a.load_from(s.path, at::kCPU);
    } catch (const c10::Error& e) {
      throw Error("cannot read snapshot '" + s.path + "': " + e.what_without_backtrace());
    }
    if (!util::verify_hash_sidecar(s.path)) {
      log::warn("snapshot '" + s.path + "' has no checksum file: using it unverified");
    }
    at::Tensor step_t, gamma_t;
    if (!a.try_read(kStepKey, step_t) || !a.try_read(kGammaKey, gamma_t) ||
        step_t.item<int64_t>() != s.step ||
        std::fabs(gamma_t.item<double>() - s.gamma) > 1e-6 * s.gamma) {
      throw Error("snapshot '" + s.path + "' does not hold the step and gamma of its name");
    }
    if (rec.names.empty()) {
      for (const auto& k : a.keys()) {
        if (!is_meta_key(k)) rec.names.push_back(k);
      }
      for (const auto& k : rec.names) {
        at::Tensor t;
        a.read(k, t);
        const auto dtype = t.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
        rec.params.push_back(at::zeros(t.sizes(), t.options().dtype(dtype)));
      }
    }
    std::vector<at::Tensor> cur(rec.params.size());
    for (size_t j = 0; j < cur.size(); ++j) cur[j] = at::empty_like(rec.params[j]);
    read_params(a, rec.names, cur, "snapshot '" + s.path + "'");
    at::_foreach_add_(rec.params, cur, at::Scalar(rec.coefficients[i]));
  }
  return rec;
}

void write_ema_file(const std::vector<std::string>& names, const std::vector<at::Tensor>& params,
                    const std::string& path) {
  torch::serialize::OutputArchive a;
  for (size_t j = 0; j < names.size(); ++j) a.write(names[j], params[j]);
  save_atomically(a, path);
}

std::string posthoc_ema_file(double sigma_rel) {
  return "ema_phema_" + fixed_digits(sigma_rel, 6) + ".pt";
}

std::string reconstruction_problem(const std::vector<double>& coefficients, double sigma_rel,
                                   double tolerance) {
  double sum = 0;
  for (const double c : coefficients) sum += c;
  if (std::abs(sum - 1.0) <= tolerance) return "";
  return c10::str("the coefficients of sigma_rel ", sigma_rel, " sum to ", sum,
                  ", not 1: every weight is scaled by that, and the model is not an average of "
                  "the run's weights; ask for a sigma_rel nearer the tracked ones "
                  "(train.posthoc_ema.sigma_rels) or snapshot more often");
}

}  // namespace dmtrain::ema
