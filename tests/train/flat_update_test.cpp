// The fused optimizer + EMA update over flat buffers (optim/flat_update.hpp, train.graph_optimizer)
// against what the trainer runs without it: MdlrcAdam::step (plain path) after clip_grad_norm_,
// then Ema::update, over several iterations with momentum decay and lr compensation on, for Adam
// and AdamW, with and without clipping, one non-finite step skipped. Also: flattening makes the
// model's, the optimizer's and the EMA's own tensors views of the buffers, and checkpoints move
// between flat and plain runs both ways. On the CPU here; the kernel and a graphed training run
// need a GPU (skipped without one).
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/nn/module.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/serialize.h>

#include <ATen/ATen.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <sstream>

#include "dmtrain/ema/ema.hpp"
#include "dmtrain/observe/metrics_log.hpp"
#include "dmtrain/optim/flat_update.hpp"
#include "dmtrain/optim/mdlrc_adam.hpp"
#include "dmtrain/train/trainer.hpp"
#include "dmtrain/util/error.hpp"
#include "support/scratch_dir.hpp"
#include "support/tiny_run.hpp"

namespace dmtrain::train {
namespace {

using optim::FlatOptimizerStep;
using optim::MdlrcAdam;
using optim::MdlrcAdamOptions;
using optim::MdlrcAdamParamState;

// Parameters of several shapes, one channels-last (the layout CUDA runs may give conv weights),
// one a single element; the same values for every seed-equal instance.
struct Toy : torch::nn::Module {
  explicit Toy(const at::Device& device = at::kCPU) {
    const at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(11);
    const auto init = [&](at::IntArrayRef shape) {
      return at::randn(shape, gen, at::TensorOptions().dtype(at::kFloat)).mul_(0.5).to(device);
    };
    register_parameter("conv_weight",
                       init({4, 3, 3, 3}).contiguous(at::MemoryFormat::ChannelsLast));
    register_parameter("conv_bias", init({4}));
    register_parameter("fc_weight", init({5, 7}));
    register_parameter("gain", init({1}));
  }
};

MdlrcAdamOptions adam_options(bool decoupled, double wd) {
  MdlrcAdamOptions o(2e-2);
  o.beta1(0.9).beta1_min(0.5).momentum_decay(true).lr_compensation(true).total_iterations(6);
  o.weight_decay(wd).decoupled_weight_decay(decoupled).implementation("plain");
  return o;
}

// One run's model, optimizer and EMAs (rates 0.9 and 0.99 with warm-up: weights below and above
// lerp's 0.5 switch).
struct Trainee {
  std::shared_ptr<Toy> model;
  std::vector<at::Tensor> params;
  std::unique_ptr<MdlrcAdam> optimizer;
  std::unique_ptr<ema::Ema> ema;
  Trainee(bool decoupled, double wd, const at::Device& device = at::kCPU)
      : model(std::make_shared<Toy>(device)), params(model->parameters()) {
    optimizer = std::make_unique<MdlrcAdam>(params, adam_options(decoupled, wd));
    ema = std::make_unique<ema::Ema>(*model, std::vector<double>{0.9, 0.99});
    ema->set_warmup(true);
  }
  std::vector<std::vector<at::Tensor>> ema_copies() const {
    return {ema->params(0), ema->params(1)};
  }
  const MdlrcAdamParamState& state(size_t i) const {
    return static_cast<const MdlrcAdamParamState&>(
        *optimizer->state().at(params[i].unsafeGetTensorImpl()));
  }
};

// Iteration k's gradient of parameter p (a function of p, so the runs must agree to stay equal);
// at `bad` it is not finite.
at::Tensor gradient(const at::Tensor& p, int64_t k, bool bad) {
  at::Tensor g = (p * static_cast<double>(k + 1)).sin() + 0.1 * static_cast<double>(k) - 0.05;
  if (bad) g.mul_(std::numeric_limits<float>::infinity());  // inf, or NaN where g is 0
  return g;
}

// The trainer's eager step: norm (clip_grad_norm_ or the global norm), finite check, then
// MdlrcAdam::step and Ema::update.
void eager_step(Trainee& s, int64_t k, bool bad, double clip) {
  {
    at::NoGradGuard no_grad;
    for (auto& p : s.params) p.mutable_grad() = gradient(p.detach(), k, bad);
  }
  double norm = 0;
  if (clip > 0) {
    norm = torch::nn::utils::clip_grad_norm_(s.params, clip);
  } else {
    std::vector<at::Tensor> grads;
    for (const auto& p : s.params) grads.push_back(p.grad());
    norm = at::stack(at::_foreach_norm(grads, 2)).norm().item<double>();
  }
  if (!std::isfinite(norm)) return;
  s.optimizer->set_iteration(k);
  s.optimizer->step();
  s.ema->update(*s.model, k);
}

// The same step through FlatOptimizerStep (the gradients written into the flat grad views, as
// the captured backward accumulates into them).
void flat_step(Trainee& s, FlatOptimizerStep& flat, int64_t k, bool bad) {
  {
    at::NoGradGuard no_grad;
    flat.zero_grads();
    for (auto& p : s.params) p.grad().add_(gradient(p.detach(), k, bad));
  }
  flat.prepare(k);
  const at::Tensor loss = at::full({}, 1.5f, s.params.front().options());
  const double norm = flat.update(loss).item<double>();
  if (!std::isfinite(norm)) return;
  s.optimizer->set_iteration(k);
  flat.commit(k);
}

// max |a - b| <= rel * max |b| (a scale-relative bound: moments can cancel to near zero).
void expect_close(const at::Tensor& a, const at::Tensor& b, double rel, const std::string& what) {
  const double scale = b.abs().max().item<double>();
  const double diff = (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
  EXPECT_LE(diff, rel * std::max(scale, 1e-30)) << what << ": max |diff| " << diff;
}

void expect_same_state(const Trainee& a, const Trainee& b, double rel, const std::string& at) {
  for (size_t i = 0; i < a.params.size(); ++i) {
    const std::string what = at + ", parameter " + std::to_string(i);
    expect_close(a.params[i], b.params[i], rel, what + " weights");
    expect_close(a.state(i).exp_avg(), b.state(i).exp_avg(), rel, what + " exp_avg");
    expect_close(a.state(i).exp_avg_sq(), b.state(i).exp_avg_sq(), rel, what + " exp_avg_sq");
    EXPECT_EQ(a.state(i).step(), b.state(i).step()) << what;
    for (size_t j = 0; j < 2; ++j) {
      expect_close(a.ema->params(j)[i], b.ema->params(j)[i], rel,
                   what + " EMA " + std::to_string(j));
    }
  }
  EXPECT_EQ(a.optimizer->iteration(), b.optimizer->iteration()) << at;
}

std::vector<at::Tensor> all_state(const Trainee& s) {
  std::vector<at::Tensor> out;
  for (size_t i = 0; i < s.params.size(); ++i) {
    out.push_back(s.params[i].detach().clone());
    out.push_back(s.state(i).exp_avg().clone());
    out.push_back(s.state(i).exp_avg_sq().clone());
    for (size_t j = 0; j < 2; ++j) out.push_back(s.ema->params(j)[i].clone());
  }
  return out;
}

struct Case {
  bool decoupled;
  double wd, clip;
};

class FlatUpdateVsEager : public ::testing::TestWithParam<Case> {};

// The flat update is the eager step's arithmetic, element for element, except where the eager
// kernels fuse a multiply-add (m.add_(g, 1 - b1), addcmul) that the reference's 0-dim-tensor ops
// round twice, and the norm: one reduction over the flat buffer against clip_grad_norm_'s norm of
// per-tensor norms (summation order). Both are float32 roundings (2^-24 relative): seen here, up
// to a few ulps of each tensor's scale, 2e-6 of it for a one-element moment that nearly cancels
// after clipping. 1e-5 of the scale bounds that with room, while a wrong formula or scalar (a
// beta, a bias correction, an EMA weight at the wrong k) moves values by 1e-3 of it or more.
TEST_P(FlatUpdateVsEager, MatchesMdlrcAdamPlainAndEmaUpdate) {
  const Case c = GetParam();
  Trainee eager(c.decoupled, c.wd), flat(c.decoupled, c.wd);
  // Two eager steps first, as the trainer takes before it captures the graph.
  for (int64_t k = 0; k < 2; ++k) {
    eager_step(eager, k, false, c.clip);
    eager_step(flat, k, false, c.clip);
  }
  FlatOptimizerStep step(
      flat.params, *flat.optimizer, flat.ema_copies(),
      [&](size_t j, int64_t k) { return 1.0 - flat.ema->rate_at(j, k); }, c.clip);
  expect_same_state(eager, flat, 0.0, "after flattening");  // values moved, unchanged
  for (int64_t k = 2; k < 8; ++k) {
    const bool bad = k == 4;
    const auto before = all_state(flat);
    eager_step(eager, k, bad, c.clip);
    flat_step(flat, step, k, bad);
    if (bad) {  // skipped: every buffer exactly as it was, counters too
      const auto after = all_state(flat);
      for (size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(at::equal(before[i], after[i])) << i;
    }
    expect_same_state(eager, flat, 1e-5, "iteration " + std::to_string(k));
  }
  // The weights moved (the comparison has teeth).
  EXPECT_GT((flat.params[2] - Toy().parameters()[2]).abs().max().item<double>(), 1e-2);
}

INSTANTIATE_TEST_SUITE_P(AdamAndAdamW, FlatUpdateVsEager,
                         ::testing::Values(Case{false, 0.0, 0.0}, Case{false, 0.05, 0.0},
                                           Case{true, 0.1, 0.0}, Case{false, 0.05, 0.5},
                                           Case{true, 0.1, 0.5}));

bool aliases(const at::Tensor& t, const at::Tensor& flat) {
  return t.storage().is_alias_of(flat.storage());
}

TEST(FlatBuffers, TheModelsOptimizersAndEmasTensorsAreViewsOfTheBuffers) {
  Trainee s(true, 0.1);
  eager_step(s, 0, false, 0.0);
  const auto values = all_state(s);
  const auto conv_strides = s.params[0].strides().vec();
  const optim::FlatBuffers b = optim::flatten(s.params, *s.optimizer, s.ema_copies());
  int64_t n = 0;
  for (const auto& p : s.params) n += p.numel();
  EXPECT_EQ(b.numel(), n);
  int64_t offset = 0;
  for (size_t i = 0; i < s.params.size(); ++i) {
    const at::Tensor& p = s.params[i];
    EXPECT_TRUE(aliases(p, b.params)) << i;
    EXPECT_EQ(p.storage_offset(), offset) << i;
    EXPECT_TRUE(p.requires_grad()) << i;
    EXPECT_TRUE(aliases(p.grad(), b.grads)) << i;
    EXPECT_EQ(p.grad().storage_offset(), offset) << i;
    EXPECT_TRUE(aliases(s.state(i).exp_avg(), b.exp_avg)) << i;
    EXPECT_TRUE(aliases(s.state(i).exp_avg_sq(), b.exp_avg_sq)) << i;
    for (size_t j = 0; j < 2; ++j) EXPECT_TRUE(aliases(s.ema->params(j)[i], b.ema[j])) << i;
    offset += p.numel();
  }
  EXPECT_EQ(s.params[0].strides().vec(), conv_strides);  // channels-last stays channels-last
  EXPECT_EQ(s.params[0].grad().strides().vec(), conv_strides);
  const auto now = all_state(s);
  for (size_t i = 0; i < values.size(); ++i) EXPECT_TRUE(at::equal(values[i], now[i])) << i;
  // The model's own parameter objects (the optimizer keys its state by them).
  EXPECT_EQ(s.model->parameters()[0].unsafeGetTensorImpl(), s.params[0].unsafeGetTensorImpl());
  EXPECT_EQ(s.optimizer->state().size(), s.params.size());
}

// torch::save of the model, the optimizer and each EMA, as TrainState writes them.
struct Saved {
  std::string model, optimizer;
  std::vector<std::string> ema;
};

Saved save(const Trainee& s) {
  Saved out;
  std::ostringstream m, o;
  torch::save(std::static_pointer_cast<torch::nn::Module>(s.model), m);
  torch::save(*s.optimizer, o);
  out.model = m.str();
  out.optimizer = o.str();
  for (size_t j = 0; j < 2; ++j) {
    torch::serialize::OutputArchive a;
    s.ema->save(j, a);
    std::ostringstream e;
    a.save_to(e);
    out.ema.push_back(e.str());
  }
  return out;
}

void load(Trainee& s, const Saved& in) {
  std::istringstream m(in.model), o(in.optimizer);
  auto module = std::static_pointer_cast<torch::nn::Module>(s.model);
  torch::load(module, m);
  torch::load(*s.optimizer, o);
  for (size_t j = 0; j < 2; ++j) {
    torch::serialize::InputArchive a;
    std::istringstream e(in.ema[j]);
    a.load_from(e);
    s.ema->load(j, a);
  }
}

void expect_identical(const Trainee& a, const Trainee& b, const std::string& what) {
  expect_same_state(a, b, 0.0, what);
  const auto x = all_state(a), y = all_state(b);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_TRUE(at::equal(x[i], y[i])) << what << " " << i;
}

TEST(FlatBuffers, CheckpointsMoveBetweenPlainAndFlatRunsBothWays) {
  const auto weight = [](const Trainee& s) {
    return [&s](size_t j, int64_t k) { return 1.0 - s.ema->rate_at(j, k); };
  };
  // Plain -> flat: a flat run loads (torch::load re-points the tensors) and flattens after.
  Trainee plain(false, 0.05), flat(false, 0.05);
  for (int64_t k = 0; k < 3; ++k) eager_step(plain, k, false, 0.0);
  load(flat, save(plain));
  FlatOptimizerStep step(flat.params, *flat.optimizer, flat.ema_copies(), weight(flat), 0.0);
  expect_identical(plain, flat, "plain checkpoint in a flat run");
  EXPECT_TRUE(aliases(flat.params[1], step.buffers().params));
  // Both train on alike from there.
  for (int64_t k = 3; k < 5; ++k) {
    eager_step(plain, k, false, 0.0);
    flat_step(flat, step, k, false);
  }
  expect_same_state(plain, flat, 1e-5, "after resuming");
  // Flat -> plain: the files a flat run writes load into a plain run, tensor for tensor; they
  // are no larger (each buffer's storage is written once, not once per view).
  Trainee reloaded(false, 0.05);
  const Saved from_flat = save(flat), from_plain = save(plain);
  load(reloaded, from_flat);
  expect_identical(flat, reloaded, "flat checkpoint in a plain run");
  EXPECT_LT(from_flat.model.size(), from_plain.model.size() + 4096);
  EXPECT_LT(from_flat.optimizer.size(), from_plain.optimizer.size() + 4096);
  EXPECT_LT(from_flat.ema[0].size(), from_plain.ema[0].size() + 4096);
  for (int64_t k = 5; k < 7; ++k) {
    eager_step(reloaded, k, false, 0.0);
    flat_step(flat, step, k, false);
  }
  expect_same_state(reloaded, flat, 1e-5, "after resuming plain");
}

TEST(FlatBuffers, RefusesWhatOneElementwisePassCannotUpdate) {
  Trainee s(false, 0.0);
  eager_step(s, 0, false, 0.0);
  // A parameter that missed a step (its state's step differs).
  auto& st = const_cast<MdlrcAdamParamState&>(s.state(1));
  st.step(st.step() + 1);
  EXPECT_NE(optim::flat_unsupported(s.params, *s.optimizer, s.ema_copies()).find("steps differ"),
            std::string::npos);
  EXPECT_THROW(optim::flatten(s.params, *s.optimizer, s.ema_copies()), Error);
  st.step(st.step() - 1);
  EXPECT_EQ(optim::flat_unsupported(s.params, *s.optimizer, s.ema_copies()), "");
  auto half = s.params;
  half[1] = half[1].to(at::kHalf);
  EXPECT_NE(optim::flat_unsupported(half, *s.optimizer, s.ema_copies()), "");
}

// The eager path's clipped norm is a 0-dim tensor like the unclipped one (it was a 1-element
// tensor that train_step's stack with the loss refused: every optim.grad_clip > 0 run threw).
TEST(GradClip, AClippedCpuRunTrainsAndLogsTheNorm) {
  namespace fs = std::filesystem;
  const fs::path root = dmtrain::test_support::scratch_dir("clip", /*create=*/false);
  test_support::write_tiny_idx(root / "data", 16);
  auto cfg = test_support::tiny_config(root / "data", root / "run");
  cfg.optim.grad_clip = 1e-3;  // below the tiny UNet's norms: clipping is active
  cfg.train.iterations = 2;
  cfg.checkpoint.every = 0;
  EXPECT_EQ(train(cfg).iteration, 2);
  const auto steps = observe::read_metrics_file((root / "run" / "metrics.jsonl").string()).steps;
  ASSERT_EQ(steps.size(), 2u);
  EXPECT_GT(steps[0].grad_norm, 1e-3);  // the norm before clipping, as logged without it
  fs::remove_all(root);
}

// ---- GPU ---------------------------------------------------------------------------------------

// The CUDA kernel against the ATen reference on the same buffers: Adam and AdamW, clipping on,
// two EMAs, a non-finite step that must write nothing. nvcc contracts multiply-adds into FMAs
// (one rounding instead of two), so 1e-6 of each buffer's scale over five steps.
TEST(FlatUpdateKernel, MatchesTheAtenReference) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs a CUDA device";
  ASSERT_TRUE(optim::flat_update_kernel_available());
  for (const bool decoupled : {false, true}) {
    const int64_t n = 100003;  // not a multiple of 4: the float4 loop and the tail
    const auto cuda = at::TensorOptions().dtype(at::kFloat).device(at::kCUDA);
    // Drawn on the CPU: the test must not depend on the CUDA generator's state.
    const at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(3);
    const auto randn = [&] { return at::randn({n}, gen, at::kFloat).to(at::kCUDA); };
    optim::FlatBuffers a;
    a.params = randn();
    a.grads = randn();
    a.exp_avg = randn() * 0.1;
    a.exp_avg_sq = randn().square() * 0.01;
    a.ema = {a.params.clone() + 0.01, a.params.clone() - 0.01};
    optim::FlatBuffers b = a;
    b.params = a.params.clone();
    b.exp_avg = a.exp_avg.clone();
    b.exp_avg_sq = a.exp_avg_sq.clone();
    b.ema = {a.ema[0].clone(), a.ema[1].clone()};
    const auto options = adam_options(decoupled, 0.05);
    const auto flags = optim::flat_update_options(options, 1.0);
    for (int64_t k = 0; k < 5; ++k) {
      const bool bad = k == 2;
      const at::Tensor loss =
          at::full({}, bad ? std::numeric_limits<float>::quiet_NaN() : 0.5f, cuda);
      const at::Tensor scalars =
          optim::flat_step_scalars(options, k, k + 1, 1.0, {0.1, 1.0 - (1.0 + k) / (10.0 + k)})
              .to(at::kCUDA);
      const at::Tensor before = a.params.clone();
      const at::Tensor na = optim::flat_update(a, loss, scalars, flags);
      const at::Tensor nb = optim::flat_update_reference(b, loss, scalars, flags);
      EXPECT_EQ(na.item<float>(), nb.item<float>());
      if (bad) {
        EXPECT_TRUE(at::equal(a.params, before));
      }
      expect_close(a.params, b.params, 1e-6, "weights");
      expect_close(a.exp_avg, b.exp_avg, 1e-6, "exp_avg");
      expect_close(a.exp_avg_sq, b.exp_avg_sq, 1e-6, "exp_avg_sq");
      expect_close(a.ema[0], b.ema[0], 1e-6, "EMA 0");
      expect_close(a.ema[1], b.ema[1], 1e-6, "EMA 1");
      a.grads.copy_(randn());
    }
  }
}

// Two graphed tiny-UNet runs on CUDA (fp32, 9 iterations, the last 6 replayed) that differ only
// in what vary(cfg, second) sets: the same losses and gradient norms, within
// tests/train/cuda_graph_test.cpp's tolerances (the same setup), and runs that trained.
void expect_graphed_runs_alike(const std::string& name,
                               const std::function<void(config::RunConfig&, bool)>& vary) {
  namespace fs = std::filesystem;
  const fs::path root = dmtrain::test_support::scratch_dir(name, /*create=*/false);
  test_support::write_tiny_idx(root / "data", 16);
  std::vector<std::vector<std::pair<double, double>>> runs;
  for (const bool second : {false, true}) {
    const fs::path dir = root / (second ? "second" : "first");
    auto cfg = test_support::tiny_config(root / "data", dir);
    cfg.train.device = "cuda";
    cfg.train.precision = "fp32";
    cfg.train.cudnn_benchmark = false;
    cfg.train.cuda_graphs = true;
    cfg.optim.grad_clip = 1.0;
    cfg.model.dropout = 0.0;
    cfg.train.iterations = 9;
    cfg.checkpoint.every = 0;
    vary(cfg, second);
    const TrainResult r = train(cfg);
    EXPECT_EQ(r.graph_steps, 6);
    runs.push_back(test_support::logged_losses(dir));
  }
  test_support::expect_same_losses(runs[0], runs[1], 9, 1e-5, 1e-4);
  for (const auto& run : runs) {
    ASSERT_EQ(run.size(), 9u);
    EXPECT_NE(run[8].first, run[0].first);
  }
  fs::remove_all(root);
}

// A graphed run with the optimizer in the graph against one without.
TEST(FlatUpdateKernel, GraphedOptimizerTrainsAsTheEagerOptimizer) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs a CUDA device";
  expect_graphed_runs_alike("flat", [](config::RunConfig& cfg, bool in_graph) {
    cfg.train.graph_optimizer = in_graph;
    cfg.train.ema_warmup = true;
    cfg.optim.weight_decay = 0.01;
  });
}

// train.graph_grad_gather: the backward's gradients gathered into the flat buffer after it, against
// accumulated into its zeroed views: the same numbers (0 + g is g), so the same losses and
// norms up to what two runs of the same setup differ by; a gradient gathered into the wrong
// parameter's slice or lost would move them far more.
TEST(FlatUpdateKernel, GatheredGradientsTrainAsTheAccumulatedOnes) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "needs a CUDA device";
  expect_graphed_runs_alike("gather", [](config::RunConfig& cfg, bool gather) {
    cfg.train.graph_optimizer = true;
    cfg.train.graph_grad_gather = gather;
  });
}

}  // namespace
}  // namespace dmtrain::train
