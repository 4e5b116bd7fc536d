#include "dmtrain/data/folder_source.hpp"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <future>
#include <map>
#include <thread>

#include "dmtrain/util/error.hpp"
#include "dmtrain/util/log.hpp"

namespace dmtrain::data {
namespace fs = std::filesystem;
namespace {

// The class name of `file` under `labels` ("folder" or "prefix").
std::string class_name(const std::string& file, const std::string& dir, const std::string& labels) {
  const fs::path p(file);
  if (labels == "folder") {
    std::error_code ec;
    if (fs::equivalent(p.parent_path(), dir, ec)) {
      throw Error(c10::str("image '", file, "' is not inside a class sub-folder of '", dir,
                           "' (data.labels: folder)"));
    }
    return p.parent_path().filename().string();
  }
  const std::string base = p.filename().string();
  return base.substr(0, base.find('_'));
}

}  // namespace

FolderChunks for_each_chunk(const std::string& dir, const FolderOptions& o, int64_t chunk,
                            const ChunkSink& sink) {
  if (o.labels != "none" && o.labels != "folder" && o.labels != "prefix") {
    throw Error(c10::str("data labels '", o.labels, "': expected none, folder or prefix"));
  }
  if (o.on_bad_file != "fail" && o.on_bad_file != "skip") {
    throw Error(c10::str("data on_bad_file '", o.on_bad_file, "': expected fail or skip"));
  }
  TORCH_CHECK(chunk >= 1, "for_each_chunk: chunk must be >= 1");
  std::vector<std::string> unreadable;
  const std::vector<std::string> files = list_image_files(dir, &unreadable);
  const char* how_to_skip = " (set data.on_bad_file: skip to skip unreadable files and folders)";
  if (!unreadable.empty() && o.on_bad_file == "fail") throw Error(unreadable.front() + how_to_skip);
  for (const std::string& why : unreadable) log::warn(c10::str("skipping: ", why));
  if (files.empty()) {
    throw Error(c10::str("image folder '", dir, "' contains no .jpg/.jpeg/.png files"));
  }
  const auto n = static_cast<int64_t>(files.size());
  FolderChunks out;
  std::vector<std::string> names;  // class name of each kept image
  std::string first_file;
  std::vector<int64_t> shape;
  // One chunk buffer, allocated once (a fresh 48 MB tensor per chunk costs a page fault per
  // 4 KiB), handed to the sink of chunk k on a thread of its own while chunk k+1 decodes into
  // tensors of its own; the buffer is refilled only after that sink has returned.
  at::Tensor buf;
  std::future<void> pending;
  for (int64_t begin = 0; begin < n; begin += chunk) {
    const int64_t end = std::min(n, begin + chunk);
    const auto count = static_cast<size_t>(end - begin);
    std::vector<at::Tensor> images(count);
    std::vector<std::string> errors(count);
    std::atomic<size_t> next{0};
    auto work = [&] {
      for (size_t i = next++; i < count; i = next++) {
        try {
          images[i] = read_folder_image(files[begin + i], o);
        } catch (const std::exception& e) {
          errors[i] = e.what();
        }
      }
    };
    std::vector<std::thread> threads;
    for (int t = 1; t < std::max(1, o.num_threads); ++t) threads.emplace_back(work);
    work();
    for (std::thread& t : threads) t.join();

    std::vector<at::Tensor> kept;
    kept.reserve(count);
    for (size_t i = 0; i < count; ++i) {
      const std::string& file = files[begin + i];
      if (!errors[i].empty()) {
        if (o.on_bad_file == "fail") throw Error(errors[i] + how_to_skip);
        log::warn(c10::str("skipping unreadable image: ", errors[i]));
        ++out.skipped;
        continue;
      }
      if (shape.empty()) {
        shape = images[i].sizes().vec();
        first_file = file;
      } else if (images[i].sizes() != at::IntArrayRef(shape)) {
        throw Error(c10::str("image '", file, "' is ", images[i].sizes(), " but '", first_file,
                             "' is ", at::IntArrayRef(shape),
                             "; set data.image_size to resize them to one size"));
      }
      if (o.labels != "none") names.push_back(class_name(file, dir, o.labels));
      kept.push_back(std::move(images[i]));
    }
    images.clear();
    if (kept.empty()) continue;
    out.images += static_cast<int64_t>(kept.size());
    if (pending.valid()) pending.get();  // the previous chunk is written; the buffer is free
    if (!buf.defined()) {
      std::vector<int64_t> size{std::min(chunk, n)};
      size.insert(size.end(), shape.begin(), shape.end());
      buf = at::empty(size, at::kByte);
    }
    at::Tensor batch = buf.narrow(0, 0, static_cast<int64_t>(kept.size()));
    at::stack_out(batch, kept);
    kept.clear();
    pending = std::async(std::launch::async, [&sink, batch, end, n] { sink(batch, end, n); });
  }
  if (pending.valid()) pending.get();
  const int64_t bad_files = out.skipped;
  out.skipped += static_cast<int64_t>(unreadable.size());
  if (out.skipped > 0) {
    log::warn(c10::str("image folder '", dir, "': skipped ", out.skipped, " unreadable ",
                       out.skipped == 1 ? "entry" : "entries", " (", unreadable.size(),
                       " folders or links, ", bad_files, " image files); read ", out.images,
                       " images"));
  }
  if (out.images == 0) throw Error(c10::str("image folder '", dir, "': no readable images"));
  if (o.labels != "none") {
    std::map<std::string, int64_t> ids;
    for (const std::string& s : names) ids.emplace(s, 0);
    int64_t k = 0;
    for (auto& [name, id] : ids) {
      id = k++;
      out.class_names.push_back(name);
    }
    out.labels = at::empty({static_cast<int64_t>(names.size())}, at::kLong);
    int64_t* p = out.labels.data_ptr<int64_t>();
    for (size_t i = 0; i < names.size(); ++i) p[i] = ids[names[i]];
  }
  return out;
}

}  // namespace dmtrain::data
