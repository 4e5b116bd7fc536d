// MDLRC beta1_k / lr_k against hand-worked values (Eq. 9-10), switches, and validation.
#include <gtest/gtest.h>

#include <cmath>

#include "dmtrain/optim/mdlrc_schedule.hpp"
#include "dmtrain/util/error.hpp"

using namespace dmtrain::optim;

// Hand-worked with beta1_0 = 0.9, K = 100, beta1_min = 0.5, lr0 = 1e-4:
//   k = 0:   r = 1,    beta1 = 0.9 / (0.1 + 0.9)     = 0.9
//   k = 50:  r = 0.5,  beta1 = 0.45 / 0.55           = 9/11
//   k = 80:  r = 0.2,  beta1 = 0.18 / 0.28           = 9/14
//   k = 88:  r = 0.12, beta1 = 0.108 / 0.208         = 27/52
//   k = 89:  r = 0.11, beta1 = 0.099 / 0.199 < 0.5   -> floor 0.5 (crossing at r = 1/9)
//   k = 100: r = 0,    beta1 = 0                     -> floor 0.5; k > K the same.
//   lr_k = 1e-4 * 0.1 / (1 - beta1_k): k=50: 5.5e-5, k=80: 2.8e-5, floor: 2e-5.
TEST(MdlrcSchedule, Beta1HandWorked) {
  EXPECT_DOUBLE_EQ(mdlrc_beta1(0, 100, 0.9, 0.5), 0.9);
  EXPECT_DOUBLE_EQ(mdlrc_beta1(50, 100, 0.9, 0.5), 9.0 / 11.0);
  EXPECT_DOUBLE_EQ(mdlrc_beta1(80, 100, 0.9, 0.5), 9.0 / 14.0);
  EXPECT_DOUBLE_EQ(mdlrc_beta1(88, 100, 0.9, 0.5), 27.0 / 52.0);
  EXPECT_EQ(mdlrc_beta1(89, 100, 0.9, 0.5), 0.5);
  EXPECT_EQ(mdlrc_beta1(100, 100, 0.9, 0.5), 0.5);
  EXPECT_EQ(mdlrc_beta1(250, 100, 0.9, 0.5), 0.5);
  EXPECT_EQ(mdlrc_beta1(100, 100, 0.9, 0.0), 0.0);  // no floor: Demon reaches 0 at k = K
}

TEST(MdlrcSchedule, LrHandWorked) {
  EXPECT_NEAR(mdlrc_lr(0, 100, 1e-4, 0.9, 0.5, true), 1e-4, 1e-12 * 1e-4);
  EXPECT_NEAR(mdlrc_lr(50, 100, 1e-4, 0.9, 0.5, true), 5.5e-5, 1e-12 * 5.5e-5);
  EXPECT_NEAR(mdlrc_lr(80, 100, 1e-4, 0.9, 0.5, true), 2.8e-5, 1e-12 * 2.8e-5);
  EXPECT_NEAR(mdlrc_lr(95, 100, 1e-4, 0.9, 0.5, true), 2e-5, 1e-12 * 2e-5);
  EXPECT_NEAR(mdlrc_lr(100, 100, 1e-4, 0.9, 0.5, true), 2e-5, 1e-12 * 2e-5);
  EXPECT_EQ(mdlrc_lr(50, 100, 1e-4, 0.9, 0.5, false), 1e-4);
}

TEST(MdlrcSchedule, CompensationKeepsGradientShareConstantAboveFloor) {
  MdlrcSchedule s{true, true, 0.9, 0.5, 1e-4, 1000};
  double prev_beta1 = 1.0;
  for (int64_t k = 0; k <= 1000; ++k) {
    const double b = s.beta1(k);
    EXPECT_LE(b, prev_beta1);  // monotone non-increasing
    prev_beta1 = b;
    if (b > 0.5) {
      EXPECT_NEAR(s.lr(k) * (1.0 - b), 1e-4 * 0.1, 1e-18) << k;
    }
  }
  EXPECT_EQ(s.beta1(1000), 0.5);
  EXPECT_NEAR(s.lr(1000), 2e-5, 1e-17);
}

TEST(MdlrcSchedule, SwitchesAreIndependent) {
  MdlrcSchedule off{false, true, 0.9, 0.5, 1e-4, 100};
  EXPECT_EQ(off.beta1(50), 0.9);
  EXPECT_DOUBLE_EQ(off.lr(50), 1e-4);  // compensation of a constant beta1 is a no-op
  MdlrcSchedule md_only{true, false, 0.9, 0.5, 1e-4, 100};
  EXPECT_DOUBLE_EQ(md_only.beta1(50), 9.0 / 11.0);
  EXPECT_EQ(md_only.lr(50), 1e-4);
}

TEST(MdlrcSchedule, ValidationNamesKey) {
  auto expect_key = [](const MdlrcSchedule& s, const std::string& key) {
    try {
      validate(s);
      FAIL() << "no error for " << key;
    } catch (const dmtrain::Error& e) {
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
  };
  expect_key({true, true, 0.9, 0.95, 1e-4, 100}, "optim.beta1_min");
  expect_key({true, true, 0.9, -0.1, 1e-4, 100}, "optim.beta1_min");
  expect_key({true, true, 1.0, 0.5, 1e-4, 100}, "optim.beta1");
  expect_key({true, true, 0.9, 0.5, 1e-4, 0}, "optim.total_iterations");
  expect_key({true, true, 0.9, 0.5, -1.0, 100}, "optim.lr");
  EXPECT_NO_THROW(validate(MdlrcSchedule{true, true, 0.9, 0.5, 1e-4, 100}));
  EXPECT_NO_THROW(validate(MdlrcSchedule{true, true, 0.9, 0.9, 1e-4, 100}));
  // Momentum decay off: floor and K are unused, so not checked.
  EXPECT_NO_THROW(validate(MdlrcSchedule{false, false, 0.4, 0.5, 1e-4, 0}));
}

// The lr-decay control: MDLRC's learning rate with beta1 held at beta1_0 (hand-worked values
// above: 5.5e-5 at k = 50, 2.8e-5 at 80, the floor 2e-5 from k = 89 on).
TEST(MdlrcSchedule, LrScheduleMdlrcIsTheCompensatedLrWithBeta1Held) {
  MdlrcSchedule s{false, false, 0.9, 0.5, 1e-4, 100};
  s.lr_schedule = "mdlrc";
  EXPECT_EQ(s.beta1(50), 0.9);
  EXPECT_NEAR(s.lr(0), 1e-4, 1e-16);
  EXPECT_NEAR(s.lr(50), 5.5e-5, 1e-16);
  EXPECT_NEAR(s.lr(80), 2.8e-5, 1e-16);
  EXPECT_NEAR(s.lr(95), 2e-5, 1e-16);
  // the same lr_k as the full MDLRC schedule at every k
  MdlrcSchedule full{true, true, 0.9, 0.5, 1e-4, 100};
  for (int64_t k = 0; k <= 120; ++k) EXPECT_DOUBLE_EQ(s.lr(k), full.lr(k)) << k;
}

// Linear and cosine decay to a floor: lr_min = 0.2 * 1e-4 = 2e-5, K = 100.
//   linear: k = 25: 2e-5 + 8e-5 * 0.75 = 8e-5;  k = 50: 6e-5;  k >= 100: 2e-5
//   cosine: k = 50: 2e-5 + 8e-5 * 0.5 = 6e-5;   k = 25: 2e-5 + 8e-5 (1 + cos(pi/4)) / 2
TEST(MdlrcSchedule, LinearAndCosineDecayToTheFloor) {
  MdlrcSchedule lin{false, false, 0.9, 0.5, 1e-4, 100};
  lin.lr_schedule = "linear";
  lin.lr_min_ratio = 0.2;
  EXPECT_NEAR(lin.lr(0), 1e-4, 1e-18);
  EXPECT_NEAR(lin.lr(25), 8e-5, 1e-18);
  EXPECT_NEAR(lin.lr(50), 6e-5, 1e-18);
  EXPECT_NEAR(lin.lr(100), 2e-5, 1e-18);
  EXPECT_NEAR(lin.lr(300), 2e-5, 1e-18);
  MdlrcSchedule cos = lin;
  cos.lr_schedule = "cosine";
  EXPECT_NEAR(cos.lr(0), 1e-4, 1e-18);
  EXPECT_NEAR(cos.lr(50), 6e-5, 1e-18);
  EXPECT_NEAR(cos.lr(25), 2e-5 + 8e-5 * (1 + std::sqrt(0.5)) / 2, 1e-18);
  EXPECT_NEAR(cos.lr(100), 2e-5, 1e-18);
}

TEST(MdlrcSchedule, LrScheduleValidationNamesKey) {
  MdlrcSchedule s{false, true, 0.9, 0.5, 1e-4, 100};
  s.lr_schedule = "mdlrc";
  try {
    validate(s);
    FAIL() << "lr_schedule with lr_compensation accepted";
  } catch (const dmtrain::Error& e) {
    EXPECT_NE(std::string(e.what()).find("optim.lr_schedule"), std::string::npos) << e.what();
  }
  s.lr_compensation = false;
  s.lr_schedule = "step";
  EXPECT_THROW(validate(s), dmtrain::Error);
  s.lr_schedule = "linear";
  s.lr_min_ratio = 1.5;
  EXPECT_THROW(validate(s), dmtrain::Error);
}

// Linear warm-up: lr_k times min(1, (k + 1) / W) on top of whichever rule, by hand.
TEST(MdlrcSchedule, WarmupRampsEveryRuleLinearly) {
  MdlrcSchedule s{false, false, 0.9, 0.5, 1e-3, 100};
  s.warmup_iterations = 4;
  EXPECT_DOUBLE_EQ(s.lr(0), 2.5e-4);  // 1/4 of lr_0: the first step already trains
  EXPECT_DOUBLE_EQ(s.lr(1), 5e-4);
  EXPECT_DOUBLE_EQ(s.lr(3), 1e-3);    // ramp done at k = W - 1
  EXPECT_DOUBLE_EQ(s.lr(50), 1e-3);
  s.lr_schedule = "linear";           // lr_0 (1 - k/K) x ramp: k = 1 -> 1e-3 x 0.99 x 0.5
  EXPECT_DOUBLE_EQ(s.lr(1), 1e-3 * 0.99 * 0.5);
  EXPECT_DOUBLE_EQ(s.lr(50), 1e-3 * 0.5);
  MdlrcSchedule m{true, true, 0.9, 0.5, 1e-3, 100};  // MDLRC's compensated lr, ramped too
  const double plain = m.lr(1), plain_beta1 = m.beta1(1);
  m.warmup_iterations = 4;
  EXPECT_DOUBLE_EQ(m.lr(1), 0.5 * plain);
  EXPECT_DOUBLE_EQ(m.beta1(1), plain_beta1);
  m.warmup_iterations = -1;
  try {
    validate(m);
    FAIL() << "warmup_iterations -1 accepted";
  } catch (const dmtrain::Error& e) {
    EXPECT_NE(std::string(e.what()).find("optim.warmup_iterations"), std::string::npos)
        << e.what();
  }
}
