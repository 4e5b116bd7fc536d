// image_nll: batching and noise exactly as documented (calc_bpd_loop per batch with
// NoiseSource(seed + b)), finite bits/dim, and the mean/CSV consistent with the per-image values.
#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>

#include <sstream>

#include "dmtrain/diffusion/bpd.hpp"
#include "dmtrain/diffusion/noise_source.hpp"
#include "dmtrain/eval/nll.hpp"
#include "dmtrain/util/error.hpp"
#include "tiny_model.hpp"

namespace {
namespace ev = dmtrain::eval;
namespace dd = dmtrain::diffusion;

TEST(ImageNll, EqualsCalcBpdLoopPerBatch) {
  auto model = ev::testing::tiny_model(11, /*num_classes=*/2);
  const auto d = ev::testing::tiny_diffusion(40);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(5);
  const at::Tensor images = at::randint(0, 256, {5, 8, 8, 3}, gen, at::TensorOptions(at::kByte));
  const at::Tensor labels = at::tensor({0, 1, 1, 0, 1}, at::kLong);
  ev::NllOptions o;
  o.batch = 2;
  o.seed = 40;
  const auto r = ev::image_nll(d, ev::testing::fn_of(model), images, labels, o);
  ASSERT_EQ(r.total_bpd.sizes(), (at::IntArrayRef{5}));
  EXPECT_TRUE(at::isfinite(r.total_bpd).all().item<bool>());
  EXPECT_GT(r.total_bpd.min().item<double>(), 0.0);

  // The same by hand: batches [0,2), [2,4), [4,5) with sources seeded 40, 41, 42.
  std::vector<at::Tensor> expect;
  for (int64_t b = 0; b < 3; ++b) {
    const int64_t s = 2 * b, bs = std::min<int64_t>(2, 5 - s);
    const at::Tensor x = images.narrow(0, s, bs).permute({0, 3, 1, 2}).to(at::kFloat) / 127.5 - 1;
    dd::NoiseSource noise(40 + uint64_t(b), {bs, 3, 8, 8});
    const auto ref =
        dd::calc_bpd_loop(d, ev::testing::fn_of(model), x, labels.narrow(0, s, bs), true, noise);
    EXPECT_EQ(noise.draws_taken(), 40);
    expect.push_back(ref.total_bpd.to(at::kDouble));
    EXPECT_TRUE(at::allclose(r.prior_bpd.narrow(0, s, bs), ref.prior_bpd.to(at::kDouble)));
    EXPECT_TRUE(at::allclose(r.vb_bpd.narrow(0, s, bs), ref.vb.sum(1).to(at::kDouble)));
  }
  // Equal up to float reduction order (bitwise on one machine, not across CPUs and thread counts).
  EXPECT_TRUE(at::allclose(r.total_bpd, at::cat(expect), 1e-6, 1e-6));
  EXPECT_NEAR(r.mean_bpd, at::cat(expect).mean().item<double>(), 1e-5);

  std::ostringstream os;
  ev::write_nll_csv(os, r);
  std::istringstream is(os.str());
  std::string line;
  std::getline(is, line);
  EXPECT_EQ(line, "index,label,total_bpd,prior_bpd,vb_bpd");
  int rows = 0;
  while (std::getline(is, line)) {
    int64_t i, label;
    double total;
    char c;
    std::istringstream ls(line);
    ls >> i >> c >> label >> c >> total;
    EXPECT_EQ(i, rows);
    EXPECT_EQ(label, labels[rows].item<int64_t>());
    EXPECT_DOUBLE_EQ(total, r.total_bpd[rows].item<double>());
    ++rows;
  }
  EXPECT_EQ(rows, 5);
}

TEST(ImageNll, RejectsBadInput) {
  auto model = ev::testing::tiny_model(12);
  const auto d = ev::testing::tiny_diffusion(40);
  ev::NllOptions o;
  EXPECT_THROW(
      ev::image_nll(d, ev::testing::fn_of(model), at::zeros({0, 8, 8, 3}, at::kByte), {}, o),
      dmtrain::Error);
  EXPECT_THROW(
      ev::image_nll(d, ev::testing::fn_of(model), at::zeros({2, 8, 8, 3}, at::kFloat), {}, o),
      dmtrain::Error);
  o.batch = 0;
  EXPECT_THROW(
      ev::image_nll(d, ev::testing::fn_of(model), at::zeros({2, 8, 8, 3}, at::kByte), {}, o),
      dmtrain::Error);
}

}  // namespace
