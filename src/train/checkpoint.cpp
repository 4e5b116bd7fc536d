#include "dmtrain/train/checkpoint.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "dmtrain/util/error.hpp"
#include "dmtrain/util/log.hpp"

namespace dmtrain::train {
namespace {

namespace fs = std::filesystem;
constexpr const char* kManifest = "COMMITTED";

void fsync_path(const fs::path& p) {
  int fd = ::open(p.c_str(), O_RDONLY);
  if (fd < 0) throw Error("cannot open '" + p.string() + "' to flush it to disk");
  ::fsync(fd);
  ::close(fd);
}

uint64_t fnv1a(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw Error("cannot read '" + p.string() + "'");
  uint64_t h = 1469598103934665603ull;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const std::streamsize n = in.gcount();
    for (std::streamsize i = 0; i < n; ++i) {
      h ^= static_cast<unsigned char>(buf[static_cast<size_t>(i)]);
      h *= 1099511628211ull;
    }
  }
  return h;
}

std::string folder_name(int64_t iteration) {
  std::ostringstream os;
  os << "iter_" << std::setw(12) << std::setfill('0') << iteration;
  return os.str();
}

std::optional<int64_t> parse_folder(const std::string& name) {
  if (name.size() != 17 || name.rfind("iter_", 0) != 0) return std::nullopt;
  for (size_t i = 5; i < name.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(name[i]))) return std::nullopt;
  }
  return std::stoll(name.substr(5));
}

}  // namespace

CheckpointWriter::CheckpointWriter(const std::string& root, int64_t iteration) : root_(root) {
  final_ = (fs::path(root) / folder_name(iteration)).string();
  tmp_ = final_ + ".tmp";
  fs::create_directories(root);
  fs::remove_all(tmp_);
  fs::create_directories(tmp_);
}

std::string CheckpointWriter::path(const std::string& name) const {
  return (fs::path(tmp_) / name).string();
}

std::string CheckpointWriter::commit(int64_t format) {
  std::ostringstream manifest;
  if (format > 0) manifest << "format " << format << "\n";
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(tmp_)) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    fsync_path(f);
    manifest << f.filename().string() << " " << fs::file_size(f) << " " << std::hex << fnv1a(f)
             << std::dec << "\n";
  }
  fsync_path(tmp_);
  if (fs::exists(final_)) fs::remove_all(final_);
  fs::rename(tmp_, final_);
  const fs::path m = fs::path(final_) / kManifest;
  const fs::path mtmp = fs::path(final_) / (std::string(kManifest) + ".tmp");
  {
    std::ofstream out(mtmp);
    out << manifest.str();
    if (!out.flush()) throw Error("cannot write checkpoint manifest '" + mtmp.string() + "'");
  }
  fsync_path(mtmp);
  fs::rename(mtmp, m);
  fsync_path(final_);
  fsync_path(root_);
  return final_;
}

std::vector<CheckpointInfo> list_checkpoints(const std::string& root) {
  std::vector<CheckpointInfo> out;
  if (!fs::is_directory(root)) return out;
  for (const auto& e : fs::directory_iterator(root)) {
    auto it = parse_folder(e.path().filename().string());
    if (it && e.is_directory() && fs::exists(e.path() / kManifest)) {
      out.push_back({*it, e.path().string()});
    }
  }
  std::sort(out.begin(), out.end(),
            [](const CheckpointInfo& a, const CheckpointInfo& b) { return a.iteration < b.iteration; });
  return out;
}

void verify_checkpoint(const std::string& dir) {
  const fs::path m = fs::path(dir) / kManifest;
  std::ifstream in(m);
  if (!in) throw Error("checkpoint '" + dir + "' is not committed (no " + kManifest + " manifest)");
  std::string name;
  uintmax_t size = 0;
  std::string hash;
  int files = 0;
  for (std::string line; std::getline(in, line);) {
    // The optional version line; file names never contain a space, so "format <N>" is no file.
    if (line.rfind("format ", 0) == 0 && files == 0) continue;
    std::istringstream fields(line);
    if (line.empty()) continue;
    if (!(fields >> name >> size >> hash)) {
      throw Error("checkpoint '" + dir + "': unreadable manifest line '" + line + "' (corrupt)");
    }
    ++files;
    const fs::path f = fs::path(dir) / name;
    if (!fs::exists(f)) throw Error("checkpoint '" + dir + "': file '" + name + "' is missing");
    if (fs::file_size(f) != size) {
      throw Error("checkpoint '" + dir + "': file '" + name + "' has " +
                  std::to_string(fs::file_size(f)) + " bytes, the manifest says " +
                  std::to_string(size) + " (truncated or overwritten)");
    }
    std::ostringstream h;
    h << std::hex << fnv1a(f);
    if (h.str() != hash) {
      throw Error("checkpoint '" + dir + "': file '" + name + "' does not match its hash (corrupt)");
    }
  }
  if (files == 0) throw Error("checkpoint '" + dir + "': empty or unreadable manifest");
}

int64_t checkpoint_format(const std::string& dir) {
  std::ifstream in(fs::path(dir) / kManifest);
  std::string word;
  int64_t format = 0;
  if (in >> word >> format && word == "format") return format;
  return 1;
}

std::optional<CheckpointInfo> latest_valid_checkpoint(const std::string& root) {
  auto all = list_checkpoints(root);
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    try {
      verify_checkpoint(it->dir);
      return *it;
    } catch (const Error& e) {
      log::warn(std::string(e.what()) + "; skipping it and trying an older checkpoint");
    }
  }
  return std::nullopt;
}

void prune_checkpoints(const std::string& root, int64_t keep_last, int64_t keep_every) {
  auto all = list_checkpoints(root);
  const int64_t n = static_cast<int64_t>(all.size());
  for (int64_t i = 0; i < n - keep_last; ++i) {
    const auto& c = all[static_cast<size_t>(i)];
    if (keep_every > 0 && c.iteration % keep_every == 0) continue;
    // Remove the manifest first: a crash mid-delete then leaves an uncommitted folder.
    fs::remove(fs::path(c.dir) / kManifest);
    fs::remove_all(c.dir);
  }
}

}  // namespace dmtrain::train
