// dmtrain::dist::shard_batch: splits the configured global batch (train.batch_size, the number of
// images per optimizer step summed over all ranks) into the per-rank batch. The global batch is
// the hyperparameter the recipes are tuned for, so it must stay the same whatever the number of
// GPUs; an uneven split would change it (or give ranks different work), hence an error.
#pragma once
#include <cstdint>

#include "dmtrain/dist/context.hpp"

namespace dmtrain::dist {

// global_batch / ctx.world_size. Throws dmtrain::Error (naming train.batch_size and the world
// size) when global_batch < 1 or not divisible by the world size.
int64_t shard_batch(int64_t global_batch, const Context& ctx);

}  // namespace dmtrain::dist
