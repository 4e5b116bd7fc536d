// Packed cache format: exact round trip, the byte layout the header comment specifies (images at
// 4096, one zlib CRC-32 per chunk), what load checks (header, size, digest) and what only verify
// checks (pixels), old versions refused, and a writer that fails or stops leaves no file.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <zlib.h>

#include <csignal>

#include "dmtrain/data/cache.hpp"
#include "dmtrain/data/dataset.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/image_io.hpp"
#include "support/error_of.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using namespace dmtrain::data;
using namespace dmtrain::data::testing;
using dmtrain::test_support::error_of;

namespace {
ImageSet sample_set() {
  ImageSet s;
  s.images = at::randint(0, 256, {5, 3, 7, 3}, at::kByte);  // 315 bytes per image: needs padding
  s.labels = at::tensor({0, 2, 1, 1, 0}, at::kLong);
  s.class_names = {"a", "", "gamma ray"};
  return s;
}

CacheIdentity sample_identity() {
  CacheIdentity id;
  id.source = "/data/some where/train";
  id.format = "folder";
  id.split = "train";
  id.labels = "prefix";
  id.image_size = 7;
  id.channels = 3;
  id.on_bad_file = "skip";
  id.skipped = 2;
  return id;
}

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void flip_byte(const std::string& path, int64_t at) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(at);
  const char c = static_cast<char>(f.get());
  f.seekp(at);
  f.put(static_cast<char>(c ^ 1));
}

std::vector<std::string> files_in(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}
}  // namespace

TEST(Cache, RoundTripIsExactWithItsIdentity) {
  const fs::path dir = temp_dir();
  const ImageSet s = sample_set();
  write_cache(s, (dir / "c.bin").string(), sample_identity());
  EXPECT_TRUE(is_cache_file((dir / "c.bin").string()));
  CacheInfo info;
  ImageSet back = load_cache((dir / "c.bin").string(), &info);
  EXPECT_TRUE(back.images.equal(s.images));
  EXPECT_TRUE(back.labels.equal(s.labels));
  EXPECT_EQ(back.class_names, s.class_names);
  const CacheIdentity want = sample_identity();
  EXPECT_EQ(info.identity.source, want.source);
  EXPECT_EQ(info.identity.format, want.format);
  EXPECT_EQ(info.identity.split, want.split);
  EXPECT_EQ(info.identity.labels, want.labels);
  EXPECT_EQ(info.identity.image_size, want.image_size);
  EXPECT_EQ(info.identity.channels, want.channels);
  EXPECT_EQ(info.identity.on_bad_file, want.on_bad_file);
  EXPECT_EQ(info.identity.skipped, want.skipped);
  EXPECT_EQ(info.n, 5);
  EXPECT_TRUE(info.has_labels);
  ImageSet unlabeled{s.images, {}, {}};
  write_cache(unlabeled, (dir / "u.bin").string(), sample_identity());
  EXPECT_FALSE(load_cache((dir / "u.bin").string()).has_labels());
  // Only the two caches: no temporary left beside them.
  EXPECT_EQ(files_in(dir), (std::vector<std::string>{"c.bin", "u.bin"}));
  fs::remove_all(dir);
}

// The header comment's layout, checked against the bytes: pixels at 4096 in order, then the
// labels, then one zlib CRC-32 per chunk of `chunk_images` images, however appends were cut.
TEST(Cache, LayoutAndChunkChecksumsAsSpecified) {
  const fs::path dir = temp_dir();
  const std::string p = (dir / "c.bin").string();
  const ImageSet s = sample_set();
  {
    CacheWriter w(p, 2);
    w.append(s.images[0]);
    w.append_batch(s.images.slice(0, 1, 4));  // crosses the chunk boundary at 2
    w.append(s.images[4]);
    EXPECT_EQ(w.size(), 5);
    w.commit(s.labels, s.class_names, sample_identity());
  }
  const std::string bytes = read_all(p);
  const int64_t per = 3 * 7 * 3;
  ASSERT_GT(static_cast<int64_t>(bytes.size()), 4096 + 5 * per);
  EXPECT_EQ(bytes.substr(0, 8), "DMTCACHE");
  uint32_t version;
  std::memcpy(&version, bytes.data() + 8, 4);
  EXPECT_EQ(version, 2u);
  EXPECT_EQ(std::memcmp(bytes.data() + 4096, s.images.data_ptr<uint8_t>(), 5 * per), 0);
  const int64_t labels_at = 4096 + (5 * per + 7) / 8 * 8;
  EXPECT_EQ(std::memcmp(bytes.data() + labels_at, s.labels.data_ptr<int64_t>(), 5 * 8), 0);
  const auto* img = s.images.data_ptr<uint8_t>();
  const int64_t first[] = {0, 2, 4}, count[] = {2, 2, 1};
  for (int k = 0; k < 3; ++k) {
    const auto want = static_cast<uint32_t>(
        crc32(crc32(0L, Z_NULL, 0), img + first[k] * per, static_cast<uInt>(count[k] * per)));
    uint32_t got;
    std::memcpy(&got, bytes.data() + labels_at + 5 * 8 + 4 * k, 4);
    EXPECT_EQ(got, want) << "chunk " << k;
  }
  const CacheInfo info = verify_cache(p);
  EXPECT_EQ(info.chunks, 3);
  EXPECT_EQ(info.chunk_images, 2);
  fs::remove_all(dir);
}

TEST(Cache, MissingParentFolderIsCreated) {
  // Configs name caches like data/cifar10_train.dmdata before data/ exists.
  const fs::path dir = temp_dir();
  const std::string path = (dir / "not" / "yet" / "c.dmdata").string();
  const ImageSet set = sample_set();
  write_cache(set, path, sample_identity());
  EXPECT_TRUE(load_cache(path).images.equal(set.images));
  fs::remove_all(dir);
}

// Load checks everything but the pixels (header digest, size); verify checks the pixels and
// names the damaged chunk's images.
TEST(Cache, DamageIsFoundByLoadOrByVerify) {
  const fs::path dir = temp_dir();
  const std::string p = (dir / "c.bin").string();
  const ImageSet s = sample_set();
  auto write = [&] {
    CacheWriter w(p, 2);
    w.append_batch(s.images);
    w.commit(s.labels, s.class_names, sample_identity());
  };
  write();
  const auto size = static_cast<int64_t>(fs::file_size(p));
  const int64_t per = 3 * 7 * 3;
  flip_byte(p, 4096 + 3 * per + 5);  // a pixel of image 3: chunk 2 holds images 2 and 3
  EXPECT_NO_THROW(load_cache(p));    // by design: start-up does not read the pixels
  const std::string bad = error_of([&] { verify_cache(p); });
  EXPECT_NE(bad.find(p), std::string::npos) << bad;
  EXPECT_NE(bad.find("images 2..3 (chunk 2 of 3)"), std::string::npos) << bad;
  EXPECT_NE(bad.find("checksum"), std::string::npos) << bad;

  for (const int64_t at : {int64_t{100}, size - 3, 4096 + ((5 * per + 7) / 8 * 8) + 8}) {
    write();  // then damage the header, the identity at the end, a label
    flip_byte(p, at);
    const std::string e = error_of([&] { load_cache(p); });
    EXPECT_NE(e.find(p), std::string::npos) << e;
    EXPECT_TRUE(e.find("checksum") != std::string::npos ||
                e.find("invalid header") != std::string::npos)
        << at << ": " << e;
    EXPECT_NE(e.find("delete it"), std::string::npos) << e;
  }
  write();
  fs::resize_file(p, size - 3);
  EXPECT_NE(error_of([&] { load_cache(p); }).find("truncated"), std::string::npos);
  fs::resize_file(p, 100);  // magic and version intact, header cut
  EXPECT_NE(error_of([&] { load_cache(p); }).find("truncated (no header)"), std::string::npos);
  std::ofstream(p, std::ios::binary | std::ios::trunc) << std::string(80, 'x');
  EXPECT_NE(error_of([&] { load_cache(p); }).find("bad magic"), std::string::npos);
  const std::string absent = (dir / "absent").string();
  EXPECT_NE(error_of([&] { load_cache(absent); }).find(absent), std::string::npos);
  fs::remove_all(dir);
}

// A version-1 cache (no identity record) is refused with what to do, not misread.
TEST(Cache, OldVersionIsRefusedWithWhatToDo) {
  const fs::path dir = temp_dir();
  const std::string p = (dir / "old.dmdata").string();
  std::string v1(64 + 16, '\0');
  std::memcpy(v1.data(), "DMTCACHE", 8);
  v1[8] = 1;  // u32 version 1, little-endian
  std::ofstream(p, std::ios::binary) << v1;
  const std::string e = error_of([&] { load_cache(p); });
  EXPECT_NE(e.find(p), std::string::npos) << e;
  EXPECT_NE(e.find("version 1"), std::string::npos) << e;
  EXPECT_NE(e.find("prepare it again"), std::string::npos) << e;
  fs::remove_all(dir);
}

// A writer destroyed before commit (an exception while decoding) and a writer whose disk fills
// up leave neither a cache nor a temporary file.
TEST(Cache, FailedOrAbandonedWriterLeavesNoFile) {
  const fs::path dir = temp_dir();
  const std::string p = (dir / "c.dmdata").string();
  {
    CacheWriter w(p);
    w.append_batch(sample_set().images);
    EXPECT_TRUE(fs::exists(w.temp_path()));
    EXPECT_EQ(fs::path(w.temp_path()).parent_path(), dir);
  }
  EXPECT_TRUE(files_in(dir).empty());

  const ImageSet big{at::zeros({64, 32, 32, 3}, at::kByte), {}, {}};  // 196,608 bytes
  rlimit before{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &before), 0);
  rlimit tight = before;
  tight.rlim_cur = 100000;  // writes past it fail with EFBIG while SIGXFSZ is ignored
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &tight), 0);
  const std::string e = error_of([&] { write_cache(big, p, sample_identity()); });
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &before), 0);
  std::signal(SIGXFSZ, old_handler);
  EXPECT_NE(e.find("cannot write dataset cache '" + p + "'"), std::string::npos) << e;
  EXPECT_NE(e.find("File too large"), std::string::npos) << e;
  EXPECT_TRUE(files_in(dir).empty());
  // The two temporaries were named apart: a second writer never reuses the first one's file.
  CacheWriter a(p), b(p);
  EXPECT_NE(a.temp_path(), b.temp_path());
  fs::remove_all(dir);
}

TEST(Cache, DescribeNamesWhatMatters) {
  CacheIdentity id = sample_identity();
  EXPECT_EQ(describe(id),
            "/data/some where/train (folder, labels prefix, size 7, 3 channels, on_bad_file skip: "
            "2 skipped)");
  id.format = "cifar-bin";
  id.split = "test";
  id.image_size = 0;
  id.on_bad_file = "fail";
  id.skipped = 0;
  EXPECT_EQ(describe(id),
            "/data/some where/train (cifar-bin, split test, labels prefix, size as stored, 3 "
            "channels)");
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
