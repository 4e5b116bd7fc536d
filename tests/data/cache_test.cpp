// Packed cache: exact round trip, corruption/staleness detection, and open_dataset's
// build-once-then-reuse behaviour.
#include <gtest/gtest.h>

#include "dmtrain/data/cache.hpp"
#include "dmtrain/data/dataset.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/image_io.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using namespace dmtrain::data;
using namespace dmtrain::data::testing;

namespace {
ImageSet sample_set() {
  ImageSet s;
  s.images = at::randint(0, 256, {5, 3, 7, 3}, at::kByte);  // 315 bytes per image: needs padding
  s.labels = at::tensor({0, 2, 1, 1, 0}, at::kLong);
  s.class_names = {"a", "", "gamma ray"};
  return s;
}
void expect_error_naming(const std::string& path, const std::string& word) {
  try {
    load_cache(path);
    ADD_FAILURE() << "no error for " << word;
  } catch (const dmtrain::Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(word), std::string::npos) << e.what();
  }
}
}  // namespace

TEST(Cache, RoundTripIsExact) {
  const fs::path dir = temp_dir();
  const ImageSet s = sample_set();
  prepare_cache(s, (dir / "c.bin").string());
  EXPECT_TRUE(is_cache_file((dir / "c.bin").string()));
  ImageSet back = load_cache((dir / "c.bin").string());
  EXPECT_TRUE(back.images.equal(s.images));
  EXPECT_TRUE(back.labels.equal(s.labels));
  EXPECT_EQ(back.class_names, s.class_names);
  ImageSet unlabeled{s.images, {}, {}};
  prepare_cache(unlabeled, (dir / "u.bin").string());
  EXPECT_FALSE(load_cache((dir / "u.bin").string()).has_labels());
  fs::remove_all(dir);
}

TEST(Cache, MissingParentFolderIsCreated) {
  // Configs name caches like data/cifar10_train.dmdata before data/ exists.
  const fs::path dir = temp_dir();
  const std::string path = (dir / "not" / "yet" / "c.dmdata").string();
  const ImageSet set = sample_set();
  prepare_cache(set, path);
  EXPECT_TRUE(load_cache(path).images.equal(set.images));
  fs::remove_all(dir);
}

TEST(Cache, CorruptionIsDetected) {
  const fs::path dir = temp_dir();
  const std::string p = (dir / "c.bin").string();
  prepare_cache(sample_set(), p);
  const auto size = fs::file_size(p);
  {
    std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(100);
    const char c = static_cast<char>(f.get());
    f.seekp(100);
    f.put(static_cast<char>(c ^ 1));
  }
  expect_error_naming(p, "checksum");
  prepare_cache(sample_set(), p);
  fs::resize_file(p, size - 3);
  expect_error_naming(p, "truncated");
  std::ofstream(p, std::ios::binary | std::ios::trunc) << std::string(80, 'x');
  expect_error_naming(p, "magic");
  expect_error_naming((dir / "absent").string(), "absent");
  fs::remove_all(dir);
}

TEST(Cache, OpenDatasetBuildsThenReusesAndRejectsStale) {
  const fs::path dir = temp_dir();
  fs::create_directories(dir / "img" / "k1");
  fs::create_directories(dir / "img" / "k2");
  at::Tensor a = at::randint(0, 256, {6, 6, 3}, at::kByte);
  dmtrain::util::write_png((dir / "img" / "k1" / "a.png").string(), a);
  dmtrain::util::write_png((dir / "img" / "k2" / "b.png").string(), a.flip({0}));
  DatasetOptions o;
  o.path = (dir / "img").string();
  o.image_size = 6;
  o.cache = (dir / "cache.dmt").string();
  ImageSet first = open_dataset(o);
  ASSERT_TRUE(fs::exists(o.cache));
  EXPECT_TRUE(first.images[0].equal(a));
  EXPECT_TRUE(first.labels.equal(at::tensor({0, 1}, at::kLong)));
  fs::remove_all(dir / "img");  // the second open must come from the cache alone
  ImageSet second = open_dataset(o);
  EXPECT_TRUE(second.images.equal(first.images));
  EXPECT_EQ(second.class_names, (std::vector<std::string>{"k1", "k2"}));
  o.image_size = 8;
  EXPECT_THROW(open_dataset(o), dmtrain::Error);  // stale: built for 6x6
  o.format = "cache";
  o.path = o.cache;
  o.cache = "";
  o.image_size = 6;
  EXPECT_EQ(open_dataset(o).size(), 2);
  o.format = "auto";
  EXPECT_EQ(open_dataset(o).size(), 2);
  fs::remove_all(dir);
}

TEST(Dataset, IdxAutoDetectAndResize) {
  const fs::path dir = temp_dir();
  std::string img = be32(0x803) + be32(2) + be32(4) + be32(4);
  for (int i = 0; i < 32; ++i) img.push_back(static_cast<char>(i < 16 ? 40 : 200));
  write_bytes(dir / "train-images-idx3-ubyte.gz", img, true);
  write_bytes(dir / "train-labels-idx1-ubyte.gz",
              be32(0x801) + be32(2) + std::string("\x04\x01", 2), true);
  DatasetOptions o;
  o.path = dir.string();
  o.channels = 3;
  o.image_size = 8;  // 4x4 -> 8x8 bicubic: a flat image stays flat
  ImageSet s = open_dataset(o);
  ASSERT_EQ(s.images.sizes(), (std::vector<int64_t>{2, 8, 8, 3}));
  EXPECT_TRUE(s.images[0].eq(40).all().item<bool>());
  EXPECT_TRUE(s.images[1].eq(200).all().item<bool>());
  EXPECT_TRUE(s.labels.equal(at::tensor({4, 1}, at::kLong)));
  o.labels = "none";
  EXPECT_FALSE(open_dataset(o).has_labels());
  o.format = "bogus";
  EXPECT_THROW(open_dataset(o), dmtrain::Error);
  fs::remove_all(dir);
}
