// group_norm_act: the unfused path against GroupNorm written out by hand, and the fused CUDA
// kernels (forward and every gradient) against that path run in float64 on the CPU, for float32
// and bfloat16 activations, with and without scale/shift and SiLU, NCHW and channels-last, on
// shapes that take the vectorised and the scalar kernel paths. The CUDA cases skip where no GPU is
// visible (CI) and run on the GPU machine; the UNet fixtures of the references are also checked
// through the fused kernels there.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dmtrain/models/group_norm_act.hpp"

namespace dm = dmtrain::models;

namespace {

struct Case {
  std::vector<int64_t> shape;
  int64_t groups;
  bool scale_shift;
  bool silu;
  bool channels_last = false;  // C innermost in memory (NHWC, or [N, C, T] with stride 1 on C)
};

// x with C innermost in memory, same values.
torch::Tensor to_channels_last(const torch::Tensor& x) {
  return x.movedim(1, -1).contiguous().movedim(-1, 1);
}

struct Inputs {
  torch::Tensor x, w, b, scale, shift;
};

Inputs make_inputs(const Case& c, double offset = 0.0) {
  torch::manual_seed(7);
  const int64_t n = c.shape[0], ch = c.shape[1];
  Inputs in;
  in.x = torch::randn(c.shape, torch::kDouble) * 2 + offset;
  in.w = torch::randn({ch}, torch::kDouble);
  in.b = torch::randn({ch}, torch::kDouble);
  if (c.scale_shift) {
    in.scale = torch::randn({n, ch, 1, 1}, torch::kDouble) * 0.5;
    in.shift = torch::randn({n, ch, 1, 1}, torch::kDouble);
  }
  return in;
}

double rel_err(const torch::Tensor& got, const torch::Tensor& want) {
  return (got.to(torch::kDouble).cpu() - want).abs().max().item<double>() /
         want.abs().max().item<double>();
}

// Forward and gradients (x, w, b, scale, shift) of sum(y * r) for a fixed random r.
std::vector<torch::Tensor> run(const Inputs& in, const Case& c, torch::Device dev,
                               torch::ScalarType act, bool fused, dm::KernelOptions k = {}) {
  k.fused_group_norm = fused;
  auto x = in.x.to(dev, act);
  if (c.channels_last) x = to_channels_last(x);
  x = x.detach().requires_grad_(true);
  auto w = in.w.to(dev, torch::kFloat).detach().requires_grad_(true);
  auto b = in.b.to(dev, torch::kFloat).detach().requires_grad_(true);
  torch::Tensor s, t;
  if (c.scale_shift) {
    s = in.scale.to(dev, act).detach().requires_grad_(true);
    t = in.shift.to(dev, act).detach().requires_grad_(true);
  }
  if (act == torch::kDouble) {  // the float64 truth: every tensor in float64
    w = in.w.to(dev).detach().requires_grad_(true);
    b = in.b.to(dev).detach().requires_grad_(true);
  }
  const auto y = dm::group_norm_act(x, c.groups, w, b, 1e-5, s, t, c.silu, k);
  EXPECT_EQ(y.scalar_type(), act);
  if (fused) {
    EXPECT_EQ(y.strides(), x.strides());  // the layout is kept
  }
  torch::manual_seed(11);
  const auto r = torch::randn(c.shape, torch::kDouble).to(dev, act);
  (y * r).sum().backward();
  std::vector<torch::Tensor> out{y, x.grad(), w.grad(), b.grad()};
  if (c.scale_shift) {
    out.push_back(s.grad());
    out.push_back(t.grad());
  }
  return out;
}

const std::vector<Case> kCases = {
    {{3, 64, 8, 8}, 32, true, true},       // vectorised path, as in a ResBlock's out_layers
    {{3, 64, 8, 8}, 32, false, true},      // in_layers
    {{2, 128, 16, 16}, 32, false, false},  // attention's norm: no activation
    {{2, 32, 5, 5}, 8, true, true},        // 25 pixels: the scalar path
    {{2, 96, 12}, 32, false, true},        // [N, C, T] input
    // Channels-last: packs of 8, 4, 2 and 1 channels, 1 to 4 packs per pixel.
    {{2, 256, 4, 4}, 32, true, true, true},   // 8 channels per group: one 16-byte pack
    {{3, 64, 8, 8}, 32, false, true, true},   // 2 channels per group
    {{2, 512, 3, 3}, 32, true, true, true},   // 16 per group: two packs per pixel
    {{2, 768, 2, 2}, 32, false, true, true},  // 24 per group: three packs, a 96-wide block
    {{2, 96, 12}, 32, false, false, true},    // [N, C, T] view of NHWC data, 3 per group
    // Row-reading kernels: many pixel tiles, packs that span two groups (4 channels per group).
    {{4, 128, 16, 16}, 32, true, true, true},
};

// The truth: float64 on the CPU, in NCHW whatever the case's layout. The unfused op casts to
// float32 as the references' GroupNorm32 does, and ATen's channels-last CPU GroupNorm then sums
// x^2 in float32 without a shift: at mean 1000 and spread 2 it is off by 7% (NCHW: 1e-5), which
// made the large-mean channels-last cases fail against correct GPU kernels.
std::vector<torch::Tensor> truth(const Inputs& in, Case c) {
  c.channels_last = false;
  return run(in, c, torch::kCPU, torch::kDouble, false);
}

bool cuda_fused() {
  return torch::cuda::is_available() && dm::fused_kernels_built();
}

}  // namespace

TEST(GroupNormAct, UnfusedMatchesHandWrittenGroupNorm) {
  const Case c{{2, 8, 3, 3}, 4, true, true};
  const Inputs in = make_inputs(c);
  const auto y =
      dm::group_norm_act(in.x, 4, in.w, in.b, 1e-5, in.scale, in.shift, true, dm::KernelOptions{});
  // By hand: statistics over each (sample, 2 channels x 9 pixels) group, biased variance.
  const auto xg = in.x.view({2, 4, 18});
  const auto mean = xg.mean(-1, true);
  const auto var = (xg - mean).pow(2).mean(-1, true);
  auto h = ((xg - mean) / (var + 1e-5).sqrt()).view({2, 8, 3, 3});
  h = h * in.w.view({1, 8, 1, 1}) + in.b.view({1, 8, 1, 1});
  h = h * (1 + in.scale) + in.shift;
  const auto want = h / (1 + (-h).exp());
  // The references' GroupNorm32 normalises in float32 even for float64 input: float32 rounding.
  EXPECT_LT((y - want).abs().max().item<double>(), 2e-6);
  EXPECT_EQ(y.scalar_type(), torch::kDouble);
}

TEST(GroupNormAct, ScaleWithoutShiftIsRefused) {
  const auto x = torch::randn({1, 4, 2, 2});
  EXPECT_THROW(dm::group_norm_act(x, 2, torch::ones({4}), torch::zeros({4}), 1e-5,
                                  torch::zeros({1, 4, 1, 1}), {}, true, dm::KernelOptions{}),
               c10::Error);
}

TEST(GroupNormAct, FusedFloat32MatchesFloat64Reference) {
  if (!cuda_fused()) GTEST_SKIP() << "needs CUDA and the fused kernels";
  for (const auto& c : kCases) {
    const Inputs in = make_inputs(c);
    const auto want = truth(in, c);
    const auto got = run(in, c, torch::kCUDA, torch::kFloat, true);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_LT(rel_err(got[i], want[i]), 2e-5) << "output " << i << " of case C=" << c.shape[1];
    }
  }
}

TEST(GroupNormAct, FusedBFloat16WithinRoundingOfReference) {
  if (!cuda_fused()) GTEST_SKIP() << "needs CUDA and the fused kernels";
  for (const auto& c : kCases) {
    const Inputs in = make_inputs(c);
    // Truth from the bf16-rounded inputs, in float64.
    Inputs rounded = in;
    rounded.x = in.x.to(torch::kBFloat16).to(torch::kDouble);
    if (c.scale_shift) {
      rounded.scale = in.scale.to(torch::kBFloat16).to(torch::kDouble);
      rounded.shift = in.shift.to(torch::kBFloat16).to(torch::kDouble);
    }
    const auto want = truth(rounded, c);
    const auto got = run(in, c, torch::kCUDA, torch::kBFloat16, true);
    const auto unfused = run(in, c, torch::kCUDA, torch::kBFloat16, false);
    for (size_t i = 0; i < got.size(); ++i) {
      // bf16 keeps 8 bits: ~4e-3 relative per rounding. The fused op rounds once, at the end,
      // so it must be at least as close to the truth as the unfused chain (which rounds the
      // normalised tensor, the scale/shift and the activation each), up to noise.
      const double e_fused = rel_err(got[i], want[i]), e_unfused = rel_err(unfused[i], want[i]);
      EXPECT_LT(e_fused, 2e-2) << "output " << i << " of case C=" << c.shape[1];
      EXPECT_LT(e_fused, 1.5 * e_unfused + 1e-3) << "output " << i << " of case C=" << c.shape[1];
    }
  }
}

TEST(GroupNormAct, FusedStatisticsSurviveALargeMean) {
  if (!cuda_fused()) GTEST_SKIP() << "needs CUDA and the fused kernels";
  // Mean 1000 against a spread of 2: a naive E[x^2] - E[x]^2 in float32 loses every digit.
  for (const bool channels_last : {false, true}) {
    const Case c{{2, 64, 16, 16}, 32, false, false, channels_last};
    const Inputs in = make_inputs(c, 1000.0);
    const auto want = truth(in, c);
    const auto got = run(in, c, torch::kCUDA, torch::kFloat, true);
    EXPECT_LT(rel_err(got[0], want[0]), 1e-3) << "channels_last=" << channels_last;
    EXPECT_LT(rel_err(got[1], want[1]), 1e-2) << "channels_last=" << channels_last;
  }
}

// train.group_norm_cached_backward: the NCHW backward that keeps its loads in registers between
// its two passes gives the two-pass kernel's results to the bit (same sums in the same order,
// the same expression per element), where it applies (4 and 1 packs per lane for bf16, 8 and 2
// for float32 below: the float32 32x32 case falls back) and where it does not.
TEST(GroupNormAct, CachedBackwardOnCudaGivesTheTwoPassKernelsBits) {
  if (!cuda_fused()) GTEST_SKIP() << "needs CUDA and the fused kernels";
  dm::KernelOptions two_pass_kernels, cached_kernels;
  cached_kernels.group_norm_cached_backward = true;
  std::vector<Case> cases(kCases.begin(), kCases.end());
  cases.push_back({{4, 128, 32, 32}, 32, true, true});   // a CIFAR10 ResBlock at 32x32
  cases.push_back({{2, 256, 16, 16}, 32, false, true});  // 8 channels per group at 16x16
  for (const auto& c : cases) {
    if (c.channels_last) continue;
    for (const auto act : {torch::kFloat, torch::kBFloat16}) {
      const Inputs in = make_inputs(c);
      const auto two_pass = run(in, c, torch::kCUDA, act, true, two_pass_kernels);
      const auto cached = run(in, c, torch::kCUDA, act, true, cached_kernels);
      ASSERT_EQ(cached.size(), two_pass.size());
      for (size_t i = 0; i < cached.size(); ++i) {
        EXPECT_TRUE(torch::equal(cached[i], two_pass[i]))
            << "output " << i << " of case C=" << c.shape[1] << " HW=" << c.shape[2]
            << (act == torch::kFloat ? " float32" : " bf16");
      }
    }
  }
}

// The channels-last kernels that read pixel rows (off by default) against the float64 truth and
// against the per-(sample, group) kernels, float32 and bf16, and with a large mean.
TEST(GroupNormAct, NhwcRowKernelsMatchFloat64AndThePerGroupKernels) {
  if (!cuda_fused()) GTEST_SKIP() << "needs CUDA and the fused kernels";
  dm::KernelOptions per_group_kernels, row_kernels;
  row_kernels.group_norm_rows = true;
  for (const auto& c : kCases) {
    if (!c.channels_last) continue;
    const Inputs in = make_inputs(c);
    const auto want = truth(in, c);
    const auto per_group = run(in, c, torch::kCUDA, torch::kFloat, true, per_group_kernels);
    const auto per_group_bf16 = run(in, c, torch::kCUDA, torch::kBFloat16, true, per_group_kernels);
    const auto rows = run(in, c, torch::kCUDA, torch::kFloat, true, row_kernels);
    const auto rows_bf16 = run(in, c, torch::kCUDA, torch::kBFloat16, true, row_kernels);
    for (size_t i = 0; i < rows.size(); ++i) {
      const std::string what =
          "output " + std::to_string(i) + " of case C=" + std::to_string(c.shape[1]);
      EXPECT_LT(rel_err(rows[i], want[i]), 2e-5) << what;
      EXPECT_LT(rel_err(rows[i], per_group[i].to(torch::kDouble).cpu()), 1e-5) << what;
      EXPECT_LT(rel_err(rows_bf16[i], per_group_bf16[i].to(torch::kDouble).cpu()), 2e-2) << what;
    }
  }
  const Case big{{2, 64, 16, 16}, 32, false, false, true};
  const Inputs in = make_inputs(big, 1000.0);
  const auto want = truth(in, big);
  const auto got = run(in, big, torch::kCUDA, torch::kFloat, true, row_kernels);
  EXPECT_LT(rel_err(got[0], want[0]), 1e-3);
  EXPECT_LT(rel_err(got[1], want[1]), 1e-2);
}
