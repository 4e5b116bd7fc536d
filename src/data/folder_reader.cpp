#include "dmtrain/data/folder_reader.hpp"

#include <algorithm>
#include <filesystem>

#include "dmtrain/data/folder_source.hpp"
#include "dmtrain/data/jpeg_codec.hpp"
#include "dmtrain/data/resize.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/image_io.hpp"
#include "dmtrain/util/log.hpp"

namespace dmtrain::data {
namespace fs = std::filesystem;
namespace {

std::string lower_ext(const fs::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char ch) { return std::tolower(ch); });
  return e;
}

// Appends the image files below `dir` to *out; an entry that cannot be listed or followed (an
// unreadable folder, a dangling symbolic link) is reported in *bad instead.
void list_into(const fs::path& dir, std::vector<std::string>* out, std::vector<std::string>* bad) {
  std::vector<fs::path> entries;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    entries.push_back(it->path());
  }
  if (ec) {
    bad->push_back(c10::str("cannot read folder '", dir.string(), "': ", ec.message()));
    return;
  }
  std::sort(entries.begin(), entries.end(),
            [](const fs::path& a, const fs::path& b) { return a.filename() < b.filename(); });
  for (const fs::path& p : entries) {
    const std::string ext = lower_ext(p);
    if (ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".gif") {
      out->push_back(p.string());
      continue;
    }
    std::error_code st_ec, link_ec;
    const fs::file_status st = fs::status(p, st_ec);
    if (fs::is_directory(st)) {
      list_into(p, out, bad);
    } else if (st_ec && fs::is_symlink(fs::symlink_status(p, link_ec))) {
      bad->push_back(c10::str("'", p.string(), "' is a symbolic link to '",
                              fs::read_symlink(p, link_ec).string(),
                              "', which cannot be followed: ", st_ec.message()));
    } else if (st_ec) {
      bad->push_back(c10::str("cannot read '", p.string(), "': ", st_ec.message()));
    }
  }
}

at::Tensor load_image(const std::string& path, const FolderOptions& o) {
  const std::string ext = lower_ext(path);
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    throw Error(c10::str("cannot read image '", path, "': it is a folder, not a file"));
  }
  at::Tensor img;
  if (ext == ".png") {
    img = util::read_png(path);
  } else if (ext == ".jpg" || ext == ".jpeg") {
    img = read_jpeg(path);
  } else {
    throw Error(c10::str("unsupported image format '", path, "' (only JPEG and PNG)"));
  }
  img = to_channels(img.unsqueeze(0), 3).squeeze(0);  // PIL: convert("RGB")
  if (o.image_size > 0) img = center_crop_arr(img, o.image_size);
  return to_channels(img.unsqueeze(0), o.channels).squeeze(0);
}

}  // namespace

std::vector<std::string> list_image_files(const std::string& dir,
                                          std::vector<std::string>* unreadable) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw Error(c10::str("image folder '", dir, "' ",
                         ec && ec != std::errc::no_such_file_or_directory
                             ? "cannot be read: " + ec.message()
                             : std::string("does not exist")));
  }
  std::vector<std::string> files, bad;
  list_into(dir, &files, &bad);
  if (unreadable != nullptr) {
    *unreadable = std::move(bad);
  } else if (!bad.empty()) {
    throw Error(bad.front());
  }
  return files;
}

at::Tensor read_folder_image(const std::string& path, const FolderOptions& o) {
  return load_image(path, o);
}

ImageSet read_image_folder(const std::string& dir, const FolderOptions& o) {
  // The whole folder is the chunks of folder_source.hpp joined: one set of rules for both.
  std::vector<at::Tensor> chunks;
  const FolderChunks read =
      for_each_chunk(dir, o, /*chunk=*/1024, [&chunks](const at::Tensor& nhwc, int64_t, int64_t) {
        chunks.push_back(nhwc.clone());  // the chunk's buffer is reused for the next one
      });
  ImageSet set;
  set.images = chunks.size() == 1 ? chunks.front() : at::cat(chunks).contiguous();
  set.labels = read.labels;
  set.class_names = read.class_names;
  set.validate(dir);
  return set;
}

}  // namespace dmtrain::data
