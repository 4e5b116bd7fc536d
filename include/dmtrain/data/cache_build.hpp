// A data set opened through its cache (data.cache, `dmtrain data prepare`): made once, by one
// process, from the source the configuration names, and used only for that source.
//
// open_cached(o, resolve_format, read_whole), o.cache the cache file:
//   1. If o.cache exists, it is loaded (load_cache's checks) and its identity compared with what
//      o asks for (cache_mismatch); a difference is a dmtrain::Error naming both and what to do.
//   2. Else the process takes CacheLock("<cache>.lock") -- logging that it waits if another
//      holds it -- and looks again: a process that waited finds the cache the other wrote and
//      goes to 1. Otherwise it removes temporaries left by a killed writer ("<cache>.tmp" and
//      "<cache>.tmp.*": no writer runs without the lock, so any there is stale), writes the
//      cache (CacheWriter: unique temporary, verified, renamed) and releases the lock. An image
//      folder is streamed chunk by chunk (for_each_chunk: two chunks of kDecodeChunk images in
//      memory whatever the set's size); any other source (IDX, CIFAR: small) is read whole by read_whole(), the
//      data set exactly as open_dataset returns it without a cache. Progress, rate and time left
//      go to the log every few seconds.
//   3. The cache is loaded as in 1.
// resolve_format() gives the source's format (o.format, or what "auto" detects); it is called
// only when the cache must be written. labels "none" drops the labels of a cache made with them.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "dmtrain/data/cache.hpp"
#include "dmtrain/data/dataset.hpp"

namespace dmtrain::data {

// What `o` asks a cache to hold: its source made absolute and canonical, its format as given
// (possibly "auto"), split, labels, image_size, channels, on_bad_file.
CacheIdentity wanted_identity(const DatasetOptions& o);

// "" when a cache recorded as `have` holds what `want` asks for; else the differing settings,
// e.g. "source, split". Rules: a format of "auto" matches any; the split is compared unless the
// cache was made from an image folder (which has none); labels "none" accepts any cache (its
// labels are dropped), otherwise an image folder's labels mode must be the same and any other
// format must have labels; image_size 0 asks for a cache made at the stored size, N > 0 for
// N x N images; channels must match; on_bad_file "fail" refuses a cache that skipped files.
std::string cache_mismatch(const CacheInfo& have, const CacheIdentity& want);

// The Error message for a mismatch: "data.cache '<file>' was made from <have> but the config
// asks for <want> (differs: <fields>); delete it or point data.cache elsewhere".
std::string cache_mismatch_message(const std::string& file, const CacheInfo& have,
                                   const CacheIdentity& want, const std::string& fields);

// `built` (when given) tells whether this call wrote the cache.
ImageSet open_cached(const DatasetOptions& o, const std::function<std::string()>& resolve_format,
                     const std::function<ImageSet()>& read_whole, bool* built = nullptr);

// Images decoded per chunk when an image folder is streamed into a cache: 1024 ImageNet images
// at 128 px are 48 MiB.
constexpr int64_t kDecodeChunk = 1024;

}  // namespace dmtrain::data
