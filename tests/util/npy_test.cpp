// .npy/.npz: our writer's output read back, and real np.savez / np.savez_compressed archives
// (tests/fixtures/util, made by make_fixtures.py there) read by our reader with the values written
// in that script; damaged members are errors naming the file and the member.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>

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

namespace {
// The values make_fixtures.py wrote, stated independently of the archive.
void expect_fixture_arrays(const std::map<std::string, at::Tensor>& by_name) {
  const at::Tensor want0 =
      at::arange(2 * 3 * 4 * 3, at::kLong).mul(7).remainder(256).to(at::kByte).view({2, 3, 4, 3});
  EXPECT_TRUE(by_name.at("arr_0").equal(want0));
  EXPECT_TRUE(by_name.at("arr_1").equal(at::tensor({int64_t{5}, int64_t{-1}, int64_t{1} << 40})));
  EXPECT_TRUE(by_name.at("f").equal(at::tensor({0.5f, -2.25f})));
}
}  // namespace

TEST(Npz, ReadsNumpySavezFixture) {
  auto arrays = read_npz(DMTRAIN_FIXTURES_DIR "/util/numpy_savez.npz");
  std::map<std::string, at::Tensor> by_name(arrays.begin(), arrays.end());
  ASSERT_EQ(by_name.size(), 3u);
  expect_fixture_arrays(by_name);
}

TEST(Npz, ReadsNumpySavezCompressedFixture) {
  auto arrays = read_npz(DMTRAIN_FIXTURES_DIR "/util/numpy_savez_compressed.npz");
  std::map<std::string, at::Tensor> by_name(arrays.begin(), arrays.end());
  ASSERT_EQ(by_name.size(), 4u);
  expect_fixture_arrays(by_name);
  // sigma[i, j] = (i - 2 j) / 8 + 0.125 * (i % 3), float64 [64, 33]: exact in binary.
  const at::Tensor i = at::arange(64, at::kDouble).view({64, 1});
  const at::Tensor j = at::arange(33, at::kDouble).view({1, 33});
  const at::Tensor want = (i - 2 * j) / 8.0 + 0.125 * at::remainder(i, 3);
  const at::Tensor& sigma = by_name.at("sigma");
  EXPECT_EQ(sigma.scalar_type(), at::kDouble);
  EXPECT_TRUE(sigma.equal(want));
}

namespace {
std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

std::string error_of(const std::string& path) {
  try {
    read_npz(path);
  } catch (const dmtrain::Error& e) {
    return e.what();
  }
  return "(no error)";
}
}  // namespace

TEST(Npz, CorruptCompressedMemberIsANamedError) {
  const fs::path dir = temp_dir();
  std::string zip = read_bytes(DMTRAIN_FIXTURES_DIR "/util/numpy_savez_compressed.npz");
  // sigma.npy's local header: its name, then the extra field, then ~550 bytes of deflate data.
  const size_t name = zip.find("sigma.npy");
  ASSERT_NE(name, std::string::npos);
  const size_t extra =
      static_cast<uint8_t>(zip[name - 2]) | (static_cast<uint8_t>(zip[name - 1]) << 8);
  const size_t data = name + 9 + extra;
  for (size_t offset : {size_t{0}, size_t{100}, size_t{300}}) {
    std::string bad = zip;
    bad[data + offset] = static_cast<char>(bad[data + offset] ^ 0x5a);
    const std::string p = (dir / ("c" + std::to_string(offset) + ".npz")).string();
    write_bytes(p, bad);
    const std::string msg = error_of(p);
    EXPECT_NE(msg.find(p), std::string::npos) << msg;
    EXPECT_NE(msg.find("member 'sigma.npy'"), std::string::npos) << msg;
  }
  // Cut in the middle: the central directory is gone, the file is named.
  const std::string cut = (dir / "cut.npz").string();
  write_bytes(cut, zip.substr(0, data + 200));
  const std::string msg = error_of(cut);
  EXPECT_NE(msg.find(cut), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
  fs::remove_all(dir);
}

// A full disk at the last bytes (they reach the disk at close): a clear error and no file, where
// the unchecked close renamed a short (here: empty) archive into place as if it were whole.
TEST(Npz, AFullDiskIsAnErrorAndLeavesNoFile) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  const fs::path dir = dmtrain::test_support::scratch_dir("npz_full");
  const std::string path = (dir / "stats.npz").string();
  fs::create_symlink("/dev/full", path + ".tmp");
  try {
    dmtrain::util::write_npz(path, {{"mu", at::zeros({4}, at::kDouble)}});
    ADD_FAILURE() << "no error";
  } catch (const dmtrain::Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot write '" + path + "': No space left on device"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(fs::symlink_status(path)));
  EXPECT_FALSE(fs::exists(fs::symlink_status(path + ".tmp")));
  fs::remove_all(dir);
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
  const std::string msg = error_of(p);
  EXPECT_NE(msg.find("member 'arr_0.npy' fails its CRC-32 check"), std::string::npos) << msg;
  std::ofstream(p, std::ios::trunc) << "garbage";
  EXPECT_THROW(read_npz(p), dmtrain::Error);
  fs::remove_all(dir);
}
