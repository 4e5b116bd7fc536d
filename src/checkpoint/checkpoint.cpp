#include "dmtrain/checkpoint/checkpoint.hpp"

#include <c10/util/Exception.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <mutex>
#include <sstream>
#include <thread>
#include <tuple>

#include "dmtrain/util/checked_write.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/file_hash.hpp"
#include "dmtrain/util/log.hpp"

namespace dmtrain::checkpoint {
namespace {

namespace fs = std::filesystem;
constexpr const char* kManifest = "COMMITTED";

std::mutex g_hook_mutex;
std::function<void(const std::string&)> g_write_hook;

[[noreturn]] void fail(const std::string& what, const fs::path& p, int err) {
  throw Error("cannot " + what + " '" + p.string() + "': " + std::strerror(err));
}

void check(const std::error_code& ec, const std::string& what, const fs::path& p) {
  if (ec) throw Error("cannot " + what + " '" + p.string() + "': " + ec.message());
}

// fsync, checked: a full disk or a failing device can report only here (NFS, delayed
// allocation), and a checkpoint committed on a lost write would be trusted.
void fsync_path(const fs::path& p) {
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("open", p, errno);
  if (::fsync(fd) != 0 && errno != EINVAL) {  // EINVAL: a folder on a file system without fsync
    const int err = errno;
    ::close(fd);
    fail("flush to disk", p, err);
  }
  ::close(fd);
}

uint64_t fnv1a(const fs::path& p) {
  return util::fnv1a64_file(p.string());
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

bool is_header(const std::string& line) {
  return line.rfind("format ", 0) == 0 || line.rfind("commit ", 0) == 0;
}

// The `commit <S>` header of a manifest; 0 when it has none.
int64_t read_commit(const fs::path& manifest) {
  std::ifstream in(manifest);
  for (std::string line; std::getline(in, line) && is_header(line);) {
    if (line.rfind("commit ", 0) == 0) return std::strtoll(line.c_str() + 7, nullptr, 10);
  }
  return 0;
}

void remove_folder(const fs::path& dir) {
  std::error_code ec;
  // The manifest first: a crash mid-delete then leaves an uncommitted folder.
  fs::remove(dir / kManifest, ec);
  fs::remove_all(dir, ec);
  check(ec, "remove", dir);
}

}  // namespace

void write_file_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("create", tmp, errno);
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      fail("write", tmp, err);
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    fail("write", tmp, err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    fail("rename '" + tmp + "' to", path, err);
  }
}

void set_checkpoint_write_hook(std::function<void(const std::string& path)> hook) {
  std::lock_guard<std::mutex> lock(g_hook_mutex);
  g_write_hook = std::move(hook);
}

CheckpointWriter::CheckpointWriter(const std::string& root, int64_t iteration) : root_(root) {
  final_ = (fs::path(root) / folder_name(iteration)).string();
  tmp_ = final_ + ".tmp";
  std::error_code ec;
  fs::create_directories(root, ec);
  check(ec, "create the checkpoint folder", root);
  fs::remove_all(tmp_, ec);  // a stale one left by a crash
  check(ec, "remove the stale checkpoint folder", tmp_);
  fs::create_directory(tmp_, ec);
  check(ec, "create the checkpoint folder", tmp_);
}

CheckpointWriter::~CheckpointWriter() {
  if (!committed_) discard();
}

void CheckpointWriter::discard() noexcept {
  std::error_code ec;
  fs::remove_all(tmp_, ec);
  if (renamed_) fs::remove_all(final_, ec);  // renamed but without its manifest: not trusted
}

std::string CheckpointWriter::path(const std::string& name) const {
  return (fs::path(tmp_) / name).string();
}

void CheckpointWriter::write(const std::string& name,
                             const std::function<void(const std::string& path)>& writer) {
  const std::string dest = path(name);
  {
    std::lock_guard<std::mutex> lock(g_hook_mutex);
    if (g_write_hook) g_write_hook(dest);
  }
  util::write_checked(dest, writer, "checkpoint file");
}

std::string CheckpointWriter::commit(int64_t format) {
  std::ostringstream manifest;
  if (format > 0) manifest << "format " << format << "\n";
  int64_t last = 0;
  for (const auto& c : list_checkpoints(root_)) last = std::max(last, c.commit);
  manifest << "commit " << last + 1 << "\n";
  std::vector<fs::path> files;
  std::error_code ec;
  for (fs::directory_iterator it(tmp_, ec), end; !ec && it != end; it.increment(ec)) {
    files.push_back(it->path());
  }
  check(ec, "list", tmp_);
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    fsync_path(f);
    const auto size = fs::file_size(f, ec);
    check(ec, "read the size of", f);
    manifest << f.filename().string() << " " << size << " " << std::hex << fnv1a(f) << std::dec
             << "\n";
  }
  fsync_path(tmp_);
  if (fs::exists(final_)) remove_folder(final_);
  fs::rename(tmp_, final_, ec);
  check(ec, "rename '" + tmp_ + "' to", final_);
  renamed_ = true;
  write_file_atomically((fs::path(final_) / kManifest).string(), manifest.str());
  fsync_path(final_);
  committed_ = true;  // the manifest is in place: from here on the checkpoint is trusted
  fsync_path(root_);
  return final_;
}

std::vector<CheckpointInfo> list_checkpoints(const std::string& root) {
  std::vector<CheckpointInfo> out;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return out;
  for (fs::directory_iterator e(root, ec), end; !ec && e != end; e.increment(ec)) {
    auto it = parse_folder(e->path().filename().string());
    std::error_code ignored;  // a folder that vanishes meanwhile (a prune) is no checkpoint
    if (it && e->is_directory(ignored) && fs::exists(e->path() / kManifest, ignored)) {
      out.push_back({*it, e->path().string(), read_commit(e->path() / kManifest)});
    }
  }
  check(ec, "list the checkpoints in", root);
  std::sort(out.begin(), out.end(), [](const CheckpointInfo& a, const CheckpointInfo& b) {
    return a.iteration < b.iteration;
  });
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
    // The header lines; file names never contain a space, so "format <N>" is no file.
    if (files == 0 && is_header(line)) continue;
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
      throw Error("checkpoint '" + dir + "': file '" + name +
                  "' does not match its hash (corrupt)");
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

const CheckpointInfo& newest_committed(const std::vector<CheckpointInfo>& all) {
  return *std::max_element(all.begin(), all.end(), [](const auto& a, const auto& b) {
    return std::tie(a.commit, a.iteration) < std::tie(b.commit, b.iteration);
  });
}

void prune_checkpoints(const std::string& root, int64_t keep_last, int64_t keep_every) {
  auto all = list_checkpoints(root);
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
    return std::tie(a.commit, a.iteration) < std::tie(b.commit, b.iteration);
  });
  const int64_t n = static_cast<int64_t>(all.size());
  for (int64_t i = 0; i < n - keep_last; ++i) {
    const auto& c = all[static_cast<size_t>(i)];
    if (keep_every > 0 && c.iteration % keep_every == 0) continue;
    remove_folder(c.dir);
  }
}

std::vector<std::string> remove_uncommitted(const std::string& root) {
  std::vector<std::string> out;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return out;
  for (fs::directory_iterator e(root, ec), end; !ec && e != end; e.increment(ec)) {
    const std::string name = e->path().filename().string();
    const bool tmp = name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0 &&
                     parse_folder(name.substr(0, name.size() - 4));
    std::error_code ignored;
    if (tmp || (parse_folder(name) && !fs::exists(e->path() / kManifest, ignored))) {
      out.push_back(e->path().string());
    }
  }
  check(ec, "list the checkpoints in", root);
  for (const auto& dir : out) {
    remove_folder(dir);
    log::warn("removed " + dir + ": an uncommitted checkpoint left by an interrupted save");
  }
  return out;
}

}  // namespace dmtrain::checkpoint
