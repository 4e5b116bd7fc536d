// Improved precision/recall (k-NN balls): a hand-worked 1-D case with points on ball boundaries,
// numpy's brute-force computation of the same definition
// (tests/fixtures/eval/make_feature_metrics_fixture.py: direct distances, np.partition radii as
// NVlabs' ManifoldEstimator), tile sizes that split the sets unevenly, and the role-swap invariant.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "dmtrain/eval/precision_recall.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/npy.hpp"

namespace {
namespace ev = dmtrain::eval;

at::Tensor column(std::initializer_list<double> v) {
  return at::tensor(std::vector<double>(v), at::kDouble).view({-1, 1});
}

TEST(PrecisionRecall, HandWorkedOneDimensionalK3) {
  // Reference R = {0, 1, 2, 3, 10}. Distances to the others, 3rd smallest = radius:
  //   0: 1 2 3 10 -> 3;  1: 1 1 2 9 -> 2;  2: 1 1 2 8 -> 2;  3: 1 2 3 7 -> 3;  10: 7 8 9 10 -> 9.
  // (Counting the point itself would give 2, 1, 1, 2, 8.) Balls: [-3,3] [-1,3] [0,4] [0,6] [1,19].
  // Samples S = {4, 4.5, 5, 6, 19.5}: radii 2, 1.5, 1, 2, 15 (19.5: 13.5 14.5 15 15.5).
  // Precision: 4, 4.5, 5 and 6 (on the boundary of 3's ball) lie in a reference ball, 19.5 in
  // none: 4/5. Recall: 0 and 1 lie in no sample ball; 2 lies exactly on the boundary of 4's ball
  // ([2, 6]), 3 inside it, 10 inside 19.5's ([4.5, 34.5]): 3/5.
  const at::Tensor r = column({0, 1, 2, 3, 10}), s = column({4, 4.5, 5, 6, 19.5});
  EXPECT_TRUE(at::equal(ev::knn_squared_radii(r), at::tensor({9.0, 4.0, 4.0, 9.0, 81.0})));
  EXPECT_TRUE(at::equal(ev::knn_squared_radii(s), at::tensor({4.0, 2.25, 1.0, 4.0, 225.0})));
  const ev::PrecisionRecall pr = ev::precision_recall(s, r);
  EXPECT_DOUBLE_EQ(pr.precision, 0.8);
  EXPECT_DOUBLE_EQ(pr.recall, 0.6);
  // Roles swapped: precision and recall trade places.
  const ev::PrecisionRecall swapped = ev::precision_recall(r, s);
  EXPECT_DOUBLE_EQ(swapped.precision, 0.6);
  EXPECT_DOUBLE_EQ(swapped.recall, 0.8);
}

TEST(PrecisionRecall, MatchesNumpyFixtureForAnyTiling) {
  const auto arrays =
      dmtrain::util::read_npz(std::string(DMTRAIN_FIXTURES_DIR) + "/eval/feature_metrics.npz");
  const std::map<std::string, at::Tensor> f(arrays.begin(), arrays.end());
  const at::Tensor x = f.at("x"), y = f.at("y");  // samples [60, 8], reference [45, 8]
  for (int64_t block : {4096, 7, 1}) {
    ev::PrecisionRecallOptions o;
    o.block = block;
    EXPECT_TRUE(at::allclose(ev::knn_squared_radii(x, o), f.at("squared_radii_x"), 1e-12, 0))
        << block;
    EXPECT_TRUE(at::allclose(ev::knn_squared_radii(y, o), f.at("squared_radii_y"), 1e-12, 0))
        << block;
    const ev::PrecisionRecall pr = ev::precision_recall(x, y, o);
    EXPECT_DOUBLE_EQ(pr.precision, f.at("precision_recall_k3")[0].item<double>()) << block;
    EXPECT_DOUBLE_EQ(pr.recall, f.at("precision_recall_k3")[1].item<double>()) << block;
    o.k = 1;
    const ev::PrecisionRecall pr1 = ev::precision_recall(x, y, o);
    EXPECT_DOUBLE_EQ(pr1.precision, f.at("precision_recall_k1")[0].item<double>()) << block;
    EXPECT_DOUBLE_EQ(pr1.recall, f.at("precision_recall_k1")[1].item<double>()) << block;
  }
  // Given radii (a reference's kept between evaluations) give the same numbers.
  const ev::PrecisionRecall given =
      ev::precision_recall(x, ev::knn_squared_radii(x), y, f.at("squared_radii_y"));
  EXPECT_DOUBLE_EQ(given.precision, f.at("precision_recall_k3")[0].item<double>());
}

TEST(PrecisionRecall, DuplicatesAreNeighboursAtDistanceZero) {
  // Four copies of 0 and one 5: for each copy the 3 nearest others are copies (radius 0), for 5
  // the copies at 5.
  const at::Tensor r = column({0, 0, 0, 0, 5});
  EXPECT_TRUE(at::equal(ev::knn_squared_radii(r), at::tensor({0.0, 0.0, 0.0, 0.0, 25.0})));
}

TEST(PrecisionRecall, TooFewVectorsOrMismatchedDimensionsAreErrors) {
  const at::Tensor four = at::rand({4, 2}), three = at::rand({3, 2}), wide = at::rand({4, 3});
  EXPECT_NO_THROW(ev::knn_squared_radii(four));
  EXPECT_THROW(ev::knn_squared_radii(three), dmtrain::Error);  // k = 3 needs 4
  EXPECT_THROW(ev::precision_recall(four, three), dmtrain::Error);
  EXPECT_THROW(ev::precision_recall(four, wide), dmtrain::Error);
  ev::PrecisionRecallOptions o;
  o.k = 0;
  EXPECT_THROW(ev::knn_squared_radii(four, o), dmtrain::Error);
}

}  // namespace
