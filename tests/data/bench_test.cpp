// Throughput: a quick in-memory check that always runs, and the real CIFAR-10 JPEG measurement
// when DMTRAIN_BENCH_CIFAR names the extracted cifar10-jpeg folder (prints decode time of all
// its JPEGs into a cache, cache load time, and loader images/s).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <iostream>

#include "dmtrain/data/bench.hpp"
#include "dmtrain/data/cache.hpp"
#include "dmtrain/data/dataset.hpp"
#include "test_util.hpp"

using namespace dmtrain::data;

TEST(Bench, InMemoryLoaderDeliversBatches) {
  auto set = std::make_shared<ImageSet>();
  set->images = at::randint(0, 256, {512, 32, 32, 3}, at::kByte);
  LoaderOptions o;
  o.batch_size = 64;
  Loader loader(set, o);
  const double rate = bench_loader(loader, 20, 2);
  EXPECT_GT(rate, 1000.0);  // a few thousand at least, even on a loaded 2-core CI machine
}

TEST(Bench, CifarJpegFolder) {
  const char* dir = std::getenv("DMTRAIN_BENCH_CIFAR");
  if (dir == nullptr) GTEST_SKIP() << "set DMTRAIN_BENCH_CIFAR=<cifar10-jpeg folder>";
  const auto tmp = dmtrain::data::testing::temp_dir();
  DatasetOptions o;
  o.path = dir;
  o.image_size = 32;
  o.labels = "folder";
  o.cache = (tmp / "cifar.dmt").string();
  using clock = std::chrono::steady_clock;
  auto t0 = clock::now();
  ImageSet built = open_dataset(o);
  const double decode_s = std::chrono::duration<double>(clock::now() - t0).count();
  t0 = clock::now();
  auto cached = std::make_shared<ImageSet>(open_dataset(o));
  const double load_s = std::chrono::duration<double>(clock::now() - t0).count();
  EXPECT_TRUE(cached->images.equal(built.images));
  LoaderOptions lo;
  lo.batch_size = 128;
  Loader loader(cached, lo);
  const double rate = bench_loader(loader, 200);
  std::cout << "cifar jpeg: " << built.size() << " images, decode+cache " << decode_s
            << " s, cache load " << load_s << " s, loader " << rate << " images/s (batch 128, "
            << lo.num_workers << " workers)\n";
  std::filesystem::remove_all(tmp);
}
