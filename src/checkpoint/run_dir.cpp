// Implementation of dmtrain/checkpoint/run_dir.hpp.
#include "dmtrain/checkpoint/run_dir.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <vector>

#include "dmtrain/checkpoint/checkpoint.hpp"
#include "dmtrain/util/error.hpp"
#include "dmtrain/util/log.hpp"

namespace dmtrain::checkpoint {
namespace {

namespace fs = std::filesystem;

std::string checkpoint_root(const std::string& run_dir) {
  return (fs::path(run_dir) / "checkpoints").string();
}

std::string utc_stamp() {
  char buf[32];
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

bool belongs_to_a_run(const std::string& name) {
  const auto ends = [&](const std::string& s) {
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  if (name == "checkpoints" || name == "metrics.jsonl" || name == "samples" ||
      name == "config.yaml" || name == "tensorboard" || name == "posthoc_ema") {
    return true;
  }
  // ema_<rate>.pt with its checksum ema_<rate>.pt.fnv
  return (name.rfind("train", 0) == 0 && ends(".log")) || name.rfind("ema_", 0) == 0;
}

}  // namespace

void create_run_dir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error("cannot create the run directory '" + dir + "': " + ec.message());
}

void check_appendable(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw Error("cannot open '" + path + "' for writing: " + std::strerror(errno));
  ::close(fd);
}

void prepare_run_dir(const std::string& run_dir, const RunStart& options, bool main) {
  if (options.restart && !options.resume.empty()) {
    throw Error("--restart starts the run afresh; it cannot be combined with --resume");
  }
  if (options.restart) {
    if (!main) return;
    const std::string moved = move_previous_run(run_dir);
    if (!moved.empty()) log::warn("--restart: the previous run of " + run_dir + " is in " + moved);
    return;
  }
  if (!options.resume.empty()) return;
  const auto all = list_checkpoints(checkpoint_root(run_dir));
  if (all.empty()) return;
  throw Error("run dir " + run_dir + " already holds " + std::to_string(all.size()) +
              " committed checkpoint(s), the newest " + newest_committed(all).dir +
              "; a fresh start would mix with them. Pass --resume auto to continue that run, or "
              "--restart to move it aside into " +
              run_dir + "/previous-<time>/ and start anew");
}

void check_resumed(const std::string& run_dir, const RunStart& options, int64_t iteration) {
  // A checkpoint is written after an iteration, never at 0: 0 here means none was loaded.
  if (options.resume != "auto" || iteration > 0) return;
  const auto all = list_checkpoints(checkpoint_root(run_dir));
  if (all.empty()) return;
  throw Error("--resume auto: none of the " + std::to_string(all.size()) +
              " committed checkpoint(s) in " + checkpoint_root(run_dir) +
              " verifies (the newest, " + newest_committed(all).dir +
              "; see the warnings above), so there is nothing to "
              "continue from. Pass --resume <checkpoint folder> to pick one, or --restart to "
              "move them aside into " +
              run_dir + "/previous-<time>/ and start anew");
}

std::string move_previous_run(const std::string& run_dir) {
  std::vector<fs::path> items;
  std::error_code ec;
  for (fs::directory_iterator e(run_dir, ec), end; !ec && e != end; e.increment(ec)) {
    if (belongs_to_a_run(e->path().filename().string())) items.push_back(e->path());
  }
  if (ec) throw Error("cannot list the run directory '" + run_dir + "': " + ec.message());
  if (items.empty()) return "";
  fs::path dest = fs::path(run_dir) / ("previous-" + utc_stamp());
  for (int i = 2; fs::exists(dest); ++i) {  // two restarts in one second
    dest = fs::path(run_dir) / ("previous-" + utc_stamp() + "-" + std::to_string(i));
  }
  fs::create_directory(dest, ec);
  if (ec) throw Error("cannot create '" + dest.string() + "': " + ec.message());
  // Renames within the run dir: one file system, nothing copied, nothing deleted.
  for (const auto& p : items) {
    fs::rename(p, dest / p.filename(), ec);
    if (ec) {
      throw Error("--restart: cannot move '" + p.string() + "' into '" + dest.string() +
                  "': " + ec.message() + " (what was moved before is there)");
    }
  }
  return dest.string();
}

}  // namespace dmtrain::checkpoint
