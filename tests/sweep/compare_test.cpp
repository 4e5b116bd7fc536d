// dmtrain compare's numbers (dmtrain/sweep/compare.hpp) against hand-worked values: log-FID
// interpolation, mean curves, censored ratios ("<" and ">" bounds, n/a), the noise floor, the
// geometric-mean FID of the last 60%, the CSV, and reading metrics.jsonl files (duplicate steps,
// null FIDs, seeds from config.yaml) with every error case. Through the executable:
// tests/CMakeLists.txt, cli.compare_*.
#include "dmtrain/sweep/compare.hpp"
#include "support/error_of.hpp"
#include "support/scratch_dir.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "dmtrain/util/error.hpp"

namespace fs = std::filesystem;
using namespace dmtrain;
using sweep::FidPoint;
using sweep::Iters;
using sweep::Ratio;

namespace {

using dmtrain::test_support::error_of;

#define EXPECT_CONTAINS(text, part) EXPECT_NE((text).find(part), std::string::npos) << (text)

sweep::Run run_of(const std::string& label, std::vector<FidPoint> curve) {
  sweep::Run r;
  r.label = label;
  r.metrics_path = label;
  r.curve = std::move(curve);
  return r;
}

// The study in miniature (FID every 1000 iterations; hand-worked in the tests below):
//   baseline b1: 160, 80, 40, 10        b2: 160, 80, 40, 30
//     mean:      160, 80, 40, 20  -> default target 20, ladder 80, 40, 20
//   arm fast a1:  80, 40, 10,  5        a2:  80, 40, 30, 15
//     mean:       80, 40, 20, 10
//   arm slow s1: 160, 100, 80, 50, 25   s2: 160, 100, 80, 50, 30   (5 evaluations, to 5000)
//     mean:      160, 100, 80, 50, 27.5
struct Study {
  std::vector<sweep::Run> baseline{run_of("b1", {{1000, 160}, {2000, 80}, {3000, 40}, {4000, 10}}),
                                   run_of("b2", {{1000, 160}, {2000, 80}, {3000, 40}, {4000, 30}})};
  std::vector<std::pair<std::string, std::vector<sweep::Run>>> arms{
      {"fast",
       {run_of("a1", {{1000, 80}, {2000, 40}, {3000, 10}, {4000, 5}}),
        run_of("a2", {{1000, 80}, {2000, 40}, {3000, 30}, {4000, 15}})}},
      {"slow",
       {run_of("s1", {{1000, 160}, {2000, 100}, {3000, 80}, {4000, 50}, {5000, 25}}),
        run_of("s2", {{1000, 160}, {2000, 100}, {3000, 80}, {4000, 50}, {5000, 30}})}}};
};

}  // namespace

TEST(CompareIters, LogFidInterpolationBetweenEvaluations) {
  // ln FID from ln 100 at 0 to ln 10 at 1000. Target 10^1.5 = 31.6227766:
  // 0 + 1000 * (ln 100 - 1.5 ln 10) / (ln 100 - ln 10) = 1000 * 0.5 ln 10 / ln 10 = 500.
  const std::vector<FidPoint> c{{0, 100}, {1000, 10}};
  EXPECT_NEAR(sweep::iters_to_target(c, std::pow(10.0, 1.5)).value, 500, 1e-9);
  // Target 50: 1000 * (ln 100 - ln 50) / ln 10 = 1000 * log10(2) = 301.0299957.
  EXPECT_NEAR(sweep::iters_to_target(c, 50).value, 301.0299957, 1e-6);
  // Exactly the second evaluation's FID: its step.
  EXPECT_NEAR(sweep::iters_to_target(c, 10).value, 1000, 1e-9);
  // The first evaluation is already <= the target: its step, no interpolation from 0.
  const std::vector<FidPoint> late{{2000, 30}, {4000, 10}};
  EXPECT_DOUBLE_EQ(sweep::iters_to_target(late, 40).value, 2000);
  // Never reached: censored at the last step.
  const Iters never = sweep::iters_to_target(c, 5);
  EXPECT_FALSE(never.reached());
  EXPECT_EQ(never.last_step, 1000);
  EXPECT_EQ(sweep::format_iters(never), ">1,000");
  // (ln 30 - ln 20) / (ln 30 - ln 10) = ln 1.5 / ln 3 = 0.3690702 -> 2000 + 738.14 = 2738.14.
  EXPECT_NEAR(sweep::iters_to_target(late, 20).value, 2000 + 2000 * std::log(1.5) / std::log(3.0),
              1e-9);
  EXPECT_EQ(sweep::format_iters(sweep::iters_to_target(late, 20)), "2,738");
}

TEST(CompareIters, InterpolatesFromTheLastEvaluationAboveTheTarget) {
  // A curve that dips below, rises and falls again: the first crossing counts (2000 -> 3000).
  // ln(40/20) / ln(40/10) = ln 2 / ln 4 = 0.5 -> 2500.
  const std::vector<FidPoint> c{{1000, 80}, {2000, 40}, {3000, 10}, {4000, 50}, {5000, 5}};
  EXPECT_NEAR(sweep::iters_to_target(c, 20).value, 2500, 1e-9);
  EXPECT_EQ(sweep::iters_to_target(c, 20).last_step, 5000);
}

TEST(CompareRatio, ValuesAndCensoredBounds) {
  const Iters ref{3500, 4000}, fast{2500, 4000};
  const Iters never_at_5000{NAN, 5000}, never_at_4000{NAN, 4000};
  // Both reached: 3500 / 2500 = 1.4.
  Ratio r = sweep::iteration_ratio(ref, fast);
  EXPECT_EQ(r.kind, Ratio::Kind::kValue);
  EXPECT_DOUBLE_EQ(r.value, 1.4);
  EXPECT_EQ(sweep::format_ratio(r), "1.40x");
  // The other never reaches it by 5000: it would need > 5000, so the ratio < 3500 / 5000 = 0.7.
  r = sweep::iteration_ratio(ref, never_at_5000);
  EXPECT_EQ(r.kind, Ratio::Kind::kUpperBound);
  EXPECT_DOUBLE_EQ(r.value, 0.7);
  EXPECT_EQ(sweep::format_ratio(r), "<0.70x");
  // The reference never reaches it by 4000, the other at 2500: ratio > 4000 / 2500 = 1.6.
  r = sweep::iteration_ratio(never_at_4000, fast);
  EXPECT_EQ(r.kind, Ratio::Kind::kLowerBound);
  EXPECT_DOUBLE_EQ(r.value, 1.6);
  EXPECT_EQ(sweep::format_ratio(r), ">1.60x");
  // Neither.
  r = sweep::iteration_ratio(never_at_4000, never_at_5000);
  EXPECT_EQ(r.kind, Ratio::Kind::kUnknown);
  EXPECT_EQ(sweep::format_ratio(r), "n/a");
}

TEST(CompareMeanCurve, ArithmeticMeanAtTheStepsEveryRunHas) {
  // Steps 1000 and 2000 are in both: (20 + 40) / 2 = 30, (30 + 50) / 2 = 40; 0 and 3000 are not.
  const auto m =
      sweep::mean_curve({{{0, 10}, {1000, 20}, {2000, 30}}, {{1000, 40}, {2000, 50}, {3000, 60}}});
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].step, 1000);
  EXPECT_DOUBLE_EQ(m[0].fid, 30);
  EXPECT_EQ(m[1].step, 2000);
  EXPECT_DOUBLE_EQ(m[1].fid, 40);
  // The study's baseline: 23.595 is the mean of 22.88 and 24.31 (docs/results.md).
  const auto b = sweep::mean_curve({{{20000, 22.88}}, {{20000, 24.31}}});
  EXPECT_NEAR(b[0].fid, 23.595, 1e-12);
  EXPECT_TRUE(sweep::mean_curve({{{0, 1}}, {{1, 1}}}).empty());
}

TEST(CompareGeomean, ConstantLogSlope) {
  // ln FID = ln 100 - (s / 1000) ln 10 on [0, 1000]; L = 1000, window [400, 1000]:
  // ln FID(400) = 1.6 ln 10, ln FID(1000) = ln 10, mean (linear) = 1.3 ln 10 -> 10^1.3 = 19.95262.
  bool clipped = true;
  EXPECT_NEAR(sweep::geomean_fid_tail({{0, 100}, {1000, 10}}, 0.6, &clipped), 19.9526231497, 1e-8);
  EXPECT_FALSE(clipped);
}

TEST(CompareGeomean, WindowCutAtAKinkAndBeforeTheFirstEvaluation) {
  // 1000 at 0, 100 at 500, 100 at 1000 (log10: 3, 2, 2). Window [400, 1000]:
  // [400, 500]: log10 from 2.2 to 2, mean 2.1, length 100 -> 210; [500, 1000]: 2 * 500 = 1000.
  // (210 + 1000) / 600 = 2.0166667 -> 10^2.0166667 = 103.91223.
  EXPECT_NEAR(sweep::geomean_fid_tail({{0, 1000}, {500, 100}, {1000, 100}}), 103.9122303835, 1e-8);
  // First evaluation at 1000, L = 2000: 0.4 L = 800 < 1000, so the window is [1000, 2000]:
  // log10 from 2 to 1, mean 1.5 -> 10^1.5 = 31.6227766; flagged.
  bool clipped = false;
  EXPECT_NEAR(sweep::geomean_fid_tail({{1000, 100}, {2000, 10}}, 0.6, &clipped), 31.6227766017,
              1e-8);
  EXPECT_TRUE(clipped);
  // One evaluation: its FID.
  EXPECT_DOUBLE_EQ(sweep::geomean_fid_tail({{4000, 42}}), 42);
}

TEST(CompareNoiseFloor, LargestLogRatioAndItsBounds) {
  // Ratios 8/7 and 0.9: |ln| = 0.1335314 and 0.1053605 -> floor ln(8/7), band 8/7 - 1 = 14.29%.
  sweep::NoiseFloor f =
      sweep::noise_floor({{Ratio::Kind::kValue, 8.0 / 7.0}, {Ratio::Kind::kValue, 0.9}});
  EXPECT_NEAR(f.log_band, std::log(8.0 / 7.0), 1e-12);
  EXPECT_NEAR(f.percent(), 100.0 / 7.0, 1e-9);
  EXPECT_FALSE(f.lower_bound);
  // A censored run "<0.5": its |ln r| > ln 2 = 0.693, so the floor is at least that.
  f = sweep::noise_floor({{Ratio::Kind::kValue, 8.0 / 7.0}, {Ratio::Kind::kUpperBound, 0.5}});
  EXPECT_NEAR(f.log_band, std::log(2.0), 1e-12);
  EXPECT_TRUE(f.lower_bound);
  ASSERT_EQ(f.censored.size(), 1u);
  EXPECT_EQ(f.censored[0], 1u);
  // "<1.5" says nothing about |ln r| (r may be 1): the known run alone, still a lower bound.
  f = sweep::noise_floor({{Ratio::Kind::kValue, 0.9}, {Ratio::Kind::kUpperBound, 1.5}});
  EXPECT_NEAR(f.log_band, -std::log(0.9), 1e-12);
  EXPECT_TRUE(f.lower_bound);
  // One baseline run: unknown.
  EXPECT_TRUE(std::isnan(sweep::noise_floor({{Ratio::Kind::kValue, 1.0}}).log_band));
}

TEST(Compare, StudyInMiniature) {
  const Study s;
  const sweep::Comparison c = sweep::compare(s.baseline, s.arms);
  // Default target: the baseline mean's final value (10 + 30) / 2 = 20; the ladder is the mean
  // curve from its second evaluation: 80, 40, 20 (the default last).
  EXPECT_DOUBLE_EQ(c.default_target, 20);
  ASSERT_EQ(c.targets, (std::vector<double>{80, 40, 20}));
  EXPECT_EQ(c.default_index, 2u);

  // Baseline at 20: its mean curve 40 -> 20 between 3000 and 4000 reaches 20 at 4000;
  // b1 (40 -> 10): ln 2 / ln 4 = 0.5 -> 3500; b2 (ends at 30) never: "> 4000".
  const auto& b = c.at_default(c.baseline);
  EXPECT_NEAR(b.mean.value, 4000, 1e-9);
  EXPECT_NEAR(b.runs[0].value, 3500, 1e-9);
  EXPECT_FALSE(b.runs[1].reached());
  // Noise: mean / b1 = 4000 / 3500 = 8/7 = 1.142857; mean / b2 < 4000 / 4000 = 1 (no |ln| known
  // beyond 0). Floor: ln(8/7), band 14.2857%, a lower bound (b2 censored).
  EXPECT_NEAR(b.run_ratios[0].value, 8.0 / 7.0, 1e-12);
  EXPECT_EQ(sweep::format_ratio(b.run_ratios[1]), "<1.00x");
  EXPECT_NEAR(b.floor.percent(), 100.0 / 7.0, 1e-9);
  EXPECT_TRUE(b.floor.lower_bound);

  // fast at 20: its mean 40 -> 20 between 2000 and 3000: 3000; ratio 4000 / 3000 = 1.3333.
  // a1 (40 -> 10): 2500, same seed b1 / a1 = 3500 / 2500 = 1.4.
  // a2 (30 -> 15 between 3000 and 4000): 3000 + 1000 ln 1.5 / ln 2 = 3584.9625; b2 never, so
  // "> 4000 / 3584.9625 = 1.1157718".
  const auto& fast = c.at_default(c.arms[0]);
  EXPECT_NEAR(fast.mean.value, 3000, 1e-9);
  EXPECT_NEAR(fast.mean_ratio.value, 4.0 / 3.0, 1e-12);
  EXPECT_NEAR(fast.runs[0].value, 2500, 1e-9);
  EXPECT_NEAR(fast.run_ratios[0].value, 1.4, 1e-12);
  EXPECT_NEAR(fast.runs[1].value, 3000 + 1000 * std::log(1.5) / std::log(2.0), 1e-9);
  EXPECT_EQ(fast.run_ratios[1].kind, Ratio::Kind::kLowerBound);
  EXPECT_NEAR(fast.run_ratios[1].value, 1.1157717826, 1e-9);

  // slow at 20: neither its mean (ends at 27.5 at 5000) nor s1 nor s2 get there.
  // Mean ratio < 4000 / 5000 = 0.8; s1 with b1: < 3500 / 5000 = 0.7; s2 with b2: n/a.
  const auto& slow = c.at_default(c.arms[1]);
  EXPECT_EQ(sweep::format_ratio(slow.mean_ratio), "<0.80x");
  EXPECT_EQ(sweep::format_ratio(slow.run_ratios[0]), "<0.70x");
  EXPECT_EQ(sweep::format_ratio(slow.run_ratios[1]), "n/a");

  // Rung 80: baseline mean 160 -> 80 at 2000; fast's first evaluation is 80: 1000 -> 2.0;
  // slow's mean 100 -> 80 at 3000 -> 2000 / 3000 = 0.6667.
  EXPECT_NEAR(c.arms[0].at[0].mean_ratio.value, 2.0, 1e-12);
  EXPECT_NEAR(c.arms[1].at[0].mean_ratio.value, 2.0 / 3.0, 1e-12);
  // Rung 40: baseline 3000, fast 2000 -> 1.5; slow's mean 50 -> 27.5 between 4000 and 5000:
  // 4000 + 1000 ln(50/40) / ln(50/27.5) = 4000 + 1000 * 0.2231436 / 0.5978370 = 4373.2515.
  EXPECT_NEAR(c.arms[0].at[1].mean_ratio.value, 1.5, 1e-12);
  EXPECT_NEAR(c.arms[1].at[1].mean.value, 4373.2514900, 1e-6);
  // Both baseline seeds reach 80 and 40 at the mean's steps: the floor there is 0.
  EXPECT_DOUBLE_EQ(c.baseline.at[0].floor.log_band, 0);

  // Final FID means: baseline (10 + 30) / 2 = 20, fast (5 + 15) / 2 = 10, slow 27.5.
  EXPECT_DOUBLE_EQ(c.baseline.final_fid_mean, 20);
  EXPECT_DOUBLE_EQ(c.arms[0].final_fid_mean, 10);
  EXPECT_DOUBLE_EQ(c.arms[1].final_fid_mean, 27.5);
  // Geomean of fast: the mean of its runs' values.
  EXPECT_DOUBLE_EQ(c.arms[0].geomean_mean, (sweep::geomean_fid_tail(s.arms[0].second[0].curve) +
                                            sweep::geomean_fid_tail(s.arms[0].second[1].curve)) /
                                               2);

  const std::string table = sweep::comparison_table(c);
  EXPECT_CONTAINS(table, "default target: FID 20.000");
  EXPECT_CONTAINS(table, "noise floor at FID 20.000: at least +-14.3%");
  EXPECT_CONTAINS(table, "1.14x <1.00x; run 2 does not reach it by step 4,000");
  EXPECT_CONTAINS(table, "1.40x >1.12x");
  EXPECT_CONTAINS(table, "<0.70x n/a");
  const std::string md = sweep::comparison_markdown(c);
  EXPECT_CONTAINS(md, "- fast: `a1`, `a2`\n");
  EXPECT_CONTAINS(md, "| fast | 2 | 10.000 | 3,000 | 1.33x | 1.40x >1.12x |");
}

TEST(Compare, CsvOneRowPerArmAndTarget) {
  const Study s;
  const std::string csv = sweep::comparison_csv(sweep::compare(s.baseline, s.arms));
  // The values of StudyInMiniature; iterations with 1 decimal, ratios with 4, bounds prefixed.
  // slow at 40: s1 4000 + 1000 ln 1.25 / ln 2 = 4321.9281 (3000 / that = 0.6941);
  //             s2 4000 + 1000 ln 1.25 / ln(50/30) = 4436.8292 (0.6762); mean 4373.2515 (0.6860).
  EXPECT_EQ(csv,
            "arm,target,default_target,iters_mean,ratio_mean,noise_floor_pct,iters_run1,"
            "ratio_run1,iters_run2,ratio_run2\n"
            "baseline,80,0,2000.0,1.0000,0.0000,2000.0,1.0000,2000.0,1.0000\n"
            "baseline,40,0,3000.0,1.0000,0.0000,3000.0,1.0000,3000.0,1.0000\n"
            "baseline,20,1,4000.0,1.0000,>=14.2857,3500.0,1.1429,>4000,<1.0000\n"
            "fast,80,0,1000.0,2.0000,0.0000,1000.0,2.0000,1000.0,2.0000\n"
            "fast,40,0,2000.0,1.5000,0.0000,2000.0,1.5000,2000.0,1.5000\n"
            "fast,20,1,3000.0,1.3333,>=14.2857,2500.0,1.4000,3585.0,>1.1158\n"
            "slow,80,0,3000.0,0.6667,0.0000,3000.0,0.6667,3000.0,0.6667\n"
            "slow,40,0,4373.3,0.6860,0.0000,4321.9,0.6941,4436.8,0.6762\n"
            "slow,20,1,>5000,<0.8000,>=14.2857,>5000,<0.7000,>5000,n/a\n");
}

TEST(Compare, GivenTargetsThenTheDefaultAndFewerArmRuns) {
  const Study s;
  // An arm with one run (paired with b1); --targets 100,30: the default 20 is appended.
  const auto c = sweep::compare(s.baseline, {{"one", {s.arms[0].second[0]}}}, {100, 30});
  ASSERT_EQ(c.targets, (std::vector<double>{100, 30, 20}));
  EXPECT_EQ(c.default_index, 2u);
  // Baseline mean at 100: 1000 + 1000 ln(160/100) / ln 2 = 1678.0719; a1's first evaluation
  // (80) is already below: 1000 -> 1.6780719.
  EXPECT_NEAR(c.arms[0].at[0].mean_ratio.value,
              (1000 + 1000 * std::log(1.6) / std::log(2.0)) / 1000, 1e-12);
  ASSERT_EQ(c.arms[0].at[2].run_ratios.size(), 1u);
  const std::string csv = sweep::comparison_csv(c);
  EXPECT_CONTAINS(csv, "one,20,1,2500.0,1.6000,>=14.2857,2500.0,1.4000,,\n");
}

TEST(Compare, OneBaselineRunHasNoNoiseFloor) {
  const Study s;
  const auto c = sweep::compare({s.baseline[0]}, {{"fast", {s.arms[0].second[0]}}});
  EXPECT_TRUE(std::isnan(c.at_default(c.baseline).floor.log_band));
  EXPECT_CONTAINS(sweep::comparison_table(c),
                  "noise floor at FID 10.000: unknown (one baseline run)");
}

TEST(Compare, NotesForAClippedWindowAndPairsOfOtherSeeds) {
  // Evaluations at 4000 and 8000: 0.4 x 8000 = 3200 lies before 4000, so the window is cut.
  sweep::Run b = run_of("b", {{4000, 100}, {8000, 10}});
  sweep::Run a = run_of("a", {{4000, 50}, {8000, 5}});
  b.seed = 0;
  a.seed = 1;
  const auto c = sweep::compare({b}, {{"x", {a}}});
  ASSERT_EQ(c.notes.size(), 3u);
  EXPECT_CONTAINS(c.notes[0],
                  "baseline run 1 (b): 0.4 x its last step 8,000 lies before its "
                  "first evaluation (step 4,000)");
  EXPECT_CONTAINS(c.notes[1], "x run 1 (a)");
  EXPECT_CONTAINS(c.notes[2], "x run 1 has seed 1 but baseline run 1 seed 0");
  // Window [4000, 8000]: log10 from 2 to 1, mean 1.5 -> 31.6227766.
  EXPECT_NEAR(c.baseline.geomean_mean, 31.6227766017, 1e-8);
}

TEST(Compare, RefusesBadGroups) {
  const Study s;
  const auto a = s.arms[0].second;
  EXPECT_CONTAINS(error_of([&] { sweep::compare({}, {{"x", a}}); }), "--baseline");
  EXPECT_CONTAINS(error_of([&] {
                    sweep::compare(s.baseline, {{"x", a}, {"x", a}});
                  }),
                  "--arm x: the name is given twice");
  EXPECT_CONTAINS(error_of([&] {
                    sweep::compare(s.baseline, {{"baseline", a}});
                  }),
                  "'baseline' is --baseline's");
  EXPECT_CONTAINS(error_of([&] {
                    sweep::compare({s.baseline[0]}, {{"x", a}});
                  }),
                  "--arm x has 2 runs but --baseline has 1");
  const std::vector<sweep::Run> apart{run_of("p", {{1000, 50}}), run_of("q", {{2000, 40}})};
  EXPECT_CONTAINS(error_of([&] {
                    sweep::compare(apart, {{"x", a}});
                  }),
                  "--baseline: its 2 runs share no evaluation step");
}

TEST(CompareArgs, ParseArmAndTargets) {
  const auto arm = sweep::parse_arm("minsnr=runs/a, runs/b");
  EXPECT_EQ(arm.name, "minsnr");
  EXPECT_EQ(arm.runs, (std::vector<std::string>{"runs/a", "runs/b"}));
  EXPECT_CONTAINS(error_of([] { sweep::parse_arm("minsnr"); }),
                  "--arm 'minsnr': expected NAME=RUN[,RUN...] (no '=')");
  EXPECT_CONTAINS(error_of([] { sweep::parse_arm("=a,b"); }),
                  "the arm's name (before '=') is empty");
  EXPECT_CONTAINS(error_of([] { sweep::parse_arm("x=a,,b"); }), "run 2 of 3 is empty");
  EXPECT_CONTAINS(error_of([] { sweep::parse_arm("x="); }), "run 1 of 1 is empty");

  EXPECT_EQ(sweep::parse_targets("60, 40,31.5"), (std::vector<double>{60, 40, 31.5}));
  EXPECT_CONTAINS(error_of([] { sweep::parse_targets("60,abc"); }),
                  "--targets '60,abc': 'abc' is not a number");
  EXPECT_CONTAINS(error_of([] { sweep::parse_targets("60,40x"); }), "'40x' is not a number");
  EXPECT_CONTAINS(error_of([] { sweep::parse_targets("60,,40"); }), "'' is not a number");
  EXPECT_CONTAINS(error_of([] { sweep::parse_targets("60,-1"); }), "-1 is not a positive FID");
}

struct CompareFiles : test_support::ScratchDirTest {
  CompareFiles() : ScratchDirTest("compare_files") {}
};

TEST_F(CompareFiles, ReadsRunDirsAndFilesLastRecordWinsNullSkipped) {
  fs::create_directories(dir_ / "run");
  // Training records, a failed evaluation (null) at 2000, a resumed run's two records at 1000
  // (the last, 40, wins), and a line torn by a kill.
  write("run/metrics.jsonl",
        "{\"step\":500,\"loss\":0.5,\"img_per_s\":100}\n"
        "{\"step\":1000,\"fid\":50,\"fid_samples\":5000,\"fid_seconds\":3}\n"
        "{\"step\":1000,\"loss\":0.4}\n"
        "{\"step\":1000,\"fid\":40,\"fid_samples\":5000,\"fid_seconds\":3}\n"
        "{\"step\":2000,\"fid\":null,\"fid_samples\":5000,\"fid_seconds\":3}\n"
        "{\"step\":3000,\"fid\":20,\"fid_samples\":5000,\"fid_seconds\":3}\n"
        "{\"step\":3500,\"fid\":1");
  write("run/config.yaml", "train:\n  seed: 7\n  iterations: 3000\n");
  const sweep::Run dir_run = sweep::load_run((dir_ / "run").string(), "--baseline");
  ASSERT_EQ(dir_run.curve.size(), 2u);
  EXPECT_EQ(dir_run.curve[0].step, 1000);
  EXPECT_DOUBLE_EQ(dir_run.curve[0].fid, 40);
  EXPECT_EQ(dir_run.curve[1].step, 3000);
  EXPECT_DOUBLE_EQ(dir_run.curve[1].fid, 20);
  ASSERT_TRUE(dir_run.seed.has_value());
  EXPECT_EQ(*dir_run.seed, 7);
  // The file itself: the same curve; no seed (a file's folder may hold another run's config).
  const sweep::Run file_run =
      sweep::load_run((dir_ / "run" / "metrics.jsonl").string(), "--baseline");
  EXPECT_EQ(file_run.curve.size(), 2u);
  EXPECT_FALSE(file_run.seed.has_value());
  // Over the null at 2000 the interpolation runs from 1000 to 3000:
  // ln(40/28.2842712) / ln(40/20) = 0.5 (28.28 = 40 / sqrt 2) -> 2000.
  EXPECT_NEAR(sweep::iters_to_target(dir_run.curve, 40 / std::sqrt(2.0)).value, 2000, 1e-9);
}

TEST_F(CompareFiles, ErrorsNameTheFlagAndTheFile) {
  const std::string missing = (dir_ / "no_such_run").string();
  EXPECT_CONTAINS(error_of([&] { sweep::load_run(missing, "--baseline"); }),
                  "--baseline: '" + missing + "' does not exist");
  fs::create_directories(dir_ / "empty_dir");
  EXPECT_CONTAINS(
      error_of([&] { sweep::load_run((dir_ / "empty_dir").string(), "--arm x"); }),
      "--arm x: run directory '" + (dir_ / "empty_dir").string() + "' has no metrics.jsonl");
  const std::string losses = write("losses.jsonl", "{\"step\":10,\"loss\":1}\n");
  EXPECT_CONTAINS(error_of([&] { sweep::load_run(losses, "--arm x"); }),
                  "--arm x: '" + losses + "' has no FID evaluation (no record with \"fid\"");
  const std::string nulls = write("nulls.jsonl", "{\"step\":10,\"fid\":null}\n");
  EXPECT_CONTAINS(error_of([&] { sweep::load_run(nulls, "--baseline"); }),
                  "has no FID evaluation with a finite FID (1 records, all null");
}
