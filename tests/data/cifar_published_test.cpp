// CIFAR-10 / CIFAR-100 in their four published layouts (python and binary, tarball and the
// folder it unpacks to), checked pixel for pixel against numpy's reading of what was written
// (tests/fixtures/data/make_cifar_fixtures.py: cifar_truth.npz), and the errors that name the file.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>

#include "dmtrain/data/cifar_reader.hpp"
#include "dmtrain/data/dataset.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/npy.hpp"
#include "support/error_of.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using namespace dmtrain::data;
using namespace dmtrain::data::testing;
using dmtrain::test_support::error_of;

namespace {

const std::string kFixtures = DMTRAIN_FIXTURES_DIR "/data/";

at::Tensor truth(const std::string& key) {
  static const auto arrays = [] {
    std::map<std::string, at::Tensor> m;
    for (auto& [k, v] : dmtrain::util::read_npz(kFixtures + "cifar_truth.npz")) m[k] = v;
    return m;
  }();
  return arrays.at(key);
}

// Unpacks a fixture tarball with the system's tar (an implementation independent of ours).
fs::path unpack(const std::string& tarball) {
  const fs::path dir = temp_dir() / ("unpacked_" + tarball);
  fs::create_directories(dir);
  const std::string cmd = "tar -xzf '" + kFixtures + tarball + "' -C '" + dir.string() + "'";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  return dir;
}

void expect_cifar10(const std::string& path) {
  SCOPED_TRACE(path);
  for (const std::string& split : std::vector<std::string>{"train", "test"}) {
    const ImageSet s = read_cifar(path, split);
    const at::Tensor images = truth("cifar10_" + split + "_images");
    ASSERT_EQ(s.images.sizes(), images.sizes()) << split;
    EXPECT_TRUE(s.images.equal(images)) << split;
    EXPECT_TRUE(s.labels.equal(truth("cifar10_" + split + "_labels"))) << split;
    ASSERT_EQ(s.class_names.size(), 10u);
    EXPECT_EQ(s.class_names.front(), "airplane");
    EXPECT_EQ(s.class_names.back(), "truck");
  }
}

void expect_cifar100(const std::string& path) {
  SCOPED_TRACE(path);
  for (const std::string& split : std::vector<std::string>{"train", "test"}) {
    const ImageSet fine = read_cifar(path, split);  // fine labels by default
    EXPECT_TRUE(fine.images.equal(truth("cifar100_" + split + "_images"))) << split;
    EXPECT_TRUE(fine.labels.equal(truth("cifar100_" + split + "_fine"))) << split;
    ASSERT_EQ(fine.class_names.size(), 100u);
    EXPECT_EQ(fine.class_names[99], "fine_99");
    CifarOptions o;
    o.fine_labels = false;
    const ImageSet coarse = read_cifar(path, split, o);
    EXPECT_TRUE(coarse.labels.equal(truth("cifar100_" + split + "_coarse"))) << split;
    ASSERT_EQ(coarse.class_names.size(), 20u);
    EXPECT_EQ(coarse.class_names[19], "coarse_19");
  }
}

}  // namespace

TEST(CifarPublished, Cifar10PythonTarballAndFolder) {
  expect_cifar10(kFixtures + "cifar-10-python.tar.gz");
  const fs::path dir = unpack("cifar-10-python.tar.gz");
  expect_cifar10((dir / "cifar-10-batches-py").string());
  expect_cifar10(dir.string());  // the folder the tarball was unpacked into
}

TEST(CifarPublished, Cifar10BinaryTarballAndFolder) {
  expect_cifar10(kFixtures + "cifar-10-binary.tar.gz");
  const fs::path dir = unpack("cifar-10-binary.tar.gz");
  expect_cifar10((dir / "cifar-10-batches-bin").string());
  expect_cifar10(dir.string());
}

TEST(CifarPublished, Cifar100PythonTarballAndFolder) {
  expect_cifar100(kFixtures + "cifar-100-python.tar.gz");
  const fs::path dir = unpack("cifar-100-python.tar.gz");
  expect_cifar100((dir / "cifar-100-python").string());
}

TEST(CifarPublished, Cifar100BinaryTarballAndFolder) {
  expect_cifar100(kFixtures + "cifar-100-binary.tar.gz");
  const fs::path dir = unpack("cifar-100-binary.tar.gz");
  expect_cifar100((dir / "cifar-100-binary").string());
}

TEST(CifarPublished, AutoFormatRecognisesTarballsAndFolders) {
  const fs::path dir = unpack("cifar-10-python.tar.gz");
  for (const std::string& path : {kFixtures + "cifar-10-python.tar.gz",
                                  (dir / "cifar-10-batches-py").string(), dir.string()}) {
    DatasetOptions o;  // format "auto"
    o.path = path;
    o.split = "test";
    const ImageSet s = open_dataset(o);
    EXPECT_TRUE(s.images.equal(truth("cifar10_test_images"))) << path;
    EXPECT_TRUE(s.labels.equal(truth("cifar10_test_labels"))) << path;
  }
  EXPECT_TRUE(is_cifar_folder(dir.string()));
  EXPECT_FALSE(is_cifar_folder(temp_dir().string()));
}

TEST(CifarPublished, TruncatedTarballNamesTheFile) {
  const fs::path dir = temp_dir();
  std::ifstream in(kFixtures + "cifar-10-python.tar.gz", std::ios::binary);
  const std::string whole((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string cut = (dir / "cifar-10-python.tar.gz").string();
  write_bytes(cut, whole.substr(0, whole.size() / 2));
  const std::string e = error_of([&] { read_cifar(cut, "test"); });
  EXPECT_NE(e.find(cut), std::string::npos) << e;
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
  // The same cut of the uncompressed tar: the member it ends in is named.
  const std::string cmd =
      "gzip -dc '" + kFixtures + "cifar-10-python.tar.gz' > '" + (dir / "whole.tar").string() + "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::ifstream tin(dir / "whole.tar", std::ios::binary);
  const std::string tar((std::istreambuf_iterator<char>(tin)), std::istreambuf_iterator<char>());
  const std::string cut_tar = (dir / "cut.tar").string();
  // Headers: folder (0), batches.meta (512, data 1024), data_batch_1 (1536, data from 2048).
  write_bytes(cut_tar, tar.substr(0, 512 * 4 + 100));
  const std::string e2 = error_of([&] { read_cifar(cut_tar, "train"); });
  EXPECT_NE(e2.find(cut_tar), std::string::npos) << e2;
  EXPECT_NE(e2.find("cifar-10-batches-py/data_batch_1"), std::string::npos) << e2;
}

TEST(CifarPublished, BadPickleNamesTheFileAndOpcode) {
  const fs::path dir = unpack("cifar-10-python.tar.gz") / "cifar-10-batches-py";
  const std::string batch = (dir / "test_batch").string();
  // BINFLOAT ('G') is a real pickle opcode, but not one a CIFAR file holds.
  const char bad[] = "\200\002}q\000(U\004dataq\001G?\360\000\000\000\000\000\000u.";
  write_bytes(batch, std::string(bad, sizeof(bad) - 1));
  const std::string e = error_of([&] { read_cifar(dir.string(), "test"); });
  EXPECT_NE(e.find(batch), std::string::npos) << e;
  EXPECT_NE(e.find("0x47 'G'"), std::string::npos) << e;
  EXPECT_NE(e.find("byte 14"), std::string::npos) << e;
  // A global other than numpy's array reconstruction is refused, never looked up.
  write_bytes(batch, std::string("\200\002cos\nsystem\nq\000.", 16));
  const std::string e2 = error_of([&] { read_cifar(dir.string(), "test"); });
  EXPECT_NE(e2.find(batch), std::string::npos) << e2;
  EXPECT_NE(e2.find("'os.system'"), std::string::npos) << e2;
  // A pickle cut short.
  write_bytes(batch, std::string("\200\002}q\000(U\004dataq", 13));
  const std::string e3 = error_of([&] { read_cifar(dir.string(), "test"); });
  EXPECT_NE(e3.find(batch), std::string::npos) << e3;
  EXPECT_NE(e3.find("truncated"), std::string::npos) << e3;
  // The batch of the split is missing.
  fs::remove(dir / "test_batch");
  const std::string e4 = error_of([&] { read_cifar(dir.string(), "test"); });
  EXPECT_NE(e4.find("test_batch"), std::string::npos) << e4;
}

TEST(CifarPublished, NotCifarIsAnErrorNamingThePath) {
  const fs::path dir = temp_dir();
  write_bytes(dir / "x.tar.gz", "not an archive at all");
  const std::string e = error_of([&] { read_cifar((dir / "x.tar.gz").string(), "train"); });
  EXPECT_NE(e.find("x.tar.gz"), std::string::npos) << e;
  const std::string e2 =
      error_of([&] { read_cifar(kFixtures + "long_names_gnu.tar.gz", "train"); });
  EXPECT_NE(e2.find("holds no CIFAR batches"), std::string::npos) << e2;
  EXPECT_NE(
      error_of([&] { read_cifar(kFixtures + "cifar-10-binary.tar.gz", "val"); }).find("'val'"),
      std::string::npos);
}
