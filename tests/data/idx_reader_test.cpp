// IDX reader: hand-written files (plain and gzipped) checked pixel for pixel, malformed files
// rejected with the file named, and Debian's Fashion-MNIST test split when installed.
#include <gtest/gtest.h>

#include "dmtrain/data/idx_reader.hpp"
#include "dmtrain/util/error.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using namespace dmtrain::data;
using namespace dmtrain::data::testing;

namespace {
// 3 images of 2x4, pixel (n, y, x) = 10*n + 4*y + x; labels 7, 0, 3.
std::string idx_images() {
  std::string s = be32(0x803) + be32(3) + be32(2) + be32(4);
  for (int n = 0; n < 3; ++n)
    for (int p = 0; p < 8; ++p) s.push_back(static_cast<char>(10 * n + p));
  return s;
}
std::string idx_labels() {
  return be32(0x801) + be32(3) + std::string("\x07\x00\x03", 3);
}
}  // namespace

TEST(IdxReader, ReadsPlainAndGzipExactly) {
  const fs::path dir = temp_dir();
  for (bool gz : {false, true}) {
    const std::string ext = gz ? ".gz" : "";
    write_bytes(dir / ("i" + ext), idx_images(), gz);
    write_bytes(dir / ("l" + ext), idx_labels(), gz);
    ImageSet s = read_idx((dir / ("i" + ext)).string(), (dir / ("l" + ext)).string());
    ASSERT_EQ(s.images.sizes(), (std::vector<int64_t>{3, 2, 4, 1}));
    for (int n = 0; n < 3; ++n)
      for (int y = 0; y < 2; ++y)
        for (int x = 0; x < 4; ++x) EXPECT_EQ(s.images[n][y][x][0].item<int>(), 10 * n + 4 * y + x);
    EXPECT_TRUE(s.labels.equal(at::tensor({7, 0, 3}, at::kLong)));
    EXPECT_EQ(s.class_names.size(), 8u);  // max label 7 -> 8 classes
  }
  fs::remove_all(dir);
}

TEST(IdxReader, ReplicatesGrayToThreeChannels) {
  const fs::path dir = temp_dir();
  write_bytes(dir / "i", idx_images());
  ImageSet s = read_idx((dir / "i").string(), "", 3);
  ASSERT_EQ(s.images.sizes(), (std::vector<int64_t>{3, 2, 4, 3}));
  EXPECT_FALSE(s.labels.defined());
  EXPECT_EQ(s.images[2][1][3][0].item<int>(), 27);
  EXPECT_EQ(s.images[2][1][3][2].item<int>(), 27);
  fs::remove_all(dir);
}

TEST(IdxReader, RejectsBadFilesNamingThem) {
  const fs::path dir = temp_dir();
  auto expect_error = [&](const std::string& images, const std::string& labels,
                          const std::string& named) {
    try {
      read_idx(images, labels);
      ADD_FAILURE() << "no error for " << named;
    } catch (const dmtrain::Error& e) {
      EXPECT_NE(std::string(e.what()).find(named), std::string::npos) << e.what();
    }
  };
  write_bytes(dir / "good_i", idx_images());
  write_bytes(dir / "good_l", idx_labels());
  write_bytes(dir / "short_i", idx_images().substr(0, 30));
  expect_error((dir / "short_i").string(), "", "short_i");
  write_bytes(dir / "magic_i", be32(0x801) + idx_images().substr(4));
  expect_error((dir / "magic_i").string(), "", "magic_i");
  write_bytes(dir / "count_l", be32(0x801) + be32(2) + std::string("\x01\x02", 2));
  expect_error((dir / "good_i").string(), (dir / "count_l").string(), "count_l");
  expect_error((dir / "absent").string(), "", "absent");
  EXPECT_NO_THROW(read_idx((dir / "good_i").string(), (dir / "good_l").string()));
  fs::remove_all(dir);
}

TEST(IdxReader, FashionMnistTestSplit) {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!fs::exists(dir)) GTEST_SKIP() << dir << " not installed (Debian dataset-fashion-mnist)";
  auto [images, labels] = find_idx_files(dir, "test");
  ImageSet s = read_idx(images, labels);
  ASSERT_EQ(s.images.sizes(), (std::vector<int64_t>{10000, 28, 28, 1}));
  // Fashion-MNIST's test split is balanced: 1,000 images of each of the 10 classes.
  EXPECT_TRUE(at::bincount(s.labels).equal(at::full({10}, 1000, at::kLong)));
}
