// Field table for RunConfig: the one place a key is declared (key, member, type, range, doc);
// its default is read back from RunConfig{} through the field's getter, so run_config.hpp stays
// the only home of defaults. Converters are strict: "1.5" is not an integer, "yes" is not a
// boolean, a scalar is not a list. Ranges are checked here; cross-field rules in load.cpp.
#include "dmtrain/config/schema.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "dmtrain/util/error.hpp"
#include "dmtrain/util/text.hpp"

namespace dmtrain::config {
namespace {

using util::edit_distance;

// Flow style all the way down, so that a value from a block-style file prints on one line.
void set_flow(YAML::Node node) {
  if (node.IsSequence()) {
    node.SetStyle(YAML::EmitterStyle::Flow);
    for (YAML::Node item : node) set_flow(item);
  } else if (node.IsMap()) {
    node.SetStyle(YAML::EmitterStyle::Flow);
    for (auto kv : node) set_flow(kv.second);
  }
}

[[noreturn]] void fail(const std::string& where, const std::string& key,
                       const std::string& expected, const YAML::Node& node) {
  std::string found;
  if (node.IsScalar()) {
    found = "'" + node.Scalar() + "'";
  } else if (node.IsSequence() || node.IsMap()) {
    // The value itself ("[0.999, 1.0]"), not only its kind: which item is wrong shows.
    YAML::Node copy = YAML::Clone(node);
    set_flow(copy);
    found = (node.IsSequence() ? "the list " : "the map ") + yaml_text(copy);
    if (found.size() > 120) found = found.substr(0, 117) + "...";
  } else {
    found = "nothing";
  }
  throw Error(where + ": key '" + key + "' expects " + expected + ", got " + found);
}

bool parse_int(const std::string& s, int64_t& out) {
  if (s.empty()) return false;
  size_t pos = 0;
  try {
    long long v = std::stoll(s, &pos, 10);
    if (pos != s.size()) return false;
    out = v;
    return true;
  } catch (...) {
    return false;
  }
}

bool parse_double(const std::string& s, double& out) {
  if (s.empty()) return false;
  size_t pos = 0;
  try {
    out = std::stod(s, &pos);
    return pos == s.size() && std::isfinite(out);
  } catch (...) {
    return false;
  }
}

// Scalar converters: return false when the YAML value has the wrong type.
bool convert(const YAML::Node& n, int64_t& out) {
  return n.IsScalar() && parse_int(n.Scalar(), out);
}
bool convert(const YAML::Node& n, uint64_t& out) {
  int64_t v = 0;
  if (!convert(n, v) || v < 0) return false;
  out = static_cast<uint64_t>(v);
  return true;
}
bool convert(const YAML::Node& n, double& out) {
  return n.IsScalar() && parse_double(n.Scalar(), out);
}
bool convert(const YAML::Node& n, bool& out) {
  if (!n.IsScalar()) return false;
  const std::string& s = n.Scalar();
  if (s == "true" || s == "True") return out = true, true;
  if (s == "false" || s == "False") return out = false, true;
  return false;
}
bool convert(const YAML::Node& n, std::string& out) {
  if (!n.IsScalar()) return false;
  out = n.Scalar();
  return true;
}
template <class T>
bool convert(const YAML::Node& n, std::vector<T>& out) {
  if (!n.IsSequence()) return false;
  std::vector<T> v;
  for (const auto& item : n) {
    T x{};
    if (!convert(item, x)) return false;
    v.push_back(x);
  }
  out = std::move(v);
  return true;
}

template <class T>
YAML::Node to_yaml(const T& v) {
  return YAML::Node(v);
}
YAML::Node to_yaml(const double& v) {
  // The shortest text that reads back as exactly v (0.3, not 0.29999999999999999), so that dumps
  // and docs show the value as written; an exponent only for small numbers (600, not 6e+02).
  std::string s;
  for (int precision = 1; precision <= 17; ++precision) {
    std::ostringstream os;
    os.precision(precision);
    os << v;
    s = os.str();
    const bool plain = s.find('e') == std::string::npos || std::fabs(v) < 1e-4;
    if (plain && std::stod(s) == v) break;
  }
  // Keep a decimal point so that the value reads back as a number, not an integer.
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return YAML::Node(s);
}
YAML::Node to_yaml(const std::vector<double>& v) {
  YAML::Node n(YAML::NodeType::Sequence);
  for (double x : v) n.push_back(to_yaml(x));
  n.SetStyle(YAML::EmitterStyle::Flow);
  return n;
}
YAML::Node to_yaml(const std::vector<int64_t>& v) {
  YAML::Node n(YAML::NodeType::Sequence);
  for (int64_t x : v) n.push_back(x);
  n.SetStyle(YAML::EmitterStyle::Flow);
  return n;
}

const char* type_name(const int64_t&) {
  return "integer";
}
const char* type_name(const uint64_t&) {
  return "integer";
}
const char* type_name(const double&) {
  return "number";
}
const char* type_name(const bool&) {
  return "boolean";
}
const char* type_name(const std::string&) {
  return "string";
}
const char* type_name(const std::vector<int64_t>&) {
  return "list of integers";
}
const char* type_name(const std::vector<double>&) {
  return "list of numbers";
}

// Candidates for a field's example, nearest the default first; the first one in range is taken.
// Keys whose range these miss, or whose first fit would make no sense, get an explicit example.
std::vector<int64_t> nearby(const int64_t& d) {
  return {d + 1, d - 1};
}
std::vector<uint64_t> nearby(const uint64_t& d) {
  return {d + 1};
}
std::vector<double> nearby(const double& d) {
  return {d * 2, d / 2, d + 1, 0.5};
}
std::vector<bool> nearby(const bool& d) {
  return {!d};
}
std::vector<std::string> nearby(const std::string& d) {
  return {d.empty() ? "other" : d + "_other"};
}
template <class T>
std::vector<std::vector<T>> nearby(const std::vector<T>& d) {
  std::vector<std::vector<T>> out;
  if (d.size() > 1) out.emplace_back(d.begin(), d.end() - 1);
  out.push_back(d);
  out.back().push_back(d.empty() ? T{1} : d.back());
  return out;
}

// One key bound to the member that `ref` reaches (ref(cfg) is a T&, or a const T& for a const
// cfg): the converter, the dumper, and what the docs and the tests read (type, default, example).
template <class T, class Ref>
Field bind(std::string key, Ref ref, std::string expected, std::function<bool(const T&)> ok,
           std::string doc) {
  Field f;
  f.key = key;
  f.type = type_name(T{});
  f.expected = expected;
  f.doc = std::move(doc);
  f.set = [key, expected, ref, ok](RunConfig& cfg, const YAML::Node& node,
                                   const std::string& where) {
    T value{};
    if (!convert(node, value) || (ok && !ok(value))) fail(where, key, expected, node);
    ref(cfg) = value;
  };
  f.get = [ref](const RunConfig& cfg) { return to_yaml(ref(cfg)); };
  const RunConfig defaults;
  f.default_value = yaml_text(f.get(defaults));
  const T def = ref(defaults);
  for (const T& v : nearby(def)) {
    if (!(v == def) && (!ok || ok(v))) {
      f.example = yaml_text(to_yaml(v));
      break;
    }
  }
  return f;
}

template <class S, class T>
Field make(std::string key, S RunConfig::*section, T S::*member, std::string expected,
           std::function<bool(const T&)> ok, std::string doc) {
  return bind<T>(
      std::move(key),
      [section, member](auto& cfg) -> decltype(auto) { return (cfg.*section).*member; },
      std::move(expected), std::move(ok), std::move(doc));
}

// A train.* key bound to a member of the model's KernelOptions (models/kernel_options.hpp): the
// switch's one home; the recipe hands the whole struct to the UNet.
Field kernel_switch(std::string key, bool models::KernelOptions::*member, std::string doc) {
  return config::bind<bool>(  // qualified: std::bind would be found by ADL
      std::move(key), [member](auto& cfg) -> decltype(auto) { return (cfg.train.kernels.*member); },
      "true or false", nullptr, std::move(doc));
}

template <class S, class T>
Field any(std::string key, S RunConfig::*s, T S::*m, std::string expected, std::string doc) {
  return make<S, T>(std::move(key), s, m, std::move(expected), nullptr, std::move(doc));
}

template <class S>
Field choice(std::string key, S RunConfig::*s, std::string S::*m, std::vector<std::string> options,
             std::string doc) {
  std::string expected = "one of";
  for (size_t i = 0; i < options.size(); ++i) expected += (i ? ", " : " ") + options[i];
  Field f = make<S, std::string>(
      std::move(key), s, m, expected,
      [options](const std::string& v) {
        return std::find(options.begin(), options.end(), v) != options.end();
      },
      std::move(doc));
  const RunConfig defaults;
  for (const auto& o : options) {
    if (o != (defaults.*s).*m) {
      f.example = yaml_text(YAML::Node(o));
      break;
    }
  }
  f.choices = std::move(options);
  return f;
}

// A key of a section nested in `timestep` (timestep.clts.mu, timestep.speed.k, ...).
template <class Sub, class V>
Field nested_timestep(Sub TimestepConfig::*sub, V Sub::*member, std::string key,
                      std::string expected, std::function<bool(const V&)> ok, std::string doc) {
  return bind<V>(
      std::move(key),
      [sub, member](auto& cfg) -> decltype(auto) { return (cfg.timestep.*sub).*member; },
      std::move(expected), std::move(ok), std::move(doc));
}

// `f` with an explicit example, where the generic one (nearby) is out of range or meaningless.
Field with_example(Field f, std::string example) {
  f.example = std::move(example);
  return f;
}

template <class S>
Field int_at_least(std::string key, S RunConfig::*s, int64_t S::*m, int64_t lo, std::string doc) {
  return make<S, int64_t>(
      std::move(key), s, m, "an integer >= " + std::to_string(lo),
      [lo](const int64_t& v) { return v >= lo; }, std::move(doc));
}

template <class S>
Field number_in(std::string key, S RunConfig::*s, double S::*m, double lo, double hi, bool lo_open,
                bool hi_open, std::string doc) {
  std::ostringstream e;
  e << "a number in " << (lo_open ? "(" : "[") << lo << ", ";
  if (std::isinf(hi)) {
    e << "inf)";
  } else {
    e << hi << (hi_open ? ")" : "]");
  }
  return make<S, double>(
      std::move(key), s, m, e.str(),
      [=](const double& v) { return (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi); },
      std::move(doc));
}

template <class S>
Field positive_ints(std::string key, S RunConfig::*s, std::vector<int64_t> S::*m, bool allow_empty,
                    std::string doc) {
  return make<S, std::vector<int64_t>>(
      std::move(key), s, m,
      allow_empty ? "a list of integers >= 1" : "a non-empty list of integers >= 1",
      [allow_empty](const std::vector<int64_t>& v) {
        return (allow_empty || !v.empty()) &&
               std::all_of(v.begin(), v.end(), [](int64_t x) { return x >= 1; });
      },
      std::move(doc));
}

constexpr double kInf = std::numeric_limits<double>::infinity();

std::vector<Field> build() {
  using R = RunConfig;
  using M = ModelConfig;
  using D = DiffusionConfig;
  using T = TimestepConfig;
  using W = timestep::LossWeightingOptions;
  using O = OptimConfig;
  using Da = DataConfig;
  using Tr = TrainConfig;
  using C = CheckpointConfig;
  using L = LogConfig;
  using S = SampleConfig;
  using Di = DistConfig;
  using E = EvalConfig;
  std::vector<Field> f;
  // model
  f.push_back(with_example(
      int_at_least("model.image_size", &R::model, &M::image_size, 8, "image side in pixels"),
      "64"));
  f.push_back(int_at_least("model.in_channels", &R::model, &M::in_channels, 1, "image channels"));
  f.push_back(with_example(
      int_at_least("model.model_channels", &R::model, &M::model_channels, 1,
                   "base channel width (a multiple of 32; times channel_mult per level)"),
      "64"));
  f.push_back(any("model.learn_sigma", &R::model, &M::learn_sigma, "true or false",
                  "learn the variance (2x output channels, learned_range)"));
  f.push_back(int_at_least("model.num_res_blocks", &R::model, &M::num_res_blocks, 1,
                           "residual blocks per resolution level"));
  f.push_back(positive_ints("model.channel_mult", &R::model, &M::channel_mult, false,
                            "width multiplier per level"));
  f.push_back(positive_ints("model.attention_resolutions", &R::model, &M::attention_resolutions,
                            true, "resolutions (pixels) with self-attention"));
  f.push_back(number_in("model.dropout", &R::model, &M::dropout, 0, 1, false, true,
                        "dropout rate in the residual blocks"));
  f.push_back(int_at_least("model.num_heads", &R::model, &M::num_heads, 1, "attention heads"));
  f.push_back(with_example(any("model.num_head_channels", &R::model, &M::num_head_channels,
                               "an integer (-1: use num_heads)",
                               "channels per attention head (instead of a head count)"),
                           "64"));
  f.push_back(
      with_example(any("model.num_heads_upsample", &R::model, &M::num_heads_upsample,
                       "an integer (-1: num_heads)", "attention heads on the upsampling path"),
                   "2"));
  f.push_back(any("model.use_scale_shift_norm", &R::model, &M::use_scale_shift_norm,
                  "true or false", "FiLM conditioning from the timestep embedding"));
  f.push_back(any("model.resblock_updown", &R::model, &M::resblock_updown, "true or false",
                  "BigGAN-style up/down-sampling residual blocks"));
  f.push_back(any("model.use_new_attention_order", &R::model, &M::use_new_attention_order,
                  "true or false", "split qkv before heads (GD) instead of the legacy order"));
  f.push_back(int_at_least("model.num_classes", &R::model, &M::num_classes, 0,
                           "classes for class conditioning (0: unconditional)"));
  // diffusion
  f.push_back(int_at_least("diffusion.steps", &R::diffusion, &D::steps, 1,
                           "T, the number of diffusion steps"));
  f.push_back(choice("diffusion.noise_schedule", &R::diffusion, &D::noise_schedule,
                     {"linear", "cosine"}, "noise (beta) schedule"));
  f.push_back(choice("diffusion.mean_type", &R::diffusion, &D::mean_type, {"epsilon", "x0", "v"},
                     "what the model predicts: the noise, x_0, or v"));
  f.push_back(choice(
      "diffusion.loss", &R::diffusion, &D::loss, {"mse", "rescaled_mse", "kl", "rescaled_kl"},
      "training loss: mse or rescaled_mse (with learn_sigma plus the variational bound "
      "for the variance; rescaled: times T/1000), or the bound alone (kl; "
      "rescaled_kl: times T)"));
  f.push_back(any("diffusion.rescale_timesteps", &R::diffusion, &D::rescale_timesteps,
                  "true or false", "the model sees t * 1000 / T instead of t"));
  f.push_back(
      with_example(any("diffusion.timestep_respacing", &R::diffusion, &D::timestep_respacing,
                       "a respacing spec (\"\", \"250\", \"ddim25\", \"10,10\")",
                       "train on a subset of the T steps (\"\": all)"),
                   "250"));
  // timestep sampler
  f.push_back(choice("timestep.sampler", &R::timestep, &T::sampler,
                     {"uniform", "clts", "loss-second-moment", "speed", "logit-normal", "laplace"},
                     "how the training timestep t is drawn"));
  using Cl = timestep::CltsOptions;
  using Sp = timestep::SpeedOptions;
  using Ln = timestep::LogitNormalOptions;
  const auto any_bool = [](const bool&) { return true; };
  const auto positive = [](const double& v) { return v > 0 && std::isfinite(v); };
  const auto unit = [](const double& v) { return v >= 0 && v <= 1; };
  f.push_back(nested_timestep<Cl, double>(&T::clts, &Cl::mu, "timestep.clts.mu",
                                          "a number in [0, 1]", unit,
                                          "CLTS: centre of the Gaussian, in t/T"));
  f.push_back(nested_timestep<Cl, double>(&T::clts, &Cl::sigma, "timestep.clts.sigma",
                                          "a number > 0", positive,
                                          "CLTS: width of the Gaussian, in t/T"));
  f.push_back(nested_timestep<Cl, int64_t>(
      &T::clts, &Cl::target_iteration, "timestep.clts.target_iteration", "an integer >= 1",
      [](const int64_t& v) { return v >= 1; },
      "CLTS: iteration at which sampling is fully the Gaussian"));
  f.push_back(nested_timestep<Cl, bool>(&T::clts, &Cl::importance_weighting,
                                        "timestep.clts.importance_weighting", "true or false",
                                        any_bool, "CLTS: weight each loss by 1/(T p_k(t))"));
  f.push_back(nested_timestep<Sp, double>(
      &T::speed, &Sp::tau, "timestep.speed.tau", "a number in (0, 1]",
      [](const double& v) { return v > 0 && v <= 1; },
      "SpeeD: start of the suppressed large t, in t/T"));
  f.push_back(nested_timestep<Sp, double>(&T::speed, &Sp::k, "timestep.speed.k", "a number > 0",
                                          positive, "SpeeD: p(t < tau) / p(t >= tau)"));
  f.push_back(nested_timestep<Sp, double>(&T::speed, &Sp::lambda, "timestep.speed.lambda",
                                          "a number in [0, 1]", unit,
                                          "SpeeD: change-aware weight's lambda"));
  f.push_back(nested_timestep<Sp, bool>(&T::speed, &Sp::dual, "timestep.speed.dual",
                                        "true or false", any_bool,
                                        "SpeeD: half the batch at the dual timesteps |m - t|"));
  f.push_back(nested_timestep<Sp, bool>(&T::speed, &Sp::weighting, "timestep.speed.weighting",
                                        "true or false", any_bool,
                                        "SpeeD: change-aware loss weight"));
  f.push_back(nested_timestep<Sp, double>(
      &T::speed, &Sp::threshold, "timestep.speed.threshold", "a number > 0", positive,
      "SpeeD: m is the first t where d sqrt(1-abar)/d(t/T) falls below this (the reference's "
      "1e-4 per step at T = 1000 is 0.1)"));
  f.push_back(nested_timestep<Ln, double>(
      &T::logit_normal, &Ln::mean, "timestep.logit_normal.mean", "a finite number",
      [](const double& v) { return std::isfinite(v); }, "logit-normal: mean of logit(t/T)"));
  f.push_back(nested_timestep<Ln, double>(&T::logit_normal, &Ln::std, "timestep.logit_normal.std",
                                          "a number > 0", positive,
                                          "logit-normal: std of logit(t/T)"));
  using La = timestep::LaplaceOptions;
  f.push_back(nested_timestep<La, double>(
      &T::laplace, &La::mu, "timestep.laplace.mu", "a finite number",
      [](const double& v) { return std::isfinite(v); }, "Laplace: location of log SNR"));
  f.push_back(nested_timestep<La, double>(&T::laplace, &La::b, "timestep.laplace.b", "a number > 0",
                                          positive, "Laplace: scale of log SNR"));
  // loss weighting
  f.push_back(choice("loss_weight.kind", &R::loss_weight, &W::kind, {"none", "min-snr", "p2"},
                     "per-timestep loss weight (Min-SNR, P2)"));
  f.push_back(choice("loss_weight.terms", &R::loss_weight, &W::terms, {"mse", "all"},
                     "loss terms the weight (and SpeeD's) multiplies: mse (as the authors' code; "
                     "L_hybrid's vb term unweighted) or all"));
  f.push_back(number_in("loss_weight.gamma", &R::loss_weight, &W::gamma, 0, kInf, true, true,
                        "Min-SNR: the SNR clamp gamma"));
  f.push_back(
      number_in("loss_weight.p2_k", &R::loss_weight, &W::p2_k, 0, kInf, true, true, "P2: k"));
  f.push_back(number_in("loss_weight.p2_gamma", &R::loss_weight, &W::p2_gamma, 0, kInf, false, true,
                        "P2: gamma"));
  // optimizer
  f.push_back(number_in("optim.lr", &R::optim, &O::lr, 0, kInf, true, true,
                        "learning rate (lr_0 of the schedules)"));
  f.push_back(number_in("optim.beta1", &R::optim, &O::beta1, 0, 1, false, true,
                        "Adam beta1 (MDLRC: its start value)"));
  f.push_back(number_in("optim.beta2", &R::optim, &O::beta2, 0, 1, false, true, "Adam beta2"));
  f.push_back(number_in("optim.eps", &R::optim, &O::eps, 0, kInf, true, true, "Adam epsilon"));
  f.push_back(number_in("optim.weight_decay", &R::optim, &O::weight_decay, 0, kInf, false, true,
                        "weight decay"));
  f.push_back(any("optim.decoupled_weight_decay", &R::optim, &O::decoupled_weight_decay,
                  "true or false", "AdamW (true) or Adam with L2 (false)"));
  f.push_back(any("optim.momentum_decay", &R::optim, &O::momentum_decay, "true or false",
                  "MDLRC: decay beta1 by Demon's rule"));
  f.push_back(number_in("optim.beta1_min", &R::optim, &O::beta1_min, 0, 1, false, true,
                        "MDLRC: the value beta1 decays to"));
  f.push_back(any("optim.lr_compensation", &R::optim, &O::lr_compensation, "true or false",
                  "MDLRC: keep lr (1 - beta1) constant"));
  f.push_back(choice("optim.lr_schedule", &R::optim, &O::lr_schedule,
                     {"constant", "mdlrc", "linear", "cosine"},
                     "lr decay without compensation (mdlrc: MDLRC's lr with beta1 held)"));
  f.push_back(number_in("optim.lr_min_ratio", &R::optim, &O::lr_min_ratio, 0, 1, false, false,
                        "floor of the linear / cosine lr schedule, a fraction of optim.lr"));
  f.push_back(int_at_least("optim.warmup_iterations", &R::optim, &O::warmup_iterations, 0,
                           "linear lr warm-up: lr_k x min(1, (k + 1) / this); 0: none"));
  f.push_back(number_in("optim.grad_clip", &R::optim, &O::grad_clip, 0, kInf, false, true,
                        "max global grad norm (0: off)"));
  // data
  f.push_back(choice("data.format", &R::data, &Da::format,
                     {"auto", "idx", "cifar-bin", "folder", "cache", "synthetic"},
                     "data set format (synthetic: random pixels, for benchmarks)"));
  f.push_back(any("data.path", &R::data, &Da::path, "a path",
                  "data set file or folder (required unless format is synthetic)"));
  f.push_back(choice("data.split", &R::data, &Da::split, {"train", "test"},
                     "data set split (IDX and CIFAR folders hold both)"));
  f.push_back(any("data.cache", &R::data, &Da::cache, "a path or \"\"",
                  "packed cache file, prepared on first use (\"\": none)"));
  f.push_back(choice("data.labels", &R::data, &Da::labels, {"none", "folder", "prefix"},
                     "where class labels come from"));
  f.push_back(choice("data.on_bad_file", &R::data, &Da::on_bad_file, {"fail", "skip"},
                     "an unreadable image file stops the run, or is skipped with a warning"));
  f.push_back(any("data.random_flip", &R::data, &Da::random_flip, "true or false",
                  "random horizontal flips"));
  f.push_back(
      int_at_least("data.num_workers", &R::data, &Da::num_workers, 0, "data loader threads"));
  // train
  f.push_back(int_at_least("train.iterations", &R::train, &Tr::iterations, 1,
                           "total optimizer steps (required)"));
  f.push_back(int_at_least("train.batch_size", &R::train, &Tr::batch_size, 1,
                           "global batch, split over ranks"));
  f.push_back(any("train.seed", &R::train, &Tr::seed, "an integer >= 0", "seed of everything"));
  f.push_back(choice("train.precision", &R::train, &Tr::precision, {"auto", "fp32", "bf16", "fp16"},
                     "autocast precision (auto: bf16 on CUDA, fp32 on the CPU)"));
  f.push_back(choice("train.device", &R::train, &Tr::device, {"auto", "cpu", "cuda"},
                     "device to train on (auto: CUDA when available)"));
  f.push_back(any("train.run_dir", &R::train, &Tr::run_dir, "a path",
                  "run directory (config, logs, checkpoints, samples)"));
  f.push_back(with_example(
      make<Tr, std::vector<double>>(
          // Non-empty: the sample grids, FID and the final export read EMA 0.
          "train.ema_rates", &R::train, &Tr::ema_rates, "a non-empty list of numbers in [0, 1)",
          [](const std::vector<double>& v) {
            return !v.empty() &&
                   std::all_of(v.begin(), v.end(), [](double x) { return x >= 0 && x < 1; });
          },
          "EMA decay rates, one EMA of the weights each"),
      "[0.999, 0.9999]"));
  f.push_back(any("train.ema_warmup", &R::train, &Tr::ema_warmup, "true or false",
                  "ramp each EMA rate as min(rate, (1 + k) / (10 + k)) (k-diffusion, EDM); off "
                  "in the paper's recipes"));
  f.push_back(int_at_least("train.threads", &R::train, &Tr::threads, 0,
                           "CPU intra-op threads (0: OMP_NUM_THREADS if set, else the cores "
                           "that the machine's load average leaves free, at least one)"));
  f.push_back(int_at_least("train.max_consecutive_nonfinite", &R::train,
                           &Tr::max_consecutive_nonfinite, 1,
                           "stop after this many non-finite steps in a row"));
  f.push_back(int_at_least("train.micro_batches", &R::train, &Tr::micro_batches, 1,
                           "accumulate gradients over this many chunks of each rank's batch"));
  f.push_back(any("train.channels_last", &R::train, &Tr::channels_last, "true or false",
                  "NHWC memory format for weights and activations on CUDA"));
  f.push_back(any("train.cudnn_benchmark", &R::train, &Tr::cudnn_benchmark, "true or false",
                  "let cuDNN time its algorithms for the (fixed) shapes"));
  f.push_back(kernel_switch("train.fused_kernels", &models::KernelOptions::fused_group_norm,
                            "dmtrain's fused GroupNorm+scale/shift+SiLU CUDA kernels"));
  f.push_back(any("train.cuda_graphs", &R::train, &Tr::cuda_graphs, "true or false",
                  "replay forward+backward as a CUDA graph (one GPU, one micro-batch)"));
  f.push_back(any("train.graph_optimizer", &R::train, &Tr::graph_optimizer, "true or false",
                  "with train.cuda_graphs (bf16/fp32): the optimizer and EMA update inside the "
                  "graph, one fused kernel over flat buffers (else eager after each step)"));
  f.push_back(
      kernel_switch("train.fast_conv_bias", &models::KernelOptions::fast_conv_bias,
                    "convolution biases added, and their gradients summed, by dmtrain's vectorised "
                    "CUDA kernels instead of LibTorch's broadcasting add and sum"));
  f.push_back(
      kernel_switch("train.attention_token_major", &models::KernelOptions::attention_token_major,
                    "attention blocks as token-major matrix products (no qkv copy, no layout "
                    "transposes; same weights and results)"));
  f.push_back(kernel_switch(
      "train.group_norm_cached_backward", &models::KernelOptions::group_norm_cached_backward,
      "NCHW fused GroupNorm backward that reads x and dL/dy once, keeping them in "
      "registers between its two passes (where they fit; the same results to the bit)"));
  f.push_back(kernel_switch(
      "train.fast_avg_pool", &models::KernelOptions::fast_avg_pool,
      "2x2 average pooling (GD's down ResBlocks) whose gradient is the nearest "
      "upsampling of dL/dy / 4 instead of ATen's avg_pool2d backward (the same values "
      "to the bit; ATen's channels-last backward is slow)"));
  f.push_back(any("train.prefetch_inputs", &R::train, &Tr::prefetch_inputs, "true or false",
                  "prepare the next iteration's batch and draws (timesteps, weights, noise) while "
                  "the device runs this one, before the step's host sync (same numbers; not with "
                  "a sampler that learns from the losses)"));
  f.push_back(any("train.graph_grad_gather", &R::train, &Tr::graph_grad_gather, "true or false",
                  "with train.graph_optimizer on one GPU: the backward's gradients gathered into "
                  "the flat buffer by one multi-tensor copy, instead of accumulated into its "
                  "zeroed views by one add kernel per parameter (same values)"));
  f.push_back(kernel_switch(
      "train.nhwc_group_norm_rows", &models::KernelOptions::group_norm_rows,
      "with train.channels_last: fused GroupNorm kernels that read whole pixel rows "
      "(tiles of pixels with every channel) instead of one block per (sample, group)"));
  f.push_back(with_example(
      bind<std::vector<double>>(
          "train.posthoc_ema.sigma_rels",
          [](auto& cfg) -> decltype(auto) { return (cfg.train.posthoc_ema.sigma_rels); },
          "a list of numbers in (0, 0.288] (sigma_rel <= 1/sqrt(12): exponent gamma >= 0)",
          [](const std::vector<double>& v) {
            return std::all_of(v.begin(), v.end(),
                               [](double x) { return x > 0 && x <= 1 / std::sqrt(12.0); });
          },
          "post-hoc EMA (EDM2): relative lengths of the power-function EMA profiles kept for "
          "`dmtrain ema` (EDM2: [0.05, 0.1]; []: off)"),
      "[0.05, 0.1]"));
  f.push_back(bind<int64_t>(
      "train.posthoc_ema.snapshot_every",
      [](auto& cfg) -> decltype(auto) { return (cfg.train.posthoc_ema.snapshot_every); },
      "an integer >= 0", [](const int64_t& v) { return v >= 0; },
      "post-hoc EMA: iterations between snapshots of the profiles, and at the end (> 0 when "
      "sigma_rels is set)"));
  // checkpoint
  f.push_back(
      int_at_least("checkpoint.every", &R::checkpoint, &C::every, 0,
                   "checkpoint interval in iterations (0: only at the end and on signals)"));
  f.push_back(int_at_least("checkpoint.keep_last", &R::checkpoint, &C::keep_last, 1,
                           "newest checkpoints kept"));
  f.push_back(int_at_least("checkpoint.keep_every", &R::checkpoint, &C::keep_every, 0,
                           "also keep every M-th iteration (0: none)"));
  f.push_back(any("checkpoint.async", &R::checkpoint, &C::async, "true or false",
                  "snapshot the state to host memory and write, commit and prune the checkpoint "
                  "in the background while training goes on (false: on the training thread)"));
  // log
  f.push_back(int_at_least("log.every", &R::log, &L::every, 1,
                           "iterations between status lines and metrics records"));
  f.push_back(
      choice("log.level", &R::log, &L::level, {"debug", "info", "warn", "error"}, "log level"));
  f.push_back(any("log.tensorboard", &R::log, &L::tensorboard, "true or false",
                  "TensorBoard event files in <run_dir>/tensorboard (scalars, sample grids, "
                  "p_k(t)); rank 0"));
  // sample
  f.push_back(int_at_least("sample.every", &R::sample, &S::every, 0,
                           "iterations between sample grids (0: only at the end)"));
  f.push_back(int_at_least("sample.count", &R::sample, &S::count, 1, "images in the grid"));
  f.push_back(
      choice("sample.sampler", &R::sample, &S::sampler, {"ddpm", "ddim"}, "sampler of the grids"));
  f.push_back(with_example(any("sample.steps", &R::sample, &S::steps, "a respacing spec",
                               "sampling steps, as a respacing spec (\"250\", \"ddim50\", ...)"),
                           "ddim25"));
  f.push_back(number_in("sample.eta", &R::sample, &S::eta, 0, kInf, false, true,
                        "DDIM eta (0: deterministic)"));
  f.push_back(any("sample.seed", &R::sample, &S::seed, "an integer >= 0",
                  "seed of the grids' fixed noise"));
  f.push_back(any("sample.raw", &R::sample, &S::raw, "true or false",
                  "also a grid of the raw weights next to each EMA's (same noise)"));
  // eval
  f.push_back(int_at_least("eval.fid_every", &R::eval, &E::fid_every, 0,
                           "FID of the EMA every N iterations (0: off)"));
  f.push_back(int_at_least("eval.fid_samples", &R::eval, &E::fid_samples, 2,
                           "samples per FID (the same noise every time)"));
  f.push_back(any("eval.inception", &R::eval, &E::inception, "a path",
                  "FID Inception-v3 TorchScript file (docs/evaluation.md)"));
  f.push_back(any("eval.reference", &R::eval, &E::reference, "a path",
                  "reference .npz: features (dmtrain fid --cache-ref; FID, KID, precision/recall) "
                  "or mu, sigma only (FID)"));
  f.push_back(with_example(
      any("eval.steps", &R::eval, &E::steps, "a respacing spec", "FID sampler steps (DDIM, eta 0)"),
      "250"));
  f.push_back(int_at_least("eval.batch", &R::eval, &E::batch, 1, "FID samples per forward"));
  f.push_back(any("eval.seed", &R::eval, &E::seed, "an integer >= 0", "FID noise seed"));
  // dist
  f.push_back(number_in(
      "dist.timeout_s", &R::dist, &Di::timeout_s, 0, kInf, true, true,
      "seconds a rendezvous or collective waits before a dead or hung rank ends the job"));
  f.push_back(int_at_least("dist.bucket_mib", &R::dist, &Di::bucket_mib, 1,
                           "gradient all-reduce bucket size in MiB (as DDP's bucket_cap_mb)"));
  f.push_back(any("dist.graph_step", &R::dist, &Di::graph_step, "true or false",
                  "the data-parallel step as a CUDA graph (forward, backward with its bucketed "
                  "NCCL all-reduce, optimizer + EMA); off until measured on several GPUs"));
  return f;
}

}  // namespace

std::string yaml_text(const YAML::Node& value) {
  YAML::Emitter out;
  out << value;
  return out.c_str();
}

const std::vector<Field>& schema() {
  static const std::vector<Field> fields = build();
  return fields;
}

const Field* find_field(const std::string& key) {
  for (const auto& f : schema()) {
    if (f.key == key) return &f;
  }
  return nullptr;
}

std::string closest_key(const std::string& key) {
  std::string best;
  size_t best_d = std::numeric_limits<size_t>::max();
  // Compare whole keys and, so that a right leaf in a wrong section is found, the leaf alone.
  const std::string leaf = key.substr(key.rfind('.') + 1);
  for (const auto& f : schema()) {
    const std::string fleaf = f.key.substr(f.key.rfind('.') + 1);
    size_t d = std::min(edit_distance(key, f.key), edit_distance(leaf, fleaf) + 1);
    if (d < best_d) best_d = d, best = f.key;
  }
  return best_d <= std::max<size_t>(2, key.size() / 4) ? best : "";
}

}  // namespace dmtrain::config
