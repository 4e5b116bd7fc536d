#include "dmtrain/eval/schedule_csv.hpp"

#include <c10/util/Exception.h>

#include <iomanip>
#include <sstream>

#include "dmtrain/util/error.hpp"

namespace dmtrain::eval {

void write_schedule_csv(std::ostream& os, const ScheduleSource& source,
                        const std::vector<int64_t>& iterations) {
  TORCH_CHECK(source.probabilities && source.beta1 && source.lr,
              "write_schedule_csv: incomplete ScheduleSource");
  const int64_t T = source.num_timesteps;
  const auto old_precision = os.precision(17);
  os << "iteration,t,p,beta1,lr\n";
  for (const int64_t k : iterations) {
    const at::Tensor p = source.probabilities(k).to(at::kCPU, at::kDouble).contiguous();
    TORCH_CHECK(p.dim() == 1 && p.size(0) == T, "write_schedule_csv: p_", k, " has shape ",
                p.sizes(), ", expected [", T, "]");
    const double b1 = source.beta1(k), lr = source.lr(k);
    const double* pd = p.data_ptr<double>();
    for (int64_t t = 0; t < T; ++t) {
      os << k << ',' << t << ',' << pd[t] << ',' << b1 << ',' << lr << '\n';
    }
  }
  os.precision(old_precision);
}

std::vector<int64_t> parse_iterations(const std::string& list, const std::string& what) {
  std::vector<int64_t> out;
  std::stringstream ss(list);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const auto b = item.find_first_not_of(" \t");
    const auto e = item.find_last_not_of(" \t");
    const std::string s = b == std::string::npos ? "" : item.substr(b, e - b + 1);
    size_t used = 0;
    int64_t v = -1;
    try {
      v = std::stoll(s, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (s.empty() || used != s.size() || v < 0) {
      throw Error(what + ": '" + s + "' in '" + list +
                  "' is not a non-negative integer (expected e.g. 0,50000,100000)");
    }
    out.push_back(v);
  }
  if (out.empty()) throw Error(what + ": no iterations given (expected e.g. 0,50000,100000)");
  return out;
}

}  // namespace dmtrain::eval
