#include "dmtrain/data/bench.hpp"

#include <chrono>

namespace dmtrain::data {

double bench_loader(Loader& loader, int64_t batches, int64_t warmup) {
  for (int64_t i = 0; i < warmup; ++i) loader.next();
  int64_t images = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < batches; ++i) images += loader.next().images.size(0);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return s > 0 ? images / s : 0.0;
}

}  // namespace dmtrain::data
