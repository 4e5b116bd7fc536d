#include "dmtrain/data/cache_build.hpp"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "dmtrain/data/cache_lock.hpp"
#include "dmtrain/data/dataset.hpp"
#include "dmtrain/data/folder_source.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/log.hpp"

namespace dmtrain::data {
namespace fs = std::filesystem;
namespace {

using Clock = std::chrono::steady_clock;

std::string canonical_source(const std::string& path) {
  std::error_code ec;
  const fs::path abs = fs::absolute(path, ec);
  fs::path p = fs::weakly_canonical(abs, ec);
  if (ec) p = abs.lexically_normal();
  std::string s = p.string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

std::string duration(double seconds) {
  const auto s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60));
  } else if (s >= 60) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(s));
  }
  return buf;
}

// "<what>: done / total images (p%), r images/s, about t left" on the log every few seconds.
class ProgressLog {
 public:
  explicit ProgressLog(std::string what) : what_(std::move(what)) {}
  void update(int64_t done, int64_t total) {
    const auto now = Clock::now();
    if (now - last_ < std::chrono::seconds(5) && done < total) return;
    last_ = now;
    const double secs = std::chrono::duration<double>(now - start_).count();
    const double rate = secs > 0 ? static_cast<double>(done) / secs : 0.0;
    char pct[16];
    std::snprintf(
        pct, sizeof pct, "%.1f",
        100.0 * static_cast<double>(done) / static_cast<double>(std::max<int64_t>(1, total)));
    log::info(c10::str(what_, ": ", done, " / ", total, " images (", pct, "%), ",
                       static_cast<int64_t>(rate), " images/s, ",
                       done < total && rate > 0
                           ? "about " + duration(static_cast<double>(total - done) / rate) + " left"
                           : "done in " + duration(secs)));
  }

 private:
  std::string what_;
  Clock::time_point start_ = Clock::now(), last_ = Clock::now();
};

// No writer runs without the lock, so any temporary there now was left by one that was killed.
void remove_stale_temporaries(const std::string& cache) {
  const fs::path p(cache);
  const fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  const std::string name = p.filename().string();
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string f = e.path().filename().string();
    if (f == name + ".tmp" || f.rfind(name + ".tmp.", 0) == 0) {
      log::warn(c10::str("removing '", e.path().string(),
                         "', a partial dataset cache left by a writer that stopped"));
      fs::remove(e.path(), ec);
    }
  }
}

void build(const DatasetOptions& o, const std::string& format,
           const std::function<ImageSet()>& read_whole) {
  CacheIdentity id = wanted_identity(o);
  id.format = format;
  log::info(c10::str("dataset cache '", o.cache, "': writing it from ", describe(id)));
  const auto t0 = Clock::now();
  ProgressLog progress(c10::str("dataset cache '", o.cache, "'"));
  CacheWriter writer(o.cache);
  if (format == "folder") {
    const FolderChunks r = for_each_chunk(o.path, folder_options(o), kDecodeChunk,
                                          [&](const at::Tensor& nhwc, int64_t done, int64_t total) {
                                            writer.append_batch(nhwc);
                                            progress.update(done, total);
                                          });
    id.skipped = r.skipped;
    writer.commit(r.labels, r.class_names, id);
  } else {
    const ImageSet s = read_whole();
    for (int64_t i = 0; i < s.size(); i += kDecodeChunk) {
      const int64_t end = std::min(s.size(), i + kDecodeChunk);
      writer.append_batch(s.images.slice(0, i, end));
      progress.update(end, s.size());
    }
    writer.commit(s.labels, s.class_names, id);
  }
  log::info(c10::str("dataset cache '", o.cache, "': wrote ", writer.size(), " images in ",
                     duration(std::chrono::duration<double>(Clock::now() - t0).count())));
}

}  // namespace

CacheIdentity wanted_identity(const DatasetOptions& o) {
  CacheIdentity id;
  id.source = canonical_source(o.path);
  id.format = o.format;
  id.split = o.split;
  id.labels = o.labels;
  id.image_size = o.image_size;
  id.channels = o.channels;
  id.on_bad_file = o.on_bad_file;
  return id;
}

std::string cache_mismatch(const CacheInfo& have, const CacheIdentity& want) {
  const CacheIdentity& id = have.identity;
  std::vector<std::string> diff;
  if (id.source != want.source) diff.emplace_back("source");
  if (want.format != "auto" && want.format != id.format) diff.emplace_back("format");
  if (id.format != "folder" && want.split != id.split) diff.emplace_back("split");
  if (want.labels != "none" &&
      (id.format == "folder" ? id.labels != want.labels : id.labels == "none")) {
    diff.emplace_back("labels");
  }
  if (want.image_size > 0 ? (have.h != want.image_size || have.w != want.image_size)
                          : id.image_size != 0) {
    diff.emplace_back("image_size");
  }
  if (have.c != want.channels) diff.emplace_back("channels");
  if (want.on_bad_file == "fail" && id.skipped > 0) diff.emplace_back("on_bad_file");
  std::string out;
  for (const std::string& d : diff) out += (out.empty() ? "" : ", ") + d;
  return out;
}

std::string cache_mismatch_message(const std::string& file, const CacheInfo& have,
                                   const CacheIdentity& want, const std::string& fields) {
  return c10::str("data.cache '", file, "' was made from ", describe(have.identity), ", ", have.n,
                  " images of ", have.h, "x", have.w, "x", have.c, ", but the config asks for ",
                  describe(want), " (differs: ", fields,
                  "); delete it or point data.cache elsewhere");
}

ImageSet open_cached(const DatasetOptions& o, const std::function<std::string()>& resolve_format,
                     const std::function<ImageSet()>& read_whole, bool* built) {
  if (built != nullptr) *built = false;
  const CacheIdentity want = wanted_identity(o);
  auto load = [&] {
    CacheInfo info;
    ImageSet s = load_cache(o.cache, &info);
    const std::string diff = cache_mismatch(info, want);
    if (!diff.empty()) throw Error(cache_mismatch_message(o.cache, info, want, diff));
    if (o.labels == "none") {
      s.labels = at::Tensor();
      s.class_names.clear();
    }
    log::info(c10::str("dataset: ", s.size(), " images ", info.h, "x", info.w, "x", info.c,
                       " from cache ", o.cache, ", made from ", describe(info.identity)));
    return s;
  };
  if (fs::exists(o.cache)) return load();
  {
    const CacheLock lock(o.cache + ".lock", c10::str("dataset cache '", o.cache, "'"));
    if (!fs::exists(o.cache)) {
      remove_stale_temporaries(o.cache);
      build(o, resolve_format(), read_whole);
      if (built != nullptr) *built = true;
    } else if (lock.waited()) {
      log::info(c10::str("dataset cache '", o.cache, "' was written by the other process"));
    }
  }
  return load();
}

}  // namespace dmtrain::data
