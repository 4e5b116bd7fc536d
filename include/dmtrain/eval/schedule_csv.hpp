// The training schedules of a run as a table: for each chosen optimizer iteration k, the
// timestep distribution p_k(t) over every t, and the optimizer's beta1_k and lr_k (MDLRC).
//
// CSV format (long, one row per (k, t), k in the given order, t = 0..T-1):
//     iteration,t,p,beta1,lr
//     0,0,0.001,0.9,0.0001
//     ...
// p, beta1 and lr are printed with 17 significant digits (round-trip exact doubles); beta1 and lr
// repeat on every row of the same k so that each row stands alone (easy to plot or filter).
//
// The eval area does not link the timestep and optim libraries, so the table is written from a
// ScheduleSource of plain functions; schedule_source() adapts any sampler with
// `at::Tensor probabilities(int64_t) const` and `int64_t num_timesteps() const` plus any schedule
// with `double beta1(int64_t) const` and `double lr(int64_t) const` (TimestepSampler,
// MdlrcSchedule). The adapters hold references: the sampler and schedule must outlive the source.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

namespace dmtrain::eval {

struct ScheduleSource {
  int64_t num_timesteps = 0;                           // T
  std::function<at::Tensor(int64_t k)> probabilities;  // p_k, [T] (any float dtype, CPU)
  std::function<double(int64_t k)> beta1;
  std::function<double(int64_t k)> lr;
};

template <class Sampler, class Schedule>
ScheduleSource schedule_source(const Sampler& sampler, const Schedule& schedule) {
  ScheduleSource s;
  s.num_timesteps = sampler.num_timesteps();
  s.probabilities = [&sampler](int64_t k) { return sampler.probabilities(k); };
  s.beta1 = [&schedule](int64_t k) { return schedule.beta1(k); };
  s.lr = [&schedule](int64_t k) { return schedule.lr(k); };
  return s;
}

// Writes the header and T rows per iteration. TORCH_CHECKs that p_k has T entries.
void write_schedule_csv(std::ostream& os, const ScheduleSource& source,
                        const std::vector<int64_t>& iterations);

template <class Sampler, class Schedule>
void write_schedule_csv(std::ostream& os, const Sampler& sampler, const Schedule& schedule,
                        const std::vector<int64_t>& iterations) {
  write_schedule_csv(os, schedule_source(sampler, schedule), iterations);
}

// Parses "0,50000,100000" (non-negative integers, at least one). Throws dmtrain::Error naming
// `what` (e.g. "--at") and the bad item.
std::vector<int64_t> parse_iterations(const std::string& list, const std::string& what);

}  // namespace dmtrain::eval
