// Making and opening a cache: an image folder streamed chunk by chunk gives read_image_folder's
// set exactly; the cache records its source and is refused for another; two processes (and two
// threads) opening one absent cache make it once and both use it; a killed writer's lock and
// temporary file neither block nor corrupt; `dmtrain data prepare --out` serves a config.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <thread>

#include "dmtrain/data/cache.hpp"
#include "dmtrain/data/cache_build.hpp"
#include "dmtrain/data/cache_lock.hpp"
#include "dmtrain/data/dataset.hpp"
#include "dmtrain/data/folder_reader.hpp"
#include "dmtrain/data/folder_source.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/image_io.hpp"
#include "support/error_of.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using namespace dmtrain::data;
using namespace dmtrain::data::testing;
using dmtrain::test_support::error_of;

namespace {

// Class folders "b" and "a" of random PNGs (10x12 unless `side`), files named "<class>_<i>.png".
void make_folder(const fs::path& dir, int per_class, int64_t side = 0) {
  for (const char* k : {"b", "a"}) {
    fs::create_directories(dir / k);
    for (int i = 0; i < per_class; ++i) {
      const at::Tensor img =
          at::randint(0, 256, {side > 0 ? side : 10, side > 0 ? side : 12, 3}, at::kByte);
      dmtrain::util::write_png((dir / k / c10::str(k, "_", 1000 + i, ".png")).string(), img);
    }
  }
}

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

void expect_same(const ImageSet& got, const ImageSet& want) {
  ASSERT_EQ(got.images.sizes(), want.images.sizes());
  EXPECT_TRUE(got.images.equal(want.images));
  ASSERT_EQ(got.has_labels(), want.has_labels());
  if (want.has_labels()) {
    EXPECT_TRUE(got.labels.equal(want.labels));
  }
  EXPECT_EQ(got.class_names, want.class_names);
}

DatasetOptions folder_dataset(const fs::path& img, const fs::path& cache) {
  DatasetOptions o;
  o.path = img.string();
  o.image_size = 6;
  o.cache = cache.string();
  o.num_threads = 2;
  return o;
}

// open_cached as open_dataset calls it for an image folder.
ImageSet open_folder_cache(const DatasetOptions& o, bool* built) {
  DatasetOptions whole = o;
  whole.cache.clear();
  return open_cached(
      o, [] { return std::string("folder"); }, [whole] { return open_dataset(whole); }, built);
}

}  // namespace

TEST(FolderChunks, ConcatenatedChunksAreReadImageFolder) {
  const fs::path dir = temp_dir();
  make_folder(dir, 4);
  std::ofstream(dir / "a" / "a_1001x.png") << "not a png";  // sorts among a's files
  for (const char* labels : {"folder", "prefix", "none"}) {
    FolderOptions fo;
    fo.image_size = 6;
    fo.labels = labels;
    fo.on_bad_file = "skip";
    std::vector<at::Tensor> chunks;
    std::vector<int64_t> done;
    const FolderChunks r =
        for_each_chunk(dir.string(), fo, 3, [&](const at::Tensor& x, int64_t d, int64_t total) {
          EXPECT_LE(x.size(0), 3);
          EXPECT_EQ(total, 9);
          chunks.push_back(x.clone());
          done.push_back(d);
        });
    const ImageSet want = read_image_folder(dir.string(), fo);
    EXPECT_TRUE(at::cat(chunks).equal(want.images)) << labels;
    EXPECT_EQ(done, (std::vector<int64_t>{3, 6, 9}));  // the bad file's chunk keeps 2 images
    EXPECT_EQ(r.images, 8);
    EXPECT_EQ(r.skipped, 1);
    ASSERT_EQ(r.labels.defined(), want.has_labels()) << labels;
    if (want.has_labels()) {
      EXPECT_TRUE(r.labels.equal(want.labels)) << labels;
    }
    EXPECT_EQ(r.class_names, want.class_names) << labels;
  }
  FolderOptions fail;
  fail.image_size = 6;
  const std::string e = error_of([&] { for_each_chunk(dir.string(), fail, 2, [](auto&&...) {}); });
  EXPECT_NE(e.find("a_1001x.png"), std::string::npos) << e;
  EXPECT_NE(e.find("on_bad_file: skip"), std::string::npos) << e;
  fs::remove(dir / "a" / "a_1001x.png");
  dmtrain::util::write_png((dir / "b" / "b_2000.png").string(), at::zeros({5, 5, 3}, at::kByte));
  FolderOptions keep_size;  // image_size 0: sizes must agree, across chunks too
  const std::string shape =
      error_of([&] { for_each_chunk(dir.string(), keep_size, 2, [](auto&&...) {}); });
  EXPECT_NE(shape.find("b_2000.png"), std::string::npos) << shape;
  EXPECT_NE(shape.find("data.image_size"), std::string::npos) << shape;
  fs::remove_all(dir);
}

TEST(CacheBuild, FolderCacheIsTheReadersSetAndRecordsItsSource) {
  const fs::path dir = temp_dir();
  make_folder(dir / "img", 3);
  std::ofstream(dir / "img" / "a" / "a_9.jpg") << "broken";
  DatasetOptions o = folder_dataset(dir / "img" / ".." / "img" / "", dir / "c" / "x.dmdata");
  o.on_bad_file = "skip";
  bool built = false;
  const ImageSet got = open_folder_cache(o, &built);
  EXPECT_TRUE(built);
  expect_same(got, read_image_folder((dir / "img").string(), folder_options(o)));
  const CacheInfo info = verify_cache(o.cache);
  EXPECT_EQ(info.identity.source, fs::canonical(dir / "img").string());
  EXPECT_EQ(info.identity.format, "folder");
  EXPECT_EQ(info.identity.labels, "folder");
  EXPECT_EQ(info.identity.image_size, 6);
  EXPECT_EQ(info.identity.channels, 3);
  EXPECT_EQ(info.identity.on_bad_file, "skip");
  EXPECT_EQ(info.identity.skipped, 1);
  EXPECT_EQ(info.n, 6);
  // Through open_dataset: the second open comes from the cache alone (the source is gone).
  fs::rename(dir / "c" / "x.dmdata", dir / "y.dmdata");
  o.cache = (dir / "y.dmdata").string();
  fs::remove_all(dir / "img");
  expect_same(open_dataset(o), got);
  fs::remove_all(dir);
}

TEST(CacheBuild, RefusedForAnotherSourceByName) {
  const fs::path dir = temp_dir();
  make_folder(dir / "img", 2);
  fs::create_directories(dir / "other");
  fs::copy(dir / "img", dir / "other", fs::copy_options::recursive);
  DatasetOptions o = folder_dataset(dir / "img", dir / "c.dmdata");
  const ImageSet first = open_dataset(o);
  const std::string src = fs::canonical(dir / "img").string();

  DatasetOptions other = o;
  other.path = (dir / "other").string();
  const std::string e = error_of([&] { open_dataset(other); });
  EXPECT_NE(e.find("data.cache '" + o.cache + "' was made from " + src + " (folder"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("but the config asks for " + fs::canonical(dir / "other").string()),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("(differs: source)"), std::string::npos) << e;
  EXPECT_NE(e.find("delete it or point data.cache elsewhere"), std::string::npos) << e;

  auto differs = [&](auto change) {
    DatasetOptions x = o;
    change(x);
    const std::string m = error_of([&] { open_dataset(x); });
    const size_t at = m.find("(differs: ");
    return at == std::string::npos ? m : m.substr(at + 10, m.find(')', at) - at - 10);
  };
  EXPECT_EQ(differs([](DatasetOptions& x) { x.image_size = 8; }), "image_size");
  EXPECT_EQ(differs([](DatasetOptions& x) { x.image_size = 0; }), "image_size");
  EXPECT_EQ(differs([](DatasetOptions& x) { x.channels = 1; }), "channels");
  EXPECT_EQ(differs([](DatasetOptions& x) { x.labels = "prefix"; }), "labels");
  EXPECT_EQ(differs([](DatasetOptions& x) { x.format = "idx"; }), "format");
  // An image folder has no split; labels "none" takes a labelled cache and drops its labels.
  DatasetOptions same = o;
  same.split = "test";
  same.format = "folder";
  expect_same(open_dataset(same), first);
  same.labels = "none";
  const ImageSet unlabelled = open_dataset(same);
  EXPECT_FALSE(unlabelled.has_labels());
  EXPECT_TRUE(unlabelled.class_names.empty());
  EXPECT_TRUE(unlabelled.images.equal(first.images));
  fs::remove_all(dir);
}

TEST(CacheBuild, MismatchRules) {
  CacheInfo have;
  have.n = 10;
  have.h = have.w = 32;
  have.c = 3;
  have.identity.source = "/d/cifar";
  have.identity.format = "cifar-bin";
  have.identity.split = "train";
  have.identity.labels = "folder";
  have.identity.image_size = 0;
  CacheIdentity want = have.identity;
  EXPECT_EQ(cache_mismatch(have, want), "");
  want.format = "auto";
  want.labels = "prefix";  // CIFAR carries its own labels: folder / prefix alike
  want.image_size = 32;    // the stored size, asked for by number
  EXPECT_EQ(cache_mismatch(have, want), "");
  want.split = "test";
  want.source = "/d/cifar2";
  EXPECT_EQ(cache_mismatch(have, want), "source, split");
  want = have.identity;
  have.identity.labels = "none";
  EXPECT_EQ(cache_mismatch(have, want), "labels");
  want.labels = "none";
  EXPECT_EQ(cache_mismatch(have, want), "");
  have.identity.on_bad_file = "skip";
  have.identity.skipped = 3;
  EXPECT_EQ(cache_mismatch(have, want), "on_bad_file");
  want.on_bad_file = "skip";
  EXPECT_EQ(cache_mismatch(have, want), "");
}

TEST(CacheBuild, IdxSplitIsPartOfTheIdentity) {
  const fs::path dir = temp_dir();
  for (const char* split : {"train", "t10k"}) {
    std::string img = be32(0x803) + be32(2) + be32(4) + be32(4);
    for (int i = 0; i < 32; ++i) img.push_back(static_cast<char>(split[1] == 'r' ? 40 : 200));
    write_bytes(dir / c10::str(split, "-images-idx3-ubyte.gz"), img, true);
    write_bytes(dir / c10::str(split, "-labels-idx1-ubyte.gz"),
                be32(0x801) + be32(2) + std::string("\x04\x01", 2), true);
  }
  DatasetOptions o;
  o.path = dir.string();
  o.channels = 1;
  o.cache = (dir / "mnist.dmdata").string();
  EXPECT_TRUE(open_dataset(o).images.eq(40).all().item<bool>());
  EXPECT_EQ(read_cache_info(o.cache).identity.format, "idx");  // "auto" recorded as detected
  o.split = "test";
  const std::string e = error_of([&] { open_dataset(o); });
  EXPECT_NE(e.find("split train"), std::string::npos) << e;
  EXPECT_NE(e.find("split test"), std::string::npos) << e;
  EXPECT_NE(e.find("(differs: split)"), std::string::npos) << e;
  fs::remove_all(dir);
}

// The real case of two runs of a sweep: two processes open one absent cache at once. Exactly
// one writes it, whatever the timing (the lock and the look after taking it), both end with it.
TEST(CacheBuild, TwoProcessesOneWriterBothUseIt) {
  const fs::path dir = temp_dir();
  make_folder(dir / "img", 300, 16);
  for (int round = 0; round < 3; ++round) {
    const DatasetOptions o = folder_dataset(dir / "img", dir / "c" / "d.dmdata");
    int go[2];
    ASSERT_EQ(::pipe(go), 0);
    pid_t pids[2];
    for (pid_t& pid : pids) {
      pid = ::fork();
      ASSERT_GE(pid, 0);
      if (pid == 0) {
        ::close(go[1]);
        char c;
        if (::read(go[0], &c, 1) != 1) ::_exit(3);  // start together
        try {
          bool built = false;
          const ImageSet s = open_folder_cache(o, &built);
          ::_exit(s.size() == 600 ? (built ? 10 : 11) : 4);
        } catch (const std::exception& e) {
          std::fprintf(stderr, "child: %s\n", e.what());
          ::_exit(1);
        }
      }
    }
    ::close(go[0]);
    ASSERT_EQ(::write(go[1], "gg", 2), 2);
    ::close(go[1]);
    std::vector<int> codes;
    for (pid_t pid : pids) {
      int status = 0;
      ASSERT_EQ(::waitpid(pid, &status, 0), pid);
      ASSERT_TRUE(WIFEXITED(status)) << "signal " << WTERMSIG(status);
      codes.push_back(WEXITSTATUS(status));
    }
    std::sort(codes.begin(), codes.end());
    EXPECT_EQ(codes, (std::vector<int>{10, 11})) << "round " << round;
    verify_cache(o.cache);
    expect_same(load_cache(o.cache), read_image_folder(o.path, folder_options(o)));
    EXPECT_EQ(names_in(dir / "c"), (std::vector<std::string>{"d.dmdata", "d.dmdata.lock"}));
    fs::remove_all(dir / "c");
  }
  fs::remove_all(dir);
}

TEST(CacheBuild, TwoThreadsOneWriterBothUseIt) {
  const fs::path dir = temp_dir();
  make_folder(dir / "img", 100, 16);
  const DatasetOptions o = folder_dataset(dir / "img", dir / "d.dmdata");
  bool built[2] = {false, false};
  ImageSet sets[2];
  std::string errors[2];
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      try {
        sets[t] = open_folder_cache(o, &built[t]);
      } catch (const std::exception& e) {
        errors[t] = e.what();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(errors[0] + errors[1], "");
  EXPECT_NE(built[0], built[1]);
  const ImageSet want = read_image_folder(o.path, folder_options(o));
  expect_same(sets[0], want);
  expect_same(sets[1], want);
  fs::remove_all(dir);
}

// A writer killed while holding the lock with a half-written temporary file: the kernel drops
// its lock, and the next writer removes its file and writes the cache.
TEST(CacheBuild, KilledWriterNeitherBlocksNorCorrupts) {
  const fs::path dir = temp_dir();
  make_folder(dir / "img", 5);
  const DatasetOptions o = folder_dataset(dir / "img", dir / "d.dmdata");
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const CacheLock lock(o.cache + ".lock", "test");
    std::ofstream(o.cache + ".tmp.12345.0123456789abcdef") << std::string(5000, 'x');
    std::ofstream(o.cache + ".tmp") << "an older writer's temporary";
    if (::write(ready[1], "r", 1) != 1) ::_exit(3);
    ::pause();
    ::_exit(0);
  }
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::kill(pid, SIGKILL);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ::close(ready[0]);
  ::close(ready[1]);
  bool built = false;
  expect_same(open_folder_cache(o, &built), read_image_folder(o.path, folder_options(o)));
  EXPECT_TRUE(built);
  verify_cache(o.cache);
  EXPECT_EQ(names_in(dir), (std::vector<std::string>{"d.dmdata", "d.dmdata.lock", "img"}));
  fs::remove_all(dir);
}

TEST(CacheLock, SecondHolderWaitsForTheFirst) {
  const fs::path dir = temp_dir();
  const std::string path = (dir / "x.lock").string();
  std::atomic<bool> released{false};
  bool second_waited = false, second_saw_release = false;
  std::thread second;
  {
    const CacheLock first(path, "test");
    EXPECT_FALSE(first.waited());
    second = std::thread([&] {
      const CacheLock lock(path, "test");
      second_waited = lock.waited();
      second_saw_release = released.load();
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    released = true;
  }
  second.join();
  EXPECT_TRUE(second_waited);
  EXPECT_TRUE(second_saw_release);
  fs::remove_all(dir);
}

// `dmtrain data prepare --out X` records what a config with data.cache: X asks for, so the
// config uses it as it is; `dmtrain data verify` passes it and fails a damaged one (exit 2).
TEST(CacheBuild, PreparedCacheServesTheConfigAndVerifies) {
  if (!fs::exists(DMTRAIN_BINARY)) GTEST_SKIP() << "dmtrain binary not built";
  const fs::path dir = temp_dir();
  make_folder(dir / "img", 4);
  const std::string cache = (dir / "p.dmdata").string();
  auto run = [](const std::string& args) {
    const int status = std::system(
        (std::string("OMP_NUM_THREADS=1 ") + DMTRAIN_BINARY + " " + args + " > /dev/null 2>&1")
            .c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  auto prepare = [&](int size) {
    return "data prepare --input " + (dir / "img").string() + " --size " + std::to_string(size) +
           " --out " + cache;
  };
  ASSERT_EQ(run(prepare(6)), 0);
  const auto written = fs::last_write_time(cache);
  EXPECT_EQ(run(prepare(6)), 0);  // up to date: kept
  EXPECT_EQ(fs::last_write_time(cache), written);
  DatasetOptions o = folder_dataset(dir / "img", cache);
  const ImageSet want = read_image_folder(o.path, folder_options(o));
  fs::rename(dir / "img", dir / "moved");  // the config must use the cache, not read the source
  expect_same(open_dataset(o), want);
  fs::rename(dir / "moved", dir / "img");
  EXPECT_EQ(run(prepare(8)), 2);  // another size: refused without --force
  EXPECT_EQ(fs::last_write_time(cache), written);
  EXPECT_EQ(run("data verify " + cache), 0);
  {
    std::fstream f(cache, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(4096 + 10);
    const char c = static_cast<char>(f.get());
    f.seekp(4096 + 10);
    f.put(static_cast<char>(c ^ 4));  // one pixel of image 0
  }
  EXPECT_EQ(run("data verify " + cache), 2);
  EXPECT_EQ(run(prepare(8) + " --force"), 0);
  EXPECT_EQ(read_cache_info(cache).h, 8);
  fs::remove_all(dir);
}
