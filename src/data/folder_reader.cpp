#include "dmtrain/data/folder_reader.hpp"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <thread>

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
  if (o.labels != "none" && o.labels != "folder" && o.labels != "prefix") {
    throw Error(c10::str("data labels '", o.labels, "': expected none, folder or prefix"));
  }
  if (o.on_bad_file != "fail" && o.on_bad_file != "skip") {
    throw Error(c10::str("data on_bad_file '", o.on_bad_file, "': expected fail or skip"));
  }
  std::vector<std::string> unreadable;
  const std::vector<std::string> files = list_image_files(dir, &unreadable);
  const char* how_to_skip = " (set data.on_bad_file: skip to skip unreadable files and folders)";
  if (!unreadable.empty() && o.on_bad_file == "fail") throw Error(unreadable.front() + how_to_skip);
  for (const std::string& why : unreadable) log::warn(c10::str("skipping: ", why));
  if (files.empty()) {
    throw Error(c10::str("image folder '", dir, "' contains no .jpg/.jpeg/.png files"));
  }
  const size_t n = files.size();
  std::vector<at::Tensor> images(n);
  std::vector<std::string> errors(n);
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next++; i < n; i = next++) {
      try {
        images[i] = load_image(files[i], o);
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 1; t < std::max(1, o.num_threads); ++t) threads.emplace_back(work);
  work();
  for (std::thread& t : threads) t.join();

  std::vector<size_t> keep;
  for (size_t i = 0; i < n; ++i) {
    if (errors[i].empty()) {
      keep.push_back(i);
    } else if (o.on_bad_file == "fail") {
      throw Error(errors[i] + how_to_skip);
    } else {
      log::warn(c10::str("skipping unreadable image: ", errors[i]));
    }
  }
  const size_t skipped = unreadable.size() + (n - keep.size());
  if (skipped > 0) {
    log::warn(c10::str("image folder '", dir, "': skipped ", skipped, " unreadable ",
                       skipped == 1 ? "entry" : "entries", " (", unreadable.size(),
                       " folders or links, ", n - keep.size(), " image files); read ", keep.size(),
                       " images"));
  }
  if (keep.empty()) throw Error(c10::str("image folder '", dir, "': no readable images"));
  const auto shape = images[keep[0]].sizes();
  std::vector<at::Tensor> kept;
  for (size_t i : keep) {
    if (images[i].sizes() != shape) {
      throw Error(c10::str("image '", files[i], "' is ", images[i].sizes(), " but '",
                           files[keep[0]], "' is ", shape,
                           "; set data.image_size to resize them to one size"));
    }
    kept.push_back(images[i]);
  }
  ImageSet set;
  set.images = at::stack(kept).contiguous();
  if (o.labels != "none") {
    std::vector<std::string> names;
    for (size_t i : keep) {
      const fs::path p(files[i]);
      if (o.labels == "folder") {
        std::error_code eq_ec;
        if (fs::equivalent(p.parent_path(), dir, eq_ec)) {
          throw Error(c10::str("image '", files[i], "' is not inside a class sub-folder of '", dir,
                               "' (data.labels: folder)"));
        }
        names.push_back(p.parent_path().filename().string());
      } else {
        const std::string base = p.filename().string();
        names.push_back(base.substr(0, base.find('_')));
      }
    }
    std::map<std::string, int64_t> ids;
    for (const std::string& s : names) ids.emplace(s, 0);
    int64_t k = 0;
    for (auto& [name, id] : ids) {
      id = k++;
      set.class_names.push_back(name);
    }
    set.labels = at::empty({static_cast<int64_t>(names.size())}, at::kLong);
    int64_t* out = set.labels.data_ptr<int64_t>();
    for (size_t i = 0; i < names.size(); ++i) out[i] = ids[names[i]];
  }
  set.validate(dir);
  return set;
}

}  // namespace dmtrain::data
