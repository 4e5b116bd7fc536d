// MdlrcAdam against hand-computed Adam updates, torch::optim::Adam/AdamW, the fused path, and
// checkpoint round trips.
#include <gtest/gtest.h>

#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/serialize.h>

#include <cmath>
#include <sstream>

#include "dmtrain/optim/mdlrc_adam.hpp"
#include "dmtrain/util/error.hpp"

using namespace dmtrain::optim;

namespace {

// Loss of the 2-parameter problem: f(x, y) = 0.5 * (3 x^2 + y^4), gradient (3x, 2y^3).
void set_grads(const torch::Tensor& xy) {
  torch::NoGradGuard g;
  auto grad = torch::stack({3.0 * xy[0], 2.0 * xy[1].pow(3)});
  xy.mutable_grad() = grad;
}

// Scalar reference written from the formulas in mdlrc_adam.hpp, sharing no code with it.
struct ScalarAdam {
  double beta1_0 = 0.9, beta1_min = 0.5, lr0 = 1e-3, beta2 = 0.999, eps = 1e-8, wd = 0.0;
  bool decay = false, compensate = false, decoupled = false;
  int64_t K = 1;
  double m[2] = {0, 0}, v[2] = {0, 0};
  int64_t k = 0;
  void step(double p[2]) {
    double b1 = beta1_0;
    if (decay) {
      const double r = std::max(0.0, 1.0 - static_cast<double>(k) / K);
      b1 = std::max(beta1_min, beta1_0 * r / ((1 - beta1_0) + beta1_0 * r));
    }
    const double lr = compensate ? lr0 * (1 - beta1_0) / (1 - b1) : lr0;
    const double g[2] = {3 * p[0], 2 * p[1] * p[1] * p[1]};
    ++k;
    for (int i = 0; i < 2; ++i) {
      double gi = g[i];
      if (decoupled) {
        p[i] *= 1 - lr * wd;
      } else {
        gi += wd * p[i];
      }
      m[i] = b1 * m[i] + (1 - b1) * gi;
      v[i] = beta2 * v[i] + (1 - beta2) * gi * gi;
      const double mhat = m[i] / (1 - std::pow(b1, k));
      const double vhat = v[i] / (1 - std::pow(beta2, k));
      p[i] -= lr * mhat / (std::sqrt(vhat) + eps);
    }
  }
};

void run_against_scalar(bool decay, bool compensate, bool decoupled, double wd,
                        const std::string& impl) {
  auto xy = torch::tensor({1.5, -0.8}, torch::kDouble).requires_grad_();
  MdlrcAdamOptions o(0.05);
  o.beta1(0.9).beta1_min(0.3).momentum_decay(decay).lr_compensation(compensate);
  o.total_iterations(6).weight_decay(wd).decoupled_weight_decay(decoupled).implementation(impl);
  MdlrcAdam opt({xy}, o);
  ScalarAdam ref;
  ref.beta1_0 = 0.9;
  ref.beta1_min = 0.3;
  ref.lr0 = 0.05;
  ref.decay = decay;
  ref.compensate = compensate;
  ref.decoupled = decoupled;
  ref.wd = wd;
  ref.K = 6;
  double p[2] = {1.5, -0.8};
  for (int step = 0; step < 9; ++step) {  // past K, into the floor
    set_grads(xy);
    opt.step();
    ref.step(p);
    EXPECT_NEAR(xy[0].item<double>(), p[0], 1e-12) << "step " << step << " impl " << impl;
    EXPECT_NEAR(xy[1].item<double>(), p[1], 1e-12) << "step " << step << " impl " << impl;
  }
  EXPECT_EQ(opt.iteration(), 9);
}

}  // namespace

TEST(MdlrcAdam, FirstStepHandWorked) {
  // First Adam step: m_hat = g, v_hat = g^2, so p <- p - lr g / (|g| + eps) = p - lr sign(g).
  auto xy = torch::tensor({1.5, -0.8}, torch::kDouble).requires_grad_();
  MdlrcAdam opt(
      {xy}, MdlrcAdamOptions(0.05).momentum_decay(true).lr_compensation(true).total_iterations(10));
  EXPECT_DOUBLE_EQ(opt.beta1(), 0.9);
  EXPECT_DOUBLE_EQ(opt.lr(), 0.05);
  set_grads(xy);  // g = (4.5, -1.024)
  opt.step();
  EXPECT_NEAR(xy[0].item<double>(), 1.5 - 0.05 * 4.5 / (4.5 + 1e-8), 1e-15);
  EXPECT_NEAR(xy[1].item<double>(), -0.8 + 0.05 * 1.024 / (1.024 + 1e-8), 1e-15);
  // k = 1 of K = 10: r = 0.9, beta1 = 0.81 / 0.91, lr = 0.05 * 0.1 / (1 - beta1) = 0.05 * 0.91
  EXPECT_DOUBLE_EQ(opt.beta1(), 0.81 / 0.91);
  EXPECT_NEAR(opt.lr(), 0.05 * 0.91, 1e-15);
}

TEST(MdlrcAdam, MatchesScalarReferenceDecayOnAndOff) {
  for (const std::string impl : {"plain", "fused"}) {
    run_against_scalar(true, true, false, 0.0, impl);
    run_against_scalar(true, false, false, 0.0, impl);
    run_against_scalar(false, false, false, 0.0, impl);
    run_against_scalar(true, true, false, 0.1, impl);  // Adam L2 weight decay
    run_against_scalar(true, true, true, 0.1, impl);   // AdamW decoupled weight decay
  }
}

TEST(MdlrcAdam, WithoutMdlrcEqualsTorchAdamAndAdamW) {
  torch::manual_seed(0);
  const auto init = torch::randn({4, 3}, torch::kDouble);
  for (bool decoupled : {false, true}) {
    auto a = init.clone().requires_grad_();
    auto b = init.clone().requires_grad_();
    MdlrcAdam ours(
        {a},
        MdlrcAdamOptions(1e-2).weight_decay(0.05).decoupled_weight_decay(decoupled).implementation(
            "plain"));
    std::unique_ptr<torch::optim::Optimizer> theirs;
    if (decoupled) {
      theirs = std::make_unique<torch::optim::AdamW>(
          std::vector<torch::Tensor>{b},
          torch::optim::AdamWOptions(1e-2).weight_decay(0.05).betas({0.9, 0.999}));
    } else {
      theirs = std::make_unique<torch::optim::Adam>(
          std::vector<torch::Tensor>{b}, torch::optim::AdamOptions(1e-2).weight_decay(0.05));
    }
    for (int i = 0; i < 5; ++i) {
      const auto g = torch::randn({4, 3}, torch::kDouble);
      a.mutable_grad() = g.clone();
      b.mutable_grad() = g.clone();
      ours.step();
      theirs->step();
    }
    EXPECT_TRUE(torch::allclose(a, b, 0, 1e-13)) << "decoupled " << decoupled;
  }
}

TEST(MdlrcAdam, FusedEqualsPlainWithChangingBeta1) {
  torch::manual_seed(1);
  std::vector<torch::Tensor> shapes = {torch::randn({7}), torch::randn({3, 5}),
                                       torch::randn({2, 3, 4, 4})};
  for (bool decoupled : {false, true}) {
    std::vector<torch::Tensor> pa, pb;
    for (const auto& s : shapes) {
      pa.push_back(s.clone().requires_grad_());
      pb.push_back(s.clone().requires_grad_());
    }
    auto opts = MdlrcAdamOptions(1e-2)
                    .momentum_decay(true)
                    .lr_compensation(true)
                    .beta1_min(0.5)
                    .total_iterations(8)
                    .weight_decay(0.01)
                    .decoupled_weight_decay(decoupled);
    MdlrcAdam plain(pa, MdlrcAdamOptions(opts).implementation("plain"));
    MdlrcAdam fused(pb, MdlrcAdamOptions(opts).implementation("fused"));
    for (int i = 0; i < 10; ++i) {
      for (size_t j = 0; j < shapes.size(); ++j) {
        const auto g = torch::randn_like(shapes[j]);
        pa[j].mutable_grad() = g.clone();
        pb[j].mutable_grad() = g.clone();
      }
      if (i == 3) pa[1].mutable_grad() = pb[1].mutable_grad() = torch::Tensor();  // a skipped one
      plain.step();
      fused.step();
    }
    for (size_t j = 0; j < shapes.size(); ++j) {
      EXPECT_TRUE(torch::allclose(pa[j], pb[j], 1e-6, 1e-6)) << "param " << j;
      EXPECT_FALSE(torch::equal(pa[j], shapes[j]));
    }
  }
}

TEST(MdlrcAdam, SaveLoadContinuesBitIdentically) {
  for (const std::string impl : {"plain", "fused"}) {
    torch::manual_seed(2);
    auto opts = MdlrcAdamOptions(1e-2)
                    .momentum_decay(true)
                    .lr_compensation(true)
                    .total_iterations(12)
                    .weight_decay(0.01)
                    .decoupled_weight_decay(true)
                    .implementation(impl);
    std::vector<torch::Tensor> grads;
    for (int i = 0; i < 10; ++i) grads.push_back(torch::randn({2, 3}));
    auto p = torch::randn({2, 3}).requires_grad_();
    MdlrcAdam a({p}, opts);
    std::string saved_opt;
    torch::Tensor saved_p;
    for (int i = 0; i < 10; ++i) {
      if (i == 5) {
        std::ostringstream os;
        torch::save(a, os);
        saved_opt = os.str();
        saved_p = p.detach().clone();
      }
      p.mutable_grad() = grads[i];
      a.step();
    }
    // A fresh optimizer (default options, a new parameter tensor) restored from the checkpoint.
    auto q = saved_p.clone().requires_grad_();
    MdlrcAdam b({q}, MdlrcAdamOptions(1.0));
    std::istringstream is(saved_opt);
    torch::load(b, is);
    EXPECT_EQ(b.iteration(), 5);
    EXPECT_EQ(b.beta1(), MdlrcAdamOptions(opts).schedule().beta1(5));
    for (int i = 5; i < 10; ++i) {
      q.mutable_grad() = grads[i];
      b.step();
    }
    EXPECT_TRUE(torch::equal(p, q)) << impl;
    EXPECT_EQ(b.iteration(), 10);
  }
}

TEST(MdlrcAdam, ValidationNamesKey) {
  auto p = torch::zeros({2}).requires_grad_();
  auto expect_key = [&](const MdlrcAdamOptions& o, const std::string& key) {
    try {
      MdlrcAdam opt({p}, o);
      FAIL() << "no error for " << key;
    } catch (const dmtrain::Error& e) {
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
  };
  expect_key(MdlrcAdamOptions(1e-4).momentum_decay(true).beta1_min(0.95), "optim.beta1_min");
  expect_key(MdlrcAdamOptions(1e-4).momentum_decay(true).total_iterations(0),
             "optim.total_iterations");
  expect_key(MdlrcAdamOptions(1e-4).beta1(1.0), "optim.beta1");
  expect_key(MdlrcAdamOptions(1e-4).beta2(1.5), "optim.beta2");
  expect_key(MdlrcAdamOptions(1e-4).weight_decay(-1), "optim.weight_decay");
  expect_key(MdlrcAdamOptions(1e-4).implementation("foreach"), "optim.implementation");
  expect_key(MdlrcAdamOptions(-1.0), "optim.lr");
}

// The path training takes on a GPU ("auto" = fused for CUDA parameters) against the plain loop on
// the CPU. Runs where CUDA is visible (the GPU machine); skipped elsewhere.
TEST(MdlrcAdam, FusedOnCudaEqualsPlainOnCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::manual_seed(2);
  std::vector<torch::Tensor> shapes = {torch::randn({7}), torch::randn({3, 5}),
                                       torch::randn({64, 32, 3, 3})};
  std::vector<torch::Tensor> cpu, gpu;
  for (const auto& s : shapes) {
    cpu.push_back(s.clone().requires_grad_());
    gpu.push_back(s.cuda().requires_grad_());
  }
  auto opts = MdlrcAdamOptions(1e-2)
                  .momentum_decay(true)
                  .lr_compensation(true)
                  .beta1_min(0.5)
                  .total_iterations(8)
                  .weight_decay(0.01)
                  .decoupled_weight_decay(true);
  MdlrcAdam plain(cpu, MdlrcAdamOptions(opts).implementation("plain"));
  MdlrcAdam automatic(gpu, MdlrcAdamOptions(opts).implementation("auto"));
  for (int i = 0; i < 10; ++i) {
    for (size_t j = 0; j < shapes.size(); ++j) {
      const auto g = torch::randn_like(shapes[j]);
      cpu[j].mutable_grad() = g.clone();
      gpu[j].mutable_grad() = g.cuda();
    }
    plain.step();
    automatic.step();
  }
  for (size_t j = 0; j < shapes.size(); ++j) {
    EXPECT_TRUE(torch::allclose(cpu[j], gpu[j].cpu(), 1e-5, 1e-6)) << "param " << j;
  }
}
