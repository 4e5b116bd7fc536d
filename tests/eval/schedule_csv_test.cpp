// write_schedule_csv against closed forms: CLTS p_k(t) (method.md Eq. 7-8) and MDLRC
// beta1_k / lr_k (Eq. 9-10), each computed here from the formulas, independently of the
// timestep and optim libraries.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <sstream>

#include "dmtrain/eval/schedule_csv.hpp"
#include "dmtrain/util/error.hpp"

namespace {
using dmtrain::eval::ScheduleSource;

constexpr int64_t T = 50, KT = 1000, K = 2000;
constexpr double MU = 0.3, SIGMA = 0.25, B0 = 0.9, BMIN = 0.5, LR0 = 2e-4;

double clts_p(int64_t k, int64_t t) {
  double z = 0.0;
  for (int64_t s = 0; s < T; ++s)
    z += std::exp(-std::pow(double(s) / T - MU, 2) / (2 * SIGMA * SIGMA));
  const double g = std::exp(-std::pow(double(t) / T - MU, 2) / (2 * SIGMA * SIGMA)) / z;
  const double lam = std::min(1.0, double(k) / KT);
  return (1 - lam) / T + lam * g;
}
double beta1(int64_t k) {
  const double r = std::clamp(1.0 - double(k) / K, 0.0, 1.0);
  return std::max(BMIN, B0 * r / ((1 - B0) + B0 * r));
}
double lr(int64_t k) {
  return LR0 * (1 - B0) / (1 - beta1(k));
}

// Stand-ins with the member functions schedule_source() adapts (as TimestepSampler and
// MdlrcSchedule have them).
struct ClosedFormSampler {
  int64_t num_timesteps() const { return T; }
  at::Tensor probabilities(int64_t k) const {
    at::Tensor p = at::empty({T}, at::kDouble);
    for (int64_t t = 0; t < T; ++t) p[t] = clts_p(k, t);
    return p;
  }
};
struct ClosedFormSchedule {
  double beta1(int64_t k) const { return ::beta1(k); }
  double lr(int64_t k) const { return ::lr(k); }
};

struct Row {
  int64_t k, t;
  double p, b1, lr;
};
std::vector<Row> parse(const std::string& csv, std::string* header) {
  std::istringstream is(csv);
  std::getline(is, *header);
  std::vector<Row> rows;
  std::string line;
  while (std::getline(is, line)) {
    Row r{};
    char c;
    std::istringstream ls(line);
    ls >> r.k >> c >> r.t >> c >> r.p >> c >> r.b1 >> c >> r.lr;
    EXPECT_TRUE(ls && ls.peek() == EOF) << line;
    rows.push_back(r);
  }
  return rows;
}

TEST(ScheduleCsv, RowsMatchClosedForms) {
  ClosedFormSampler sampler;
  ClosedFormSchedule sched;
  const std::vector<int64_t> ks{0, 500, 1000, 1500, 2000, 3000};
  std::ostringstream os;
  dmtrain::eval::write_schedule_csv(os, sampler, sched, ks);
  std::string header;
  const auto rows = parse(os.str(), &header);
  EXPECT_EQ(header, "iteration,t,p,beta1,lr");
  ASSERT_EQ(rows.size(), ks.size() * T);
  std::map<int64_t, double> sums;
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    EXPECT_EQ(r.k, ks[i / T]);
    EXPECT_EQ(r.t, int64_t(i % T));
    EXPECT_DOUBLE_EQ(r.p, clts_p(r.k, r.t));  // 17 digits round-trip
    EXPECT_DOUBLE_EQ(r.b1, beta1(r.k));
    EXPECT_DOUBLE_EQ(r.lr, lr(r.k));
    sums[r.k] += r.p;
    if (r.k == 0) {
      EXPECT_DOUBLE_EQ(r.p, 1.0 / T);  // lam_0 = 0: uniform
    }
  }
  for (const auto& [k, s] : sums) EXPECT_NEAR(s, 1.0, 1e-12) << "k=" << k;
  // Hand-worked ends of the MDLRC schedule: k=0 gives (beta1_0, lr0); k >= K the floor, where
  // lr = lr0 (1 - 0.9) / (1 - 0.5) = 0.2 lr0.
  EXPECT_DOUBLE_EQ(rows.front().b1, 0.9);
  EXPECT_DOUBLE_EQ(rows.front().lr, LR0);
  EXPECT_DOUBLE_EQ(rows.back().b1, 0.5);
  EXPECT_NEAR(rows.back().lr, 0.2 * LR0, 1e-18);
  // k=1000 = K_target: p is the normalised Gaussian, its mode at t = mu T = 15.
  const Row* mode = &rows[2 * T];
  for (int64_t t = 0; t < T; ++t) {
    if (rows[2 * T + t].p > mode->p) mode = &rows[2 * T + t];
  }
  EXPECT_EQ(mode->t, 15);
}

TEST(ScheduleCsv, RejectsWrongLengthDistribution) {
  ScheduleSource s;
  s.num_timesteps = 4;
  s.probabilities = [](int64_t) { return at::full({3}, 1.0 / 3, at::kDouble); };
  s.beta1 = s.lr = [](int64_t) { return 0.0; };
  std::ostringstream os;
  EXPECT_THROW(dmtrain::eval::write_schedule_csv(os, s, {0}), c10::Error);
}

TEST(ParseIterations, AcceptsListsAndNamesBadItems) {
  EXPECT_EQ(dmtrain::eval::parse_iterations("0,50000, 100000", "--at"),
            (std::vector<int64_t>{0, 50000, 100000}));
  EXPECT_EQ(dmtrain::eval::parse_iterations("7", "--at"), (std::vector<int64_t>{7}));
  for (const std::string bad : {"", "1,,2", "1,x", "-5", "3.5", "1e3"}) {
    try {
      dmtrain::eval::parse_iterations(bad, "--at");
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const dmtrain::Error& e) {
      EXPECT_NE(std::string(e.what()).find("--at"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
