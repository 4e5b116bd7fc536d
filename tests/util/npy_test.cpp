// .npy/.npz: our writer's output read back, and a real np.savez archive (tests/fixtures/util,
// made by make_fixtures.py there) read by our reader with the values written in that script.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "dmtrain/util/error.hpp"
#include "dmtrain/util/npy.hpp"
#include "support/scratch_dir.hpp"

namespace fs = std::filesystem;
using namespace dmtrain::util;

namespace {
fs::path temp_dir() {
  return dmtrain::test_support::scratch_dir(
      std::string("npy_") + ::testing::UnitTest::GetInstance()->current_test_info()->name());
}
}  // namespace

TEST(Npy, HeaderIsNumpyV1AndAligned) {
  const std::string b = npy_bytes(at::zeros({2, 3}, at::kFloat));
  ASSERT_EQ(b.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  const size_t hlen = static_cast<uint8_t>(b[8]) | (static_cast<uint8_t>(b[9]) << 8);
  EXPECT_EQ((10 + hlen) % 64, 0u);
  const std::string h = b.substr(10, hlen);
  EXPECT_NE(h.find("'descr': '<f4'"), std::string::npos) << h;
  EXPECT_NE(h.find("'shape': (2, 3"), std::string::npos) << h;
  EXPECT_EQ(h.back(), '\n');
  EXPECT_EQ(b.size(), 10 + hlen + 2 * 3 * 4);
}

TEST(Npy, RoundTripAllDtypes) {
  const fs::path dir = temp_dir();
  for (auto t : {at::kByte, at::kInt, at::kLong, at::kFloat, at::kDouble}) {
    at::Tensor a = at::randint(0, 200, {3, 1, 4}, at::kLong).to(t);
    write_npy((dir / "a.npy").string(), a);
    at::Tensor b = read_npy((dir / "a.npy").string());
    EXPECT_EQ(b.scalar_type(), t);
    EXPECT_TRUE(b.equal(a)) << t;
  }
  at::Tensor v = at::arange(5, at::kLong);  // 1-D shape "(5, )"
  write_npy((dir / "v.npy").string(), v);
  EXPECT_TRUE(read_npy((dir / "v.npy").string()).equal(v));
  fs::remove_all(dir);
}

TEST(Npz, SamplesRoundTrip) {
  const fs::path dir = temp_dir();
  at::Tensor imgs = at::randint(0, 256, {4, 5, 6, 3}, at::kByte);
  at::Tensor labels = at::tensor({3, 0, 9, 1}, at::kLong);
  write_samples_npz((dir / "s.npz").string(), imgs, labels);
  auto arrays = read_npz((dir / "s.npz").string());
  ASSERT_EQ(arrays.size(), 2u);
  EXPECT_EQ(arrays[0].first, "arr_0");
  EXPECT_TRUE(arrays[0].second.equal(imgs));
  EXPECT_EQ(arrays[1].first, "arr_1");
  EXPECT_TRUE(arrays[1].second.equal(labels));
  fs::remove_all(dir);
}

TEST(Npz, ReadsNumpySavezFixture) {
  auto arrays = read_npz(DMTRAIN_FIXTURES_DIR "/util/numpy_savez.npz");
  std::map<std::string, at::Tensor> by_name(arrays.begin(), arrays.end());
  ASSERT_EQ(by_name.size(), 3u);
  at::Tensor want0 =
      at::arange(2 * 3 * 4 * 3, at::kLong).mul(7).remainder(256).to(at::kByte).view({2, 3, 4, 3});
  EXPECT_TRUE(by_name.at("arr_0").equal(want0));
  EXPECT_TRUE(by_name.at("arr_1").equal(at::tensor({int64_t{5}, int64_t{-1}, int64_t{1} << 40})));
  EXPECT_TRUE(by_name.at("f").equal(at::tensor({0.5f, -2.25f})));
}

TEST(Npz, CorruptionIsDetected) {
  const fs::path dir = temp_dir();
  const std::string p = (dir / "c.npz").string();
  write_samples_npz(p, at::zeros({1, 2, 2, 3}, at::kByte));
  {
    std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(39 + 128 + 3);  // arr_0 data: 30+9 byte ZIP header, then a 128-byte .npy header
    f.put('\x7f');
  }
  EXPECT_THROW(read_npz(p), dmtrain::Error);
  std::ofstream(p, std::ios::trunc) << "garbage";
  EXPECT_THROW(read_npz(p), dmtrain::Error);
  fs::remove_all(dir);
}
