#include "dmtrain/dist/shard.hpp"

#include <sstream>

#include "dmtrain/util/error.hpp"

namespace dmtrain::dist {

int64_t shard_batch(int64_t global_batch, const Context& ctx) {
  TORCH_CHECK(ctx.world_size >= 1, "shard_batch: world_size ", ctx.world_size);
  if (global_batch < 1 || global_batch % ctx.world_size != 0) {
    std::ostringstream os;
    os << "train.batch_size=" << global_batch << " is the global batch over all ranks and must be "
       << "a positive multiple of the world size " << ctx.world_size << " (" << ctx.source
       << "); e.g. " << ctx.world_size * std::max<int64_t>(1, global_batch / ctx.world_size)
       << " gives " << std::max<int64_t>(1, global_batch / ctx.world_size) << " per rank";
    throw Error(os.str());
  }
  return global_batch / ctx.world_size;
}

}  // namespace dmtrain::dist
