// Image folders: PNG pixels exact, JPEG within codec tolerance, GD's file order and label
// conventions, resizing to image_size, and the bad-input errors.
#include <gtest/gtest.h>

#include "dmtrain/data/folder_reader.hpp"
#include "dmtrain/data/jpeg_codec.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/image_io.hpp"
#include "dmtrain/util/log.hpp"
#include "dmtrain/util/npy.hpp"
#include "support/error_of.hpp"
#include "test_util.hpp"

#include <dirent.h>
#include <sys/stat.h>

namespace fs = std::filesystem;
using namespace dmtrain::data;
using namespace dmtrain::data::testing;
using dmtrain::test_support::error_of;
using dmtrain::util::write_png;

namespace {
at::Tensor flat(int64_t h, int64_t w, int r, int g, int b) {
  at::Tensor img = at::empty({h, w, 3}, at::kByte);
  img.select(2, 0).fill_(r);
  img.select(2, 1).fill_(g);
  img.select(2, 2).fill_(b);
  return img;
}
}  // namespace

TEST(JpegCodec, FlatColourSurvivesWithinTolerance) {
  const fs::path dir = temp_dir();
  write_jpeg((dir / "a.jpg").string(), flat(16, 24, 200, 30, 90), 95);
  at::Tensor img = read_jpeg((dir / "a.jpg").string());
  ASSERT_EQ(img.sizes(), (std::vector<int64_t>{16, 24, 3}));
  at::Tensor d = (img.to(at::kInt) - flat(16, 24, 200, 30, 90).to(at::kInt)).abs();
  EXPECT_LE(d.max().item<int>(), 3);  // YCbCr rounding only: a flat block has no AC energy
  write_jpeg((dir / "g.jpg").string(), at::full({8, 8, 1}, 77, at::kByte), 90);
  at::Tensor g = read_jpeg((dir / "g.jpg").string());
  ASSERT_EQ(g.size(2), 1);
  EXPECT_NEAR(g.to(at::kFloat).mean().item<float>(), 77.f, 1.f);
  std::ofstream(dir / "bad.jpg") << "\xff\xd8 not really";
  EXPECT_THROW(read_jpeg((dir / "bad.jpg").string()), dmtrain::Error);
  fs::remove_all(dir);
}

TEST(FolderReader, SubfolderLabelsSortedOrderAndExactPng) {
  const fs::path dir = temp_dir();
  fs::create_directories(dir / "dog");
  fs::create_directories(dir / "cat" / "deeper");
  at::Tensor a = at::randint(0, 256, {8, 8, 3}, at::kByte);
  at::Tensor b = at::randint(0, 256, {8, 8, 3}, at::kByte);
  write_png((dir / "dog" / "b.png").string(), b);
  write_png((dir / "dog" / "a.png").string(), a);
  write_png((dir / "cat" / "deeper" / "z.png").string(), at::randint(0, 256, {8, 8, 1}, at::kByte));
  write_png((dir / "cat" / "x.png").string(), at::zeros({8, 8, 3}, at::kByte));
  std::ofstream(dir / "cat" / "notes.txt") << "ignored";
  const auto files = list_image_files(dir.string());
  // cat/ before dog/; within cat/: "deeper" (dir) sorts before "x.png".
  ASSERT_EQ(files.size(), 4u);
  EXPECT_EQ(fs::path(files[0]).filename(), "z.png");
  EXPECT_EQ(fs::path(files[1]).filename(), "x.png");
  EXPECT_EQ(fs::path(files[2]).filename(), "a.png");
  FolderOptions o;
  o.labels = "folder";
  ImageSet s = read_image_folder(dir.string(), o);
  ASSERT_EQ(s.images.sizes(), (std::vector<int64_t>{4, 8, 8, 3}));
  EXPECT_EQ(s.class_names, (std::vector<std::string>{"cat", "deeper", "dog"}));
  EXPECT_TRUE(s.labels.equal(at::tensor({1, 0, 2, 2}, at::kLong)));
  EXPECT_TRUE(s.images[2].equal(a));
  EXPECT_TRUE(s.images[3].equal(b));
  EXPECT_TRUE(s.images[0].select(2, 0).equal(s.images[0].select(2, 2)));  // gray replicated
  fs::remove_all(dir);
}

TEST(FolderReader, PrefixLabelsJpegAndResize) {
  const fs::path dir = temp_dir();
  write_jpeg((dir / "zebra_001.jpg").string(), flat(64, 80, 250, 250, 250), 95);
  write_jpeg((dir / "ant_002.JPG").string(), flat(40, 40, 10, 10, 10), 95);
  write_png((dir / "ant_1.png").string(), flat(32, 32, 0, 128, 255));
  FolderOptions o;
  o.labels = "prefix";
  o.image_size = 32;
  ImageSet s = read_image_folder(dir.string(), o);
  ASSERT_EQ(s.images.sizes(), (std::vector<int64_t>{3, 32, 32, 3}));
  EXPECT_EQ(s.class_names, (std::vector<std::string>{"ant", "zebra"}));
  // Byte order: "ant_002.JPG" < "ant_1.png" < "zebra_001.jpg".
  EXPECT_TRUE(s.labels.equal(at::tensor({0, 0, 1}, at::kLong)));
  EXPECT_TRUE(s.images[1].equal(flat(32, 32, 0, 128, 255)));  // already 32x32: untouched
  EXPECT_NEAR(s.images[0].to(at::kFloat).mean().item<float>(), 10.f, 2.f);
  EXPECT_NEAR(s.images[2].to(at::kFloat).mean().item<float>(), 250.f, 2.f);
  o.channels = 1;
  EXPECT_EQ(read_image_folder(dir.string(), o).images.size(3), 1);
  fs::remove_all(dir);
}

TEST(FolderReader, ErrorsAndSkipping) {
  const fs::path dir = temp_dir();
  FolderOptions o;
  EXPECT_THROW(read_image_folder((dir / "absent").string(), o), dmtrain::Error);
  try {
    read_image_folder(dir.string(), o);
    FAIL() << "empty folder accepted";
  } catch (const dmtrain::Error& e) {
    EXPECT_NE(std::string(e.what()).find("no .jpg"), std::string::npos) << e.what();
  }
  write_png((dir / "good.png").string(), flat(4, 4, 1, 2, 3));
  std::ofstream(dir / "broken.png") << "garbage";
  try {
    read_image_folder(dir.string(), o);
    FAIL() << "broken file accepted";
  } catch (const dmtrain::Error& e) {
    EXPECT_NE(std::string(e.what()).find("broken.png"), std::string::npos) << e.what();
  }
  o.on_bad_file = "skip";
  EXPECT_EQ(read_image_folder(dir.string(), o).size(), 1);
  write_png((dir / "wide.png").string(), flat(4, 6, 1, 2, 3));
  EXPECT_THROW(read_image_folder(dir.string(), o), dmtrain::Error);  // size mismatch, no resize
  o.image_size = 4;
  EXPECT_EQ(read_image_folder(dir.string(), o).size(), 2);
  o.labels = "folder";  // files directly in the root have no class folder
  EXPECT_THROW(read_image_folder(dir.string(), o), dmtrain::Error);
  fs::remove_all(dir);
}

namespace {
std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
}  // namespace

// Faults root cannot read past: a class "folder" that is a dangling symbolic link, and an image
// name that is a folder. "fail" names the path and cause; "skip" warns about each and counts.
TEST(FolderReader, UnfollowableLinkAndFolderNamedLikeAnImage) {
  const fs::path dir = temp_dir();
  fs::create_directories(dir / "cat");
  write_png((dir / "cat" / "a.png").string(), flat(4, 4, 9, 8, 7));
  fs::create_symlink(dir / "moved_away", dir / "dog");
  FolderOptions o;
  o.labels = "folder";
  const std::string e = error_of([&] { read_image_folder(dir.string(), o); });
  EXPECT_NE(e.find((dir / "dog").string()), std::string::npos) << e;
  EXPECT_NE(e.find("symbolic link"), std::string::npos) << e;
  EXPECT_NE(e.find("No such file or directory"), std::string::npos) << e;
  EXPECT_NE(e.find("on_bad_file: skip"), std::string::npos) << e;
  EXPECT_EQ(e.find("internal"), std::string::npos) << e;

  fs::create_directories(dir / "cat" / "b.png");
  fs::remove(dir / "dog");
  const std::string e2 = error_of([&] { read_image_folder(dir.string(), o); });
  EXPECT_NE(e2.find((dir / "cat" / "b.png").string()), std::string::npos) << e2;
  EXPECT_NE(e2.find("a folder, not a file"), std::string::npos) << e2;

  fs::create_symlink(dir / "moved_away", dir / "dog");
  const fs::path log = dir / "warnings.log";
  dmtrain::log::add_file_sink(log.string());
  o.on_bad_file = "skip";
  const ImageSet s = read_image_folder(dir.string(), o);
  dmtrain::log::flush();
  ASSERT_EQ(s.size(), 1);
  EXPECT_TRUE(s.images[0].equal(flat(4, 4, 9, 8, 7)));
  EXPECT_EQ(s.class_names, (std::vector<std::string>{"cat"}));
  const std::string warnings = slurp(log);
  EXPECT_NE(warnings.find((dir / "dog").string()), std::string::npos) << warnings;
  EXPECT_NE(warnings.find((dir / "cat" / "b.png").string()), std::string::npos) << warnings;
  EXPECT_NE(warnings.find("skipped 2 unreadable entries"), std::string::npos) << warnings;
  fs::remove_all(dir);
}

// A class folder without read permission (chmod 000). Root reads it regardless, so there the
// fault cannot be made and the test is skipped (the test above covers root).
TEST(FolderReader, UnreadableClassFolder) {
  const fs::path dir = temp_dir();
  fs::create_directories(dir / "cat");
  fs::create_directories(dir / "dog");
  write_png((dir / "cat" / "a.png").string(), flat(4, 4, 1, 2, 3));
  write_png((dir / "dog" / "b.png").string(), flat(4, 4, 4, 5, 6));
  ASSERT_EQ(::chmod((dir / "dog").c_str(), 0), 0);
  if (DIR* d = ::opendir((dir / "dog").c_str())) {
    ::closedir(d);
    ::chmod((dir / "dog").c_str(), 0755);
    fs::remove_all(dir);
    GTEST_SKIP() << "a chmod 000 folder is still readable here (running as root)";
  }
  FolderOptions o;
  o.labels = "folder";
  const std::string e = error_of([&] { read_image_folder(dir.string(), o); });
  EXPECT_NE(e.find("cannot read folder '" + (dir / "dog").string() + "'"), std::string::npos) << e;
  EXPECT_NE(e.find("Permission denied"), std::string::npos) << e;
  o.on_bad_file = "skip";
  const ImageSet s = read_image_folder(dir.string(), o);
  ASSERT_EQ(s.size(), 1);
  EXPECT_EQ(s.class_names, (std::vector<std::string>{"cat"}));
  ::chmod((dir / "dog").c_str(), 0755);
  fs::remove_all(dir);
}

TEST(JpegCodec, DecodesLikePil) {
  // A real CIFAR-10 JPEG and Pillow's decode of it (tests/fixtures/data/make_jpeg_fixture.py).
  at::Tensor got = read_jpeg(DMTRAIN_FIXTURES_DIR "/data/cifar_cat_0000.jpg");
  at::Tensor want = dmtrain::util::read_npy(DMTRAIN_FIXTURES_DIR "/data/cifar_cat_0000_pil.npy");
  ASSERT_EQ(got.sizes(), want.sizes());
  EXPECT_TRUE(got.equal(want)) << (got.to(at::kInt) - want.to(at::kInt)).abs().max();
}
