// Parallel sweeps: the pure scheduling / ETA pieces and the fork/exec loop that runs the children
// (see dmtrain/sweep/sweep_executor.hpp for the contract).
#include "dmtrain/sweep/sweep_executor.hpp"

#include "dmtrain/sweep/run_status.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iomanip>
#include <sstream>
#include <thread>

#include "dmtrain/sweep/mps_daemon.hpp"
#include "dmtrain/util/log.hpp"
#include "dmtrain/util/process_env.hpp"

namespace dmtrain::sweep {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// The last SIGINT/SIGTERM the sweep got and has not handled yet (0 = none).
std::atomic<int> g_sweep_signal{0};
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs a lock-free int");
extern "C" void sweep_on_signal(int sig) {
  g_sweep_signal.store(sig);
}
constexpr int kHandled[] = {SIGINT, SIGTERM};

// execve needs a path: PATH is searched before fork, since the child of a multithreaded parent
// should make only async-signal-safe calls. "" when not found.
std::string resolve_program(const std::string& program) {
  if (program.find('/') != std::string::npos) return program;
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

int exit_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    return sig == SIGINT || sig == SIGTERM ? 130 : 128 + sig;  // killed before its handler: 130
  }
  return 1;
}

struct Child {
  size_t run = 0;
  pid_t pid = -1;
  Clock::time_point start;
  int64_t start_step = 0;
};

// Forks argv with CUDA_VISIBLE_DEVICES=gpu (unless "") and the NAME=value entries of `extra_env`
// in its environment, output to log_path (unless ""). Returns the pid, or -1 with `why` set.
// SIGINT/SIGTERM are blocked around fork so a signal always finds the child registered (the
// caller forwards it) or not yet forked.
pid_t spawn(std::vector<std::string> argv, const std::string& gpu,
            const std::vector<std::string>& extra_env, const std::string& log_path,
            std::string& why) {
  const std::string program = resolve_program(argv.at(0));
  if (program.empty()) {
    why = "program '" + argv[0] + "' not found in PATH";
    return -1;
  }
  std::vector<std::string> set = extra_env;
  if (!gpu.empty()) set.insert(set.begin(), "CUDA_VISIBLE_DEVICES=" + gpu);
  std::vector<std::string> env = util::environment_with(set);
  int log_fd = -1;
  if (!log_path.empty()) {
    log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) {
      why = "cannot open '" + log_path + "': " + std::strerror(errno);
      return -1;
    }
    std::string head = "==== dmtrain sweep:";
    for (const auto& a : argv) head += " " + shell_quote(a);
    for (size_t i = 0; i < set.size(); ++i) head += (i == 0 ? " (" : " ") + set[i];
    head += set.empty() ? "\n" : ")\n";
    const ssize_t wrote = ::write(log_fd, head.data(), head.size());  // a marker per attempt
    (void)wrote;
  }
  std::vector<char*> c_argv = util::c_strings(argv), c_env = util::c_strings(env);
  sigset_t block, old_mask;
  sigemptyset(&block);
  for (int s : kHandled) sigaddset(&block, s);
  ::pthread_sigmask(SIG_BLOCK, &block, &old_mask);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
#ifdef __linux__
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(1);  // the sweep died before prctl
#endif
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    for (int s : kHandled) ::sigaction(s, &dfl, nullptr);
    if (log_fd >= 0) {
      ::dup2(log_fd, STDOUT_FILENO);
      ::dup2(log_fd, STDERR_FILENO);
    }
    ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
    ::execve(program.c_str(), c_argv.data(), c_env.data());
    ::_exit(127);
  }
  const int fork_errno = errno;
  if (pid > 0) ::setpgid(pid, pid);  // also from here, so the group exists for a signal at once
  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  if (log_fd >= 0) ::close(log_fd);
  if (pid < 0) why = std::string("fork: ") + std::strerror(fork_errno);
  return pid;
}

void signal_group(pid_t pid, int sig) {
  if (::kill(-pid, sig) != 0) ::kill(pid, sig);  // setpgid may not have run yet
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace

int pick_gpu(const std::vector<int64_t>& running_per_gpu) {
  if (running_per_gpu.empty()) return -1;
  return static_cast<int>(std::min_element(running_per_gpu.begin(), running_per_gpu.end()) -
                          running_per_gpu.begin());
}

SweepScheduler::SweepScheduler(size_t runs, int64_t jobs, std::vector<std::string> gpus)
    : jobs_(std::max<int64_t>(1, jobs)),
      gpus_(std::move(gpus)),
      load_(gpus_.size(), 0),
      gpu_of_(runs, -1) {
  for (size_t i = 0; i < runs; ++i) waiting_.push_back(i);
}

std::optional<SweepScheduler::Start> SweepScheduler::next() {
  if (stopped_ || waiting_.empty() || running_ >= jobs_) return std::nullopt;
  Start s;
  s.run = waiting_.front();
  waiting_.pop_front();
  const int g = pick_gpu(load_);
  if (g >= 0) {
    ++load_[static_cast<size_t>(g)];
    gpu_of_[s.run] = g;
    s.gpu = gpus_[static_cast<size_t>(g)];
  }
  ++running_;
  return s;
}

void SweepScheduler::finished(size_t run) {
  if (const int g = gpu_of_.at(run); g >= 0) --load_[static_cast<size_t>(g)];
  gpu_of_[run] = -1;
  --running_;
}

std::vector<std::string> parse_gpu_list(const std::string& list) {
  std::vector<std::string> out;
  if (list == "none") return out;
  std::stringstream ss(list);
  for (std::string id; std::getline(ss, id, ',');) {
    id.erase(0, id.find_first_not_of(" \t"));
    id.erase(id.find_last_not_of(" \t") + 1);
    if (id.empty()) continue;
    if (id[0] == '-') break;
    out.push_back(id);
  }
  return out;
}

int64_t count_nvidia_smi_gpus(const std::string& output) {
  std::stringstream ss(output);
  int64_t n = 0;
  for (std::string line; std::getline(ss, line);) n += line.rfind("GPU ", 0) == 0;
  return n;
}

std::vector<std::string> visible_gpus() {
  if (const char* v = std::getenv("CUDA_VISIBLE_DEVICES")) return parse_gpu_list(v);
  int64_t n = 0;
  // nvidia-smi first: in a container /proc/driver/nvidia can list the host's GPUs too.
  if (FILE* p = ::popen("nvidia-smi -L 2>/dev/null", "r")) {
    std::string out;
    char buf[512];
    while (std::fgets(buf, sizeof buf, p)) out += buf;
    n = ::pclose(p) == 0 ? count_nvidia_smi_gpus(out) : 0;
  }
  std::error_code ec;
  if (n == 0 && fs::is_directory("/proc/driver/nvidia/gpus", ec)) {
    for (auto it = fs::directory_iterator("/proc/driver/nvidia/gpus", ec);
         !ec && it != fs::directory_iterator(); it.increment(ec)) {
      ++n;
    }
  }
  std::vector<std::string> ids;
  for (int64_t i = 0; i < n; ++i) ids.push_back(std::to_string(i));
  return ids;
}

double iteration_rate(int64_t start_step, int64_t step, double seconds) {
  if (step <= start_step || !(seconds > 0)) return NAN;
  return static_cast<double>(step - start_step) / seconds;
}

double sweep_eta_seconds(int64_t remaining_iterations, const std::vector<double>& running_rates) {
  if (remaining_iterations <= 0) return 0;
  double sum = 0;
  for (const double r : running_rates) {
    if (std::isfinite(r) && r > 0) sum += r;
  }
  return sum > 0 ? static_cast<double>(remaining_iterations) / sum : NAN;
}

std::string format_eta(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t t = std::llround(seconds);
  if (t < 60) return std::to_string(t) + "s";
  // The larger unit, then the next one as two digits: 7m05s, 3h12m, 2d03h.
  const int64_t big = t < 3600 ? 60 : t < 86400 ? 3600 : 86400;
  const int64_t small = big == 60 ? 1 : big == 3600 ? 60 : 3600;
  const char* units = big == 60 ? "ms" : big == 3600 ? "hm" : "dh";
  std::ostringstream os;
  os << t / big << units[0] << std::setw(2) << std::setfill('0') << t % big / small << units[1];
  return os.str();
}

std::string progress_line(const SweepCounts& c, double eta_seconds) {
  std::ostringstream os;
  os << "sweep: " << c.done << "/" << c.total << " done, " << c.running << " running, " << c.waiting
     << " waiting, " << c.failed << " failed";
  if (c.interrupted > 0) os << ", " << c.interrupted << " interrupted";
  os << ", ETA " << format_eta(eta_seconds);
  return os.str();
}

int run_sweep_parallel(const std::vector<SweepRun>& runs, const SweepArgv& argv,
                       const ParallelSweepOptions& options) {
  const auto print = options.print ? options.print : [](const std::string& s) {
    std::fputs(s.c_str(), stderr);
    std::fflush(stderr);
  };
  SweepCounts counts;
  counts.total = static_cast<int64_t>(runs.size());
  std::vector<size_t> todo;            // positions in `runs` still to train
  std::vector<int64_t> logged_before;  // their last logged step before this sweep (for the ETA)
  for (size_t i = 0; i < runs.size(); ++i) {
    if (unfinished_reason(runs[i].run_dir).empty()) {
      log::info("sweep: run " + std::to_string(runs[i].index) + " (" + runs[i].name +
                ") is already done (final checkpoint and EMA files verified), skipped");
      ++counts.done;
    } else {
      todo.push_back(i);
      logged_before.push_back(last_logged_step(runs[i].run_dir));
    }
  }
  SweepScheduler sched(todo.size(), options.jobs, options.gpus);

  // Progress: on a terminal the line is cleared before a log message and redrawn after.
  bool shown = false, printed = false;
  Clock::time_point last_print = Clock::now();
  std::vector<Child> children;
  auto show = [&](bool final) {
    counts.running = sched.running();
    counts.waiting = static_cast<int64_t>(sched.waiting().size());
    int64_t remaining = 0;
    std::vector<double> rates;
    for (const auto& c : children) {
      const SweepRun& r = runs[todo[c.run]];
      const int64_t step = last_logged_step(r.run_dir);
      remaining += std::max<int64_t>(0, r.iterations - step);
      rates.push_back(iteration_rate(c.start_step, step, seconds_since(c.start)));
    }
    if (!sched.stopped()) {
      for (const size_t w : sched.waiting()) {
        remaining += std::max<int64_t>(0, runs[todo[w]].iterations - logged_before[w]);
      }
    }
    const std::string line = progress_line(counts, sweep_eta_seconds(remaining, rates));
    if (options.tty) {
      print("\r\033[K" + line + (final ? "\n" : ""));
      shown = !final;
    } else {
      print(line + "\n");
    }
    printed = true;
    last_print = Clock::now();
  };
  auto note = [&](void (*level)(const std::string&), const std::string& msg) {
    if (shown) print("\r\033[K");
    shown = false;
    level(msg);
  };

  struct sigaction sa {
  }, old[2];
  sa.sa_handler = sweep_on_signal;
  sa.sa_flags = SA_RESTART;  // file reads between polls need not see EINTR
  sigemptyset(&sa.sa_mask);
  g_sweep_signal.store(0);
  for (int i = 0; i < 2; ++i) ::sigaction(kHandled[i], &sa, &old[i]);

  // Started with the handlers in place: a signal meanwhile stops the sweep before any child.
  MpsDaemon mps;  // stopped below once every child has exited, or by its destructor
  std::vector<std::string> child_env;
  if (!options.mps_dir.empty() && options.jobs <= 1) {
    log::info("sweep: MPS not started: it only matters for runs sharing a GPU (--jobs N > 1)");
  } else if (!options.mps_dir.empty() && !todo.empty() && mps.start(options.mps_dir)) {
    child_env = mps.client_env();
  }

  int first_failure = 0;
  bool interrupted = false;
  for (;;) {
    bool event = false;
    if (const int sig = g_sweep_signal.exchange(0)) {
      if (!interrupted) {
        note(log::warn, "sweep: signal " + std::to_string(sig) + ": stopping " +
                            std::to_string(children.size()) +
                            " running run(s) at their next checkpoint; re-launch to continue");
      }
      interrupted = true;
      sched.stop();
      for (const auto& c : children) signal_group(c.pid, SIGINT);
      event = true;
    }
    while (auto start = sched.next()) {
      const SweepRun& r = runs[todo[start->run]];
      std::string why;
      std::string log_path;
      pid_t pid = -1;
      try {
        if (options.child_logs) {
          fs::create_directories(r.run_dir);
          log_path = (fs::path(r.run_dir) / "sweep_child.log").string();
        }
        pid = spawn(argv(r), start->gpu, child_env, log_path, why);
      } catch (const std::exception& e) {
        why = e.what();
      }
      event = true;
      if (pid < 0) {
        note(log::error, "sweep: run " + r.name + " could not start: " + why);
        sched.finished(start->run);
        ++counts.failed;
        if (first_failure == 0) first_failure = 1;
        continue;
      }
      children.push_back({start->run, pid, Clock::now(), logged_before[start->run]});
      note(log::info, "sweep: run " + std::to_string(r.index) + " (" + r.name + ") -> " +
                          r.run_dir + (start->gpu.empty() ? "" : " on GPU " + start->gpu) +
                          (log_path.empty() ? "" : ", log " + log_path));
    }
    for (size_t k = 0; k < children.size();) {
      int status = 0;
      if (::waitpid(children[k].pid, &status, WNOHANG) != children[k].pid) {
        ++k;
        continue;
      }
      const int code = exit_code(status);
      const SweepRun& r = runs[todo[children[k].run]];
      sched.finished(children[k].run);
      children.erase(children.begin() + static_cast<std::ptrdiff_t>(k));
      event = true;
      if (code == 0) {
        ++counts.done;
        note(log::info, "sweep: run " + r.name + " finished");
      } else if (code == 130) {
        ++counts.interrupted;
        if (!interrupted) {
          note(log::warn, "sweep: run " + r.name + " was interrupted; starting no new runs");
        }
        interrupted = true;
        sched.stop();
      } else {
        ++counts.failed;
        if (first_failure == 0) first_failure = code;
        note(log::error, "sweep: run " + r.name + " failed with exit code " + std::to_string(code) +
                             "; the others go on");
      }
    }
    if (children.empty() && (sched.waiting().empty() || sched.stopped())) break;
    const double since = seconds_since(last_print);
    if (options.tty ? event || since >= options.refresh_seconds
                    : !printed || since >= options.plain_seconds) {
      show(false);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  show(true);
  mps.stop();  // with the sweep's signal handlers still in place
  for (int i = 0; i < 2; ++i) ::sigaction(kHandled[i], &old[i], nullptr);
  return interrupted ? 130 : first_failure;
}

}  // namespace dmtrain::sweep
