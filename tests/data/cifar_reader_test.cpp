// CIFAR binary reader on hand-written batch files: pixel layout (CHW on disk -> HWC), labels,
// CIFAR-100 coarse/fine, class names, truncated files.
#include <gtest/gtest.h>

#include "dmtrain/data/cifar_reader.hpp"
#include "dmtrain/util/error.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using namespace dmtrain::data;
using namespace dmtrain::data::testing;

namespace {
// Record for image `seed`: pixel (c, y, x) = (seed + 3c + 5y + 7x) % 256.
std::string record(const std::string& label_bytes, int seed) {
  std::string s = label_bytes;
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 32; ++x)
        s.push_back(static_cast<char>((seed + 3 * c + 5 * y + 7 * x) % 256));
  return s;
}
}  // namespace

TEST(CifarReader, Cifar10LayoutAndLabels) {
  const fs::path dir = temp_dir();
  write_bytes(dir / "data_batch_1.bin", record("\x03", 0) + record("\x09", 100));
  for (int i = 2; i <= 5; ++i)
    write_bytes(dir / c10::str("data_batch_", i, ".bin"), record("\x01", i));
  std::ofstream(dir / "batches.meta.txt")
      << "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n";
  ImageSet s = read_cifar(dir.string(), "train");
  ASSERT_EQ(s.images.sizes(), (std::vector<int64_t>{6, 32, 32, 3}));
  EXPECT_TRUE(s.labels.equal(at::tensor({3, 9, 1, 1, 1, 1}, at::kLong)));
  ASSERT_EQ(s.class_names.size(), 10u);
  EXPECT_EQ(s.class_names[9], "truck");
  for (auto [n, seed] : {std::pair{0, 0}, {1, 100}, {5, 5}})
    for (int y : {0, 17, 31})
      for (int x : {0, 4, 31})
        for (int c = 0; c < 3; ++c)
          EXPECT_EQ(s.images[n][y][x][c].item<int>(), (seed + 3 * c + 5 * y + 7 * x) % 256);
  fs::remove_all(dir);
}

TEST(CifarReader, Cifar100FineAndCoarse) {
  const fs::path dir = temp_dir();
  write_bytes(dir / "train.bin",
              record(std::string("\x02\x41", 2), 1) + record(std::string("\x13\x05", 2), 2));
  EXPECT_TRUE(read_cifar(dir.string(), "train").labels.equal(at::tensor({0x41, 5}, at::kLong)));
  CifarOptions o;
  o.fine_labels = false;
  ImageSet coarse = read_cifar(dir.string(), "train", o);
  EXPECT_TRUE(coarse.labels.equal(at::tensor({2, 0x13}, at::kLong)));
  EXPECT_EQ(coarse.images[1][0][1][2].item<int>(), (2 + 6 + 7) % 256);
  fs::remove_all(dir);
}

TEST(CifarReader, TruncatedAndMissingFilesAreErrors) {
  const fs::path dir = temp_dir();
  write_bytes(dir / "test_batch.bin", record("\x01", 0) + record("\x02", 0).substr(0, 1000));
  try {
    read_cifar(dir.string(), "test");
    FAIL();
  } catch (const dmtrain::Error& e) {
    EXPECT_NE(std::string(e.what()).find("test_batch.bin"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos);
  }
  EXPECT_THROW(read_cifar(dir.string(), "train"), dmtrain::Error);  // no data_batch_1..5
  EXPECT_THROW(read_cifar((dir / "nothing").string(), "train"), dmtrain::Error);
  fs::remove_all(dir);
}
