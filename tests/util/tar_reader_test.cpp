// Tar reading on archives written by Python's tarfile (tests/fixtures/data/
// make_cifar_fixtures.py): GNU and pax long names, ustar prefix, directories skipped, plain .tar
// as well as .tar.gz, and damaged archives named in the error.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "dmtrain/util/error.hpp"
#include "dmtrain/util/tar_reader.hpp"
#include "support/error_of.hpp"
#include "support/scratch_dir.hpp"

namespace fs = std::filesystem;
using dmtrain::test_support::error_of;
using dmtrain::util::is_tar_archive;
using dmtrain::util::read_tar;

namespace {
const std::string kData = DMTRAIN_FIXTURES_DIR "/data/";
const std::string kLongDir = std::string(60, 'd') + "/" + std::string(60, 'e') + "/";

std::string slurp(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
fs::path temp_dir() {
  return dmtrain::test_support::scratch_dir(
      std::string("tar_") + ::testing::UnitTest::GetInstance()->current_test_info()->name());
}
}  // namespace

TEST(TarReader, LongNamesGnuAndPax) {
  std::vector<std::string> seen;
  auto all = [&](const std::string& n) {
    seen.push_back(n);
    return true;
  };
  auto gnu = read_tar(kData + "long_names_gnu.tar.gz", all);
  ASSERT_EQ(gnu.size(), 1u);  // the directory entry is not returned
  EXPECT_EQ(gnu[0].name, kLongDir + "gnu_" + std::string(100, 'x') + ".txt");
  EXPECT_EQ(gnu[0].data, "gnu long name\n");
  auto pax = read_tar(kData + "long_names_pax.tar.gz", all);
  ASSERT_EQ(pax.size(), 1u);
  EXPECT_EQ(pax[0].name, kLongDir + "pax_" + std::string(100, 'y') + ".txt");
  EXPECT_EQ(pax[0].data, "pax long name\n");
  // Only regular files are offered to `want`.
  EXPECT_EQ(seen.size(), 2u);
}

TEST(TarReader, WantSelectsAndPlainTarReads) {
  const fs::path dir = temp_dir();
  const std::string tar = (dir / "x.tar").string();
  const std::string cmd = "gzip -dc '" + kData + "cifar-10-binary.tar.gz' > '" + tar + "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  EXPECT_TRUE(is_tar_archive(tar));
  EXPECT_TRUE(is_tar_archive(kData + "cifar-10-binary.tar.gz"));
  EXPECT_FALSE(is_tar_archive(kData + "cifar_truth.npz"));
  EXPECT_FALSE(is_tar_archive((dir / "absent.tar").string()));
  for (const std::string& path : {tar, kData + "cifar-10-binary.tar.gz"}) {
    auto m =
        read_tar(path, [](const std::string& n) { return n.find("meta") != std::string::npos; });
    ASSERT_EQ(m.size(), 1u) << path;
    EXPECT_EQ(m[0].name, "cifar-10-batches-bin/batches.meta.txt");
    EXPECT_EQ(m[0].data.substr(0, 18), "airplane\nautomobil");
  }
  fs::remove_all(dir);
}

TEST(TarReader, DamagedArchivesAreNamed) {
  const fs::path dir = temp_dir();
  const std::string whole = slurp(kData + "cifar-100-binary.tar.gz");
  // A flipped byte inside the compressed data: inflate or the gzip CRC fails.
  std::string flipped = whole;
  flipped[whole.size() / 2] = static_cast<char>(flipped[whole.size() / 2] ^ 0x55);
  const std::string bad = (dir / "flipped.tar.gz").string();
  std::ofstream(bad, std::ios::binary) << flipped;
  const std::string e = error_of([&] { read_tar(bad, [](const std::string&) { return true; }); });
  EXPECT_NE(e.find(bad), std::string::npos) << e;
  EXPECT_NE(e.find("corrupt"), std::string::npos) << e;
  // Not a tar at all: the header checksum fails.
  const std::string txt = (dir / "notes.tar").string();
  std::ofstream(txt) << std::string(2000, 'z');
  const std::string e2 = error_of([&] { read_tar(txt, [](const std::string&) { return true; }); });
  EXPECT_NE(e2.find(txt), std::string::npos) << e2;
  EXPECT_NE(e2.find("not a tar header"), std::string::npos) << e2;
  fs::remove_all(dir);
}
