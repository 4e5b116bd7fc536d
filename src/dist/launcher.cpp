#include "dmtrain/dist/launcher.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <cerrno>
#include <cstdlib>
#include <chrono>
#include <cstring>
#include <sstream>
#include <thread>

#include "dmtrain/util/error.hpp"
#include "dmtrain/util/log.hpp"

extern char** environ;

namespace dmtrain::dist {
namespace {

// Last signal received and not yet forwarded (0 = none). Written by the handler only.
volatile sig_atomic_t g_pending_signal = 0;

extern "C" void on_signal(int signo) {
  g_pending_signal = signo;
}

constexpr int kForwarded[] = {SIGINT, SIGTERM, SIGUSR1};

// execvp's PATH search, done before fork (the child of a multithreaded parent should only make
// async-signal-safe calls).
std::string resolve(const std::string& program) {
  if (program.find('/') != std::string::npos) return program;
  const char* path = ::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  throw Error("dmtrain --nproc-per-node: program '" + program + "' not found in PATH");
}

void signal_group(pid_t pid, int signo) {
  // The child is its group leader; fall back to the pid if setpgid had not run yet.
  if (::kill(-pid, signo) != 0) ::kill(pid, signo);
}

int exit_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

}  // namespace

std::vector<std::string> strip_nproc_flag(const std::vector<std::string>& argv) {
  std::vector<std::string> out;
  for (size_t i = 0; i < argv.size(); ++i) {
    if (i > 0 && argv[i] == "--nproc-per-node") {
      ++i;  // and its value
      continue;
    }
    if (i > 0 && argv[i].rfind("--nproc-per-node=", 0) == 0) continue;
    out.push_back(argv[i]);
  }
  return out;
}

int pick_free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw Error(std::string("pick_free_port: socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    throw Error("pick_free_port: bind 127.0.0.1:0: " + why);
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

int launch_local(int nproc, const std::vector<std::string>& argv, int master_port,
                 double grace_seconds) {
  if (nproc < 1) throw Error("--nproc-per-node=" + std::to_string(nproc) + ": expected >= 1");
  if (argv.empty() || argv[0].empty()) throw Error("launch_local: empty command line");
  if (master_port < 0 || master_port > 65535)
    throw Error("MASTER_PORT=" + std::to_string(master_port) + ": expected 0 (pick) or 1..65535");
  const int port = master_port == 0 ? pick_free_port() : master_port;
  const std::vector<std::string> args = strip_nproc_flag(argv);
  const std::string program = resolve(args[0]);

  // Environment per rank: the parent's, minus the keys we set, plus ours.
  const char* keys[] = {"RANK",       "LOCAL_RANK",  "WORLD_SIZE",  "LOCAL_WORLD_SIZE",
                        "GROUP_RANK", "MASTER_ADDR", "MASTER_PORT", "NCCL_NVLS_ENABLE"};
  // NVLink multicast off unless the user chose: a value set in the environment is theirs.
  const char* user_nvls = std::getenv("NCCL_NVLS_ENABLE");
  const std::string nvls = user_nvls != nullptr ? user_nvls : "0";
  std::vector<std::string> base;
  for (char** e = environ; e && *e; ++e) {
    const std::string kv = *e;
    bool ours = false;
    for (const char* k : keys) ours |= kv.rfind(std::string(k) + "=", 0) == 0;
    if (!ours) base.push_back(kv);
  }
  std::vector<std::vector<std::string>> envs(nproc, base);
  for (int r = 0; r < nproc; ++r) {
    const std::string n = std::to_string(nproc), rs = std::to_string(r);
    for (const std::string& kv :
         {"RANK=" + rs, "LOCAL_RANK=" + rs, "WORLD_SIZE=" + n, "LOCAL_WORLD_SIZE=" + n,
          std::string("GROUP_RANK=0"), std::string("MASTER_ADDR=127.0.0.1"),
          "MASTER_PORT=" + std::to_string(port), "NCCL_NVLS_ENABLE=" + nvls})
      envs[r].push_back(kv);
  }
  auto cstrs = [](std::vector<std::string>& v) {
    std::vector<char*> p;
    for (auto& s : v) p.push_back(s.data());
    p.push_back(nullptr);
    return p;
  };
  std::vector<std::string> args_copy = args;
  std::vector<char*> c_argv = cstrs(args_copy);

  // Install handlers before forking so no signal is lost in between.
  g_pending_signal = 0;
  struct sigaction sa {
  }, old[3];
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  for (int i = 0; i < 3; ++i) ::sigaction(kForwarded[i], &sa, &old[i]);

  log::info(c10::str("launching ", nproc, " local workers: ", program, " (MASTER_ADDR=127.0.0.1 ",
                     "MASTER_PORT=", port, ", NCCL_NVLS_ENABLE=", nvls, ")"));
  const pid_t parent = ::getpid();
  std::vector<pid_t> pids(nproc, -1);
  std::vector<bool> alive(nproc, false);
  int failure = 0;  // first non-zero exit code
  for (int r = 0; r < nproc; ++r) {
    std::vector<char*> c_env = cstrs(envs[r]);
    const pid_t pid = ::fork();
    if (pid < 0) {
      failure = 1;
      log::error(std::string("launch_local: fork: ") + std::strerror(errno));
      break;
    }
    if (pid == 0) {
      ::setpgid(0, 0);
#ifdef __linux__
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(1);  // the launcher died before prctl
#endif
      for (int i = 0; i < 3; ++i) ::sigaction(kForwarded[i], &old[i], nullptr);
      struct sigaction dfl {};
      dfl.sa_handler = SIG_DFL;
      sigemptyset(&dfl.sa_mask);
      for (int s : kForwarded) ::sigaction(s, &dfl, nullptr);
      ::execve(program.c_str(), c_argv.data(), c_env.data());
      ::_exit(127);
    }
    ::setpgid(pid, pid);  // also from the parent, so signal_group works at once
    pids[r] = pid;
    alive[r] = true;
  }

  using Clock = std::chrono::steady_clock;
  bool killing = failure != 0;
  Clock::time_point kill_deadline =
      Clock::now() +
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(grace_seconds));
  if (killing)
    for (int r = 0; r < nproc; ++r)
      if (alive[r]) signal_group(pids[r], SIGTERM);
  bool hard_killed = false;
  int remaining = 0;
  for (bool a : alive) remaining += a;
  while (remaining > 0) {
    if (const int s = g_pending_signal) {
      g_pending_signal = 0;
      for (int r = 0; r < nproc; ++r)
        if (alive[r]) signal_group(pids[r], s);
    }
    for (int r = 0; r < nproc; ++r) {
      if (!alive[r]) continue;
      int status = 0;
      const pid_t got = ::waitpid(pids[r], &status, WNOHANG);
      if (got != pids[r]) continue;
      alive[r] = false;
      --remaining;
      const int code = exit_code(status);
      if (code != 0 && failure == 0) {
        failure = code;
        log::error(c10::str("worker rank ", r, " (pid ", pids[r], ") exited with code ", code,
                            "; stopping the other workers"));
        killing = true;
        kill_deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(grace_seconds));
        for (int o = 0; o < nproc; ++o)
          if (alive[o]) signal_group(pids[o], SIGTERM);
      }
    }
    if (killing && !hard_killed && Clock::now() >= kill_deadline) {
      hard_killed = true;
      for (int r = 0; r < nproc; ++r)
        if (alive[r]) signal_group(pids[r], SIGKILL);
    }
    if (remaining > 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (int i = 0; i < 3; ++i) ::sigaction(kForwarded[i], &old[i], nullptr);
  return failure;
}

}  // namespace dmtrain::dist
