// Implementation of dmtrain/sweep/mps_daemon.hpp: nvidia-cuda-mps-control run by posix_spawnp.
#include "dmtrain/sweep/mps_daemon.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "dmtrain/util/log.hpp"
#include "dmtrain/util/process_env.hpp"

namespace dmtrain::sweep {
namespace {

namespace fs = std::filesystem;
constexpr const char* kControl = "nvidia-cuda-mps-control";

// The last non-empty line of `path` ("" when none).
std::string last_line(const std::string& path) {
  std::ifstream in(path);
  std::string line, last;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") != std::string::npos) last = line;
  }
  return last;
}

// Runs `nvidia-cuda-mps-control args` with `env` (the two MPS variables) in place of the
// environment's, `input` on its stdin, its output appended to `output`. Returns "" when it
// exited 0, else why not.
std::string run_control(const std::vector<std::string>& args, const std::vector<std::string>& env,
                        const std::string& input, const std::string& output) {
  std::vector<std::string> argv{kControl};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<std::string> envp = util::environment_with(env);
  // The input is written before the program starts (it fits the pipe's buffer), so a program
  // that exits without reading it cannot SIGPIPE the sweep.
  int fds[2] = {-1, -1};
  if (::pipe2(fds, O_CLOEXEC) != 0) return std::string("pipe: ") + std::strerror(errno);
  const bool wrote =
      ::write(fds[1], input.data(), input.size()) == static_cast<ssize_t>(input.size());
  ::close(fds[1]);
  if (!wrote) {
    ::close(fds[0]);
    return "cannot write its input to a pipe";
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[0], STDIN_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, output.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);  // a terminal's Ctrl-C stays out
  posix_spawnattr_setpgroup(&attr, 0);
  std::vector<char*> c_argv = util::c_strings(argv), c_env = util::c_strings(envp);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, kControl, &actions, &attr, c_argv.data(), c_env.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(fds[0]);
  if (rc == ENOENT) return std::string(kControl) + " not found on PATH";
  if (rc != 0) return std::string("cannot run ") + kControl + ": " + std::strerror(rc);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
  std::string why =
      std::string(kControl) + " " + (args.empty() ? "" : args[0] + " ") +
      (WIFEXITED(status) ? "exited with code " + std::to_string(WEXITSTATUS(status))
                         : "was killed by signal " + std::to_string(WTERMSIG(status)));
  const std::string said = last_line(output);
  return said.empty() ? why : why + ": " + said;
}

}  // namespace

MpsDaemon::~MpsDaemon() {
  stop();
}

bool MpsDaemon::start(const std::string& dir) {
  if (started()) return true;
  std::error_code ec;
  const fs::path root = fs::absolute(dir, ec);
  const std::string pipe = (root / "pipe").string(), logs = (root / "log").string();
  if (!ec) fs::create_directories(pipe, ec);
  if (!ec) fs::create_directories(logs, ec);
  std::string why;
  if (ec) {
    why = "cannot create " + pipe + " and " + logs + ": " + ec.message();
  } else {
    const std::string output = logs + "/control_output.log";
    std::ofstream{output};  // this start's output only, for the cause of a failure
    why = run_control({"-d"}, {"CUDA_MPS_PIPE_DIRECTORY=" + pipe, "CUDA_MPS_LOG_DIRECTORY=" + logs},
                      "", output);
  }
  if (!why.empty()) {
    log::warn("MPS: the control daemon did not start (" + why +
              "); the runs share the GPU by time-slicing");
    return false;
  }
  pipe_dir_ = pipe;
  log_dir_ = logs;
  log::info("MPS: control daemon started, pipes in " + pipe_dir_);
  return true;
}

std::vector<std::string> MpsDaemon::client_env() const {
  if (!started()) return {};
  return {"CUDA_MPS_PIPE_DIRECTORY=" + pipe_dir_, "CUDA_MPS_LOG_DIRECTORY=" + log_dir_};
}

void MpsDaemon::stop() {
  if (!started()) return;
  const std::string why = run_control({}, client_env(), "quit\n", log_dir_ + "/control_output.log");
  if (why.empty()) {
    log::info("MPS: control daemon stopped");
  } else {
    log::warn("MPS: stopping the control daemon failed (" + why + "); stop it with `echo quit | " +
              "CUDA_MPS_PIPE_DIRECTORY=" + pipe_dir_ + " " + kControl + "`");
  }
  pipe_dir_.clear();
  log_dir_.clear();
}

}  // namespace dmtrain::sweep
