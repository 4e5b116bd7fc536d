// sample_images: sample i depends only on (seed, i) -- not on the batch size -- its noise is the
// per-sample NoiseSource the header promises (checked against the library's own sampling loops),
// --noise replaces draw 0 only, and the .npz has the evaluator's layout.
#include <gtest/gtest.h>

#include <filesystem>

#include "dmtrain/diffusion/noise_source.hpp"
#include "dmtrain/diffusion/sampling.hpp"
#include "dmtrain/eval/sample_images.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/image_io.hpp"
#include "dmtrain/util/npy.hpp"
#include "tiny_model.hpp"

namespace {
namespace ev = dmtrain::eval;
namespace dd = dmtrain::diffusion;
using ev::testing::fn_of;
using ev::testing::tiny_diffusion;
using ev::testing::tiny_model;

ev::SampleImagesOptions opts(int64_t n, int64_t batch, const std::string& sampler, double eta) {
  ev::SampleImagesOptions o;
  o.n = n;
  o.batch = batch;
  o.image_shape = {3, 8, 8};
  o.seed = 7;
  o.sampler = sampler;
  o.eta = eta;
  return o;
}

TEST(SampleImages, BatchSizeDoesNotChangeSamples) {
  auto model = tiny_model(1);
  const auto d = tiny_diffusion().respaced("5");
  for (const auto& [sampler, eta] :
       {std::pair{std::string("ddpm"), 0.0}, {"ddim", 0.0}, {"ddim", 0.5}}) {
    const auto a = ev::sample_images(d, fn_of(model), opts(4, 2, sampler, eta));
    const auto b = ev::sample_images(d, fn_of(model), opts(4, 4, sampler, eta));
    const auto c = ev::sample_images(d, fn_of(model), opts(4, 3, sampler, eta));
    ASSERT_EQ(a.images.sizes(), (at::IntArrayRef{4, 8, 8, 3}));
    EXPECT_EQ(a.images.scalar_type(), at::kByte);
    EXPECT_TRUE(at::equal(a.images, b.images)) << sampler << " eta " << eta;
    EXPECT_TRUE(at::equal(a.images, c.images)) << sampler << " eta " << eta;
    // Different samples really differ (the noise is per sample, not one shared draw).
    EXPECT_FALSE(at::equal(a.images[0], a.images[1]));
    // Sample i is the same when fewer samples are drawn.
    const auto first = ev::sample_images(d, fn_of(model), opts(1, 1, sampler, eta));
    EXPECT_TRUE(at::equal(first.images[0], a.images[0]));
  }
}

TEST(SampleImages, NoiseIsPerSampleSourceAsTheLibraryLoopsUseIt) {
  auto model = tiny_model(2);
  const auto d = tiny_diffusion().respaced("4");
  const auto all = ev::sample_images(d, fn_of(model), opts(3, 3, "ddpm", 0.0));
  for (int64_t i = 0; i < 3; ++i) {
    EXPECT_EQ(ev::sample_seed(7, i), 7u * 1000003u + uint64_t(i));
    dd::NoiseSource src(ev::sample_seed(7, i), {1, 3, 8, 8});
    const at::Tensor x = dd::p_sample_loop(d, fn_of(model), src);
    EXPECT_EQ(src.draws_taken(), 1 + d.num_timesteps());
    EXPECT_TRUE(at::equal(dmtrain::util::to_uint8_nhwc(x)[0], all.images[i])) << i;
  }
}

TEST(SampleImages, GivenInitialNoiseIsUsed) {
  auto model = tiny_model(3);
  const auto d = tiny_diffusion().respaced("4");
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(99);
  const at::Tensor initial = at::randn({2, 3, 8, 8}, gen);
  for (const std::string sampler : {"ddpm", "ddim"}) {
    auto o = opts(2, 1, sampler, 0.0);
    const auto plain = ev::sample_images(d, fn_of(model), o);
    o.initial_noise = initial;
    const auto given = ev::sample_images(d, fn_of(model), o);
    EXPECT_FALSE(at::equal(plain.images, given.images));
    for (int64_t i = 0; i < 2; ++i) {
      dd::NoiseSource src(initial.narrow(0, i, 1), ev::sample_seed(7, i));
      const at::Tensor x = sampler == "ddpm" ? dd::p_sample_loop(d, fn_of(model), src)
                                             : dd::ddim_sample_loop(d, fn_of(model), src, 0.0);
      EXPECT_TRUE(at::equal(dmtrain::util::to_uint8_nhwc(x)[0], given.images[i]))
          << sampler << " " << i;
    }
    // The per-sample initial draws, given explicitly, reproduce the seeded run.
    std::vector<at::Tensor> draws;
    for (int64_t i = 0; i < 2; ++i) {
      draws.push_back(dd::NoiseSource(ev::sample_seed(7, i), {1, 3, 8, 8}).next());
    }
    o.initial_noise = at::cat(draws);
    EXPECT_TRUE(at::equal(ev::sample_images(d, fn_of(model), o).images, plain.images)) << sampler;
  }
  auto bad = opts(2, 2, "ddpm", 0.0);
  bad.initial_noise = at::zeros({3, 3, 8, 8});
  EXPECT_THROW(ev::sample_images(d, fn_of(model), bad), dmtrain::Error);
}

TEST(SampleImages, ClassConditionalNpzHasEvaluatorLayout) {
  auto model = tiny_model(4, /*num_classes=*/3);
  const auto d = tiny_diffusion().respaced("3");
  auto o = opts(5, 2, "ddim", 0.0);
  o.labels = ev::make_labels("", 5, 3, o.seed);
  const auto s = ev::sample_images(d, fn_of(model), o);
  const auto path = (std::filesystem::temp_directory_path() / "dmtrain_eval_samples.npz").string();
  dmtrain::util::write_samples_npz(path, s.images, s.labels);
  const auto arrays = dmtrain::util::read_npz(path);
  std::filesystem::remove(path);
  ASSERT_EQ(arrays.size(), 2u);
  EXPECT_EQ(arrays[0].first, "arr_0");
  EXPECT_EQ(arrays[0].second.scalar_type(), at::kByte);
  EXPECT_EQ(arrays[0].second.sizes(), (at::IntArrayRef{5, 8, 8, 3}));
  EXPECT_TRUE(at::equal(arrays[0].second, s.images));
  EXPECT_EQ(arrays[1].first, "arr_1");
  EXPECT_EQ(arrays[1].second.scalar_type(), at::kLong);
  EXPECT_TRUE(at::equal(arrays[1].second, at::tensor({0, 1, 2, 0, 1}, at::kLong)));
  // Labels condition the model: other labels, other images (same noise).
  o.labels = ev::make_labels("2", 5, 3, o.seed);
  EXPECT_FALSE(at::equal(ev::sample_images(d, fn_of(model), o).images, s.images));
}

TEST(SampleImages, GrayscaleKeepsOneChannel) {
  auto model = tiny_model(5, 0, /*channels=*/1);
  auto o = opts(2, 2, "ddim", 0.0);
  o.image_shape = {1, 8, 8};
  const auto s = ev::sample_images(tiny_diffusion().respaced("2"), fn_of(model), o);
  EXPECT_EQ(s.images.sizes(), (at::IntArrayRef{2, 8, 8, 1}));
}

TEST(MakeLabels, SpecsAndErrors) {
  EXPECT_TRUE(at::equal(ev::make_labels("1,4", 5, 10, 0), at::tensor({1, 4, 1, 4, 1}, at::kLong)));
  const at::Tensor r8 = ev::make_labels("random", 8, 10, 3);
  const at::Tensor r8b = ev::make_labels("random", 8, 10, 3);
  EXPECT_TRUE(at::equal(r8, r8b));
  EXPECT_GE(r8.min().item<int64_t>(), 0);
  EXPECT_LT(r8.max().item<int64_t>(), 10);
  EXPECT_FALSE(at::equal(r8, ev::make_labels("random", 8, 10, 4)));
  EXPECT_TRUE(at::equal(ev::make_labels("random", 3, 10, 3), r8.narrow(0, 0, 3)));
  EXPECT_FALSE(ev::make_labels("", 4, 0, 0).defined());
  EXPECT_THROW(ev::make_labels("1", 4, 0, 0), dmtrain::Error);
  EXPECT_THROW(ev::make_labels("10", 4, 10, 0), dmtrain::Error);
  EXPECT_THROW(ev::make_labels("1,a", 4, 10, 0), dmtrain::Error);
  EXPECT_THROW(ev::make_labels("-1", 4, 10, 0), dmtrain::Error);
}

}  // namespace
