// Loader: batch contents follow the documented stream exactly (values, labels, flips), worker
// timing does not change the output, and a restored loader continues with the same next batch.
#include <gtest/gtest.h>

#include <set>

#include "dmtrain/data/loader.hpp"
#include "dmtrain/data/shuffle.hpp"
#include "dmtrain/util/error.hpp"

using namespace dmtrain::data;

namespace {
// n images of 2x3x1 whose pixel (y, x) = (index*6 + 3y + x) % 256 and label index % 5, so every
// image is identifiable and its flip visible.
std::shared_ptr<const ImageSet> numbered_set(int64_t n, int64_t c = 1) {
  auto s = std::make_shared<ImageSet>();
  s->images = at::arange(n * 6, at::kLong).remainder(256).to(at::kByte).view({n, 2, 3, 1});
  s->images = to_channels(s->images, c);
  s->labels = at::arange(n, at::kLong).remainder(5);
  s->class_names = {"a", "b", "c", "d", "e"};
  return s;
}

std::vector<Batch> take(Loader& l, int k) {
  std::vector<Batch> out;
  for (int i = 0; i < k; ++i) out.push_back(l.next());
  return out;
}
}  // namespace

TEST(Loader, BatchesFollowTheDocumentedStream) {
  const int64_t n = 10;
  auto set = numbered_set(n, 3);
  LoaderOptions o;
  o.batch_size = 4;  // 10 samples per epoch: batch 2 spans epochs 0 and 1
  o.seed = 5;
  o.num_workers = 0;
  Loader loader(set, o);
  std::vector<std::pair<int64_t, int64_t>> stream;  // (epoch, index)
  for (int64_t e = 0; e < 2; ++e)
    for (int64_t i : epoch_shard(n, 5, e, 0, 1)) stream.emplace_back(e, i);
  int64_t k = 0;
  for (int b = 0; b < 4; ++b) {
    Batch batch = loader.next();
    ASSERT_EQ(batch.images.sizes(), (std::vector<int64_t>{4, 3, 2, 3}));
    ASSERT_EQ(batch.images.scalar_type(), at::kFloat);
    for (int64_t j = 0; j < 4; ++j, ++k) {
      const auto [e, idx] = stream[k];
      at::Tensor want = set->images[idx].permute({2, 0, 1}).to(at::kFloat) / 127.5 - 1;
      if (flip_decision(5, e, idx)) want = want.flip({2});
      EXPECT_TRUE(batch.images[j].equal(want)) << "batch " << b << " item " << j;
      EXPECT_EQ(batch.labels[j].item<int64_t>(), idx % 5);
    }
  }
  EXPECT_EQ(loader.position(), (LoaderPosition{1, 6}));
  // Range: 0 -> -1, 255 -> 1.
  auto all = numbered_set(256);
  o.batch_size = 256;
  o.random_flip = false;
  Batch full = Loader(all, o).next();
  EXPECT_EQ(full.images.min().item<float>(), -1.f);
  EXPECT_EQ(full.images.max().item<float>(), 1.f);
}

TEST(Loader, WorkerThreadsGiveTheSameOrderAsInline) {
  auto set = numbered_set(37);
  LoaderOptions o;
  o.batch_size = 5;
  o.seed = 11;
  o.num_workers = 0;
  Loader inline_loader(set, o);
  std::vector<Batch> want = take(inline_loader, 20);
  for (int workers : {1, 3}) {
    o.num_workers = workers;
    o.prefetch = 2;
    Loader threaded(set, o);
    std::vector<Batch> got = take(threaded, 20);
    for (int b = 0; b < 20; ++b) {
      EXPECT_TRUE(got[b].images.equal(want[b].images)) << workers << " workers, batch " << b;
      EXPECT_TRUE(got[b].labels.equal(want[b].labels));
    }
    EXPECT_EQ(threaded.position(), inline_loader.position());
  }
}

TEST(Loader, RestoreContinuesWithTheSameNextBatch) {
  auto set = numbered_set(23);
  LoaderOptions o;
  o.batch_size = 4;
  o.seed = 3;
  o.num_workers = 2;
  Loader a(set, o);
  std::vector<Batch> ref = take(a, 12);
  Loader b(set, o);
  take(b, 7);  // mid-epoch: 28 samples = epoch 1, offset 5
  const LoaderPosition pos = b.position();
  EXPECT_EQ(pos, (LoaderPosition{1, 5}));
  Loader c(set, o);
  c.restore(pos);
  for (int k = 7; k < 12; ++k) EXPECT_TRUE(c.next().images.equal(ref[k].images)) << k;
  b.restore(pos);  // restoring a running loader discards its prefetched batches
  EXPECT_TRUE(b.next().images.equal(ref[7].images));
  EXPECT_THROW(c.restore({0, 23}), dmtrain::Error);
  EXPECT_THROW(c.restore({-1, 0}), dmtrain::Error);
}

TEST(Loader, RanksSeeDisjointEqualShards) {
  auto set = numbered_set(50);
  set = std::make_shared<ImageSet>(ImageSet{set->images, at::arange(50, at::kLong), {}});
  LoaderOptions o;
  o.batch_size = 4;  // 16 per rank per epoch (50 / 3), 4 batches
  o.seed = 8;
  o.world_size = 3;
  std::set<int64_t> seen;
  for (int64_t r = 0; r < 3; ++r) {
    o.rank = r;
    Loader l(set, o);
    EXPECT_EQ(l.shard_size(), 16);
    for (const Batch& b : take(l, 4)) {
      for (int64_t j = 0; j < 4; ++j) EXPECT_TRUE(seen.insert(b.labels[j].item<int64_t>()).second);
    }
    EXPECT_EQ(l.position(), (LoaderPosition{1, 0}));
  }
  EXPECT_EQ(seen.size(), 48u);
}

TEST(Loader, FlipsAboutHalfAndNoneWhenDisabled) {
  auto set = numbered_set(400);
  LoaderOptions o;
  o.batch_size = 400;
  o.num_workers = 0;
  Batch b = Loader(set, o).next();
  // Column 0 of an unflipped image holds 3y + 6i (mod 256), of a flipped one 3y + 6i + 2.
  at::Tensor col0 = ((b.images.select(3, 0).select(2, 0).select(1, 0) + 1) * 127.5).round();
  at::Tensor col2 = ((b.images.select(3, 2).select(2, 0).select(1, 0) + 1) * 127.5).round();
  const int64_t flipped = (col0 > col2).sum().item<int64_t>();  // ignores mod-256 wraps (few)
  EXPECT_NEAR(flipped, 200, 45);
  o.random_flip = false;
  Batch u = Loader(set, o).next();
  at::Tensor u0 = u.images.select(3, 0), u2 = u.images.select(3, 2);
  EXPECT_EQ((u0 > u2).sum().item<int64_t>(),
            ((u0 > u2) & (u2 < -0.9)).sum().item<int64_t>());  // only wraps, no flips
}

TEST(Loader, ClearErrors) {
  auto set = numbered_set(3);
  LoaderOptions o;
  o.world_size = 4;
  EXPECT_THROW(Loader(set, o), dmtrain::Error);  // 3 images, 4 ranks
  o.world_size = 1;
  o.batch_size = 0;
  EXPECT_THROW(Loader(set, o), dmtrain::Error);
  o.batch_size = 2;
  o.rank = 1;
  EXPECT_THROW(Loader(set, o), dmtrain::Error);
}

// A batch larger than the machine's memory is refused by name when the loader is made, before a
// worker thread starts filling it (with overcommitted memory such a worker ran for minutes, and
// the run's exit waited for it).
TEST(Loader, ABatchLargerThanTheMachinesMemoryIsRefusedAtOnce) {
  const auto set = numbered_set(3);
  const double ram = physical_memory_bytes();
  ASSERT_GT(ram, 0);
  const double per_image = 6 * sizeof(float);  // 2x3x1 as float32
  LoaderOptions o;
  o.batch_size = static_cast<int64_t>(ram / per_image) + 1;
  try {
    Loader l(set, o);
    ADD_FAILURE() << "a batch of " << o.batch_size << " accepted";
  } catch (const dmtrain::Error& e) {
    EXPECT_NE(std::string(e.what()).find("out of memory: one batch of " +
                                         std::to_string(o.batch_size) + " images"),
              std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("train.batch_size"), std::string::npos) << e.what();
  }
  o.batch_size = static_cast<int64_t>(ram / per_image / 4);  // fits: made, nothing allocated yet
  o.num_workers = 0;
  EXPECT_NO_THROW(Loader(set, o));
}
