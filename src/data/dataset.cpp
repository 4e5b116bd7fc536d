#include "dmtrain/data/dataset.hpp"

#include <filesystem>

#include "dmtrain/data/cache.hpp"
#include "dmtrain/data/cache_build.hpp"
#include "dmtrain/data/cifar_reader.hpp"
#include "dmtrain/data/folder_reader.hpp"
#include "dmtrain/data/idx_reader.hpp"
#include "dmtrain/data/resize.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/log.hpp"
#include "dmtrain/util/tar_reader.hpp"

namespace dmtrain::data {
namespace fs = std::filesystem;
namespace {

std::string detect_format(const std::string& path) {
  if (fs::is_regular_file(path)) {
    if (is_cache_file(path)) return "cache";
    if (path.find("idx3-ubyte") != std::string::npos) return "idx";
    if (util::is_tar_archive(path)) return "cifar-bin";  // read_cifar checks the members
    throw Error(c10::str("data path '", path,
                         "': cannot tell its format (not a dmtrain cache, an IDX file or a tar / "
                         "tar.gz archive); set data.format"));
  }
  if (!fs::is_directory(path)) throw Error(c10::str("data path '", path, "' does not exist"));
  for (const char* name : {"train-images-idx3-ubyte.gz", "train-images-idx3-ubyte",
                           "t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte"}) {
    if (fs::exists(fs::path(path) / name)) return "idx";
  }
  if (is_cifar_folder(path)) return "cifar-bin";
  return "folder";
}

ImageSet read_source(const DatasetOptions& o, const std::string& format) {
  if (format == "idx") {
    std::string images = o.path, labels;
    if (fs::is_directory(o.path)) {
      std::tie(images, labels) = find_idx_files(o.path, o.split);
    } else if (!fs::exists(o.path)) {
      throw Error(c10::str("data.path '", o.path, "' (data.format: idx) does not exist"));
    } else {
      // The labels file is the images file's sibling ("...-images-idx3-..." ->
      // "...-labels-idx1-..."); a file named otherwise has none to find.
      const size_t k = images.rfind("images-idx3");
      if (k != std::string::npos) {
        labels = images;
        labels.replace(k, 11, "labels-idx1");
        if (!fs::exists(labels)) labels.clear();
      }
    }
    return read_idx(images, o.labels == "none" ? "" : labels, 1);
  }
  if (format == "cifar-bin") {
    return read_cifar(o.path, o.split);
  }
  if (format == "folder") {
    return read_image_folder(o.path, folder_options(o));
  }
  if (format == "cache") return load_cache(o.path);
  throw Error(
      c10::str("data.format '", format, "': expected idx, cifar-bin, folder, cache or auto"));
}

}  // namespace

ImageSet conform(ImageSet set, int64_t image_size, int64_t channels) {
  const bool resize =
      image_size > 0 && (set.images.size(1) != image_size || set.images.size(2) != image_size);
  if (resize) {
    // center_crop_arr works on RGB like the references (PIL convert("RGB") first).
    const int64_t n = set.size();
    at::Tensor out = at::empty({n, image_size, image_size, 3}, at::kByte);
    at::Tensor rgb = to_channels(set.images, 3);
    for (int64_t i = 0; i < n; ++i) out[i].copy_(center_crop_arr(rgb[i], image_size));
    set.images = out;
  }
  if (set.images.size(3) != channels || resize) set.images = to_channels(set.images, channels);
  set.images = set.images.contiguous();
  return set;
}

FolderOptions folder_options(const DatasetOptions& o) {
  FolderOptions fo;
  fo.image_size = o.image_size;
  fo.channels = o.channels;
  fo.labels = o.labels;
  fo.on_bad_file = o.on_bad_file;
  fo.num_threads = o.num_threads;
  return fo;
}

ImageSet open_dataset(const DatasetOptions& o) {
  if (o.channels != 1 && o.channels != 3) {
    throw Error(c10::str("data.channels ", o.channels, ": expected 1 or 3"));
  }
  if (o.labels != "none" && o.labels != "folder" && o.labels != "prefix") {
    throw Error(c10::str("data.labels '", o.labels, "': expected none, folder or prefix"));
  }
  auto check = [&](const ImageSet& s, const std::string& what) {
    if ((o.image_size > 0 &&
         (s.images.size(1) != o.image_size || s.images.size(2) != o.image_size)) ||
        s.images.size(3) != o.channels) {
      throw Error(c10::str("dataset cache '", what, "' holds ", s.images.size(1), "x",
                           s.images.size(2), "x", s.images.size(3),
                           " images but the config asks for ", o.image_size, "x", o.image_size, "x",
                           o.channels, " (a stale cache: delete it to rebuild)"));
    }
  };
  if (!o.cache.empty()) {
    // Made once (an image folder streamed chunk by chunk, under a lock), then mapped.
    DatasetOptions whole = o;
    whole.cache.clear();
    return open_cached(
        o, [&] { return o.format == "auto" ? detect_format(o.path) : o.format; },
        [&] { return open_dataset(whole); });
  }
  const std::string format = o.format == "auto" ? detect_format(o.path) : o.format;
  ImageSet s = read_source(o, format);
  if (format == "cache") {
    check(s, o.path);
  } else {
    s = conform(std::move(s), o.image_size, o.channels);
  }
  if (o.labels == "none") {
    s.labels = at::Tensor();
    s.class_names.clear();
  }
  s.validate(o.path);
  log::info(c10::str("dataset: ", s.size(), " images ", s.images.size(1), "x", s.images.size(2),
                     "x", s.images.size(3), " from ", o.path, " (", format, ")"));
  return s;
}

}  // namespace dmtrain::data
