// Loader throughput measurement: how many training images per second the data pipeline can
// deliver (used to check that data loading is never the bottleneck of a training step).
#pragma once
#include <cstdint>

#include "dmtrain/data/loader.hpp"

namespace dmtrain::data {

// Takes `warmup` batches untimed, then `batches` timed; returns images per second.
double bench_loader(Loader& loader, int64_t batches, int64_t warmup = 5);

}  // namespace dmtrain::data
