// `depot serve` as a child process (see depot_process.hpp).
#include "tests/support/depot_process.hpp"

#include <fcntl.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

namespace depot::testing {

DepotProcess::DepotProcess(const std::filesystem::path& directory,
                           std::vector<std::string> arguments) {
  log = directory / "depot.log";
  pid = fork();
  if (pid == 0) {
    if (chdir(directory.c_str()) != 0) _exit(127);
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 2);
    close_range(3, ~0U, 0);  // no inherited copy of a test server's or another replica's sockets
    std::vector<char*> argv = {const_cast<char*>(DEPOT_BINARY), const_cast<char*>("serve")};
    for (auto& argument : arguments) argv.push_back(argument.data());
    argv.push_back(nullptr);
    execv(DEPOT_BINARY, argv.data());
    _exit(127);
  }
  for (int i = 0; i < 100 && port == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::ifstream lines(log);
    std::string line;
    while (std::getline(lines, line)) {
      auto entry = nlohmann::json::parse(line, nullptr, false);
      if (entry.is_object() && entry.value("msg", "") == "listening")
        port = entry["port"].get<uint16_t>();
    }
  }
}

int DepotProcess::wait_exit() {
  int status = 0;
  waitpid(pid, &status, 0);
  pid = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

DepotProcess::~DepotProcess() {
  if (pid > 0) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
}

namespace {
std::string read_all(int fd) {
  std::string text;
  char buffer[4096];
  for (ssize_t n; (n = read(fd, buffer, sizeof buffer)) != 0;) {
    if (n > 0) {
      text.append(buffer, static_cast<size_t>(n));
    } else if (errno != EINTR) {
      break;  // EIO: a pseudo-terminal whose last writer closed it
    }
  }
  return text;
}
}  // namespace

CommandOutcome run_depot(const std::filesystem::path& directory, std::vector<std::string> arguments,
                         bool terminal, const std::string& input) {
  // The captures live apart from `directory`, which may be the source tree.
  std::string capture = (std::filesystem::temp_directory_path() / "depot-run-XXXXXX").string();
  if (mkdtemp(capture.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  std::filesystem::path out_file = std::filesystem::path(capture) / "stdout";
  std::filesystem::path err_file = std::filesystem::path(capture) / "stderr";
  std::filesystem::path in_file = std::filesystem::path(capture) / "stdin";
  { std::ofstream(in_file) << input; }
  int pty_master = -1;
  int pty_slave = -1;
  if (terminal && openpty(&pty_master, &pty_slave, nullptr, nullptr, nullptr) != 0) {
    throw std::runtime_error("openpty failed");
  }
  pid_t child = fork();
  if (child == 0) {
    if (chdir(directory.c_str()) != 0) _exit(127);
    dup2(open(in_file.c_str(), O_RDONLY), 0);
    dup2(open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), 1);
    dup2(terminal ? pty_slave : open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), 2);
    close_range(3, ~0U, 0);  // no inherited copy of a test server's sockets
    std::vector<char*> argv = {const_cast<char*>(DEPOT_BINARY)};
    for (auto& argument : arguments) argv.push_back(argument.data());
    argv.push_back(nullptr);
    execv(DEPOT_BINARY, argv.data());
    _exit(127);
  }
  CommandOutcome outcome;
  if (terminal) {
    close(pty_slave);
    outcome.err = read_all(pty_master);
    close(pty_master);
  }
  int status = 0;
  waitpid(child, &status, 0);
  outcome.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream out(out_file);
  outcome.out.assign(std::istreambuf_iterator<char>(out), {});
  if (!terminal) {
    std::ifstream err(err_file);
    outcome.err.assign(std::istreambuf_iterator<char>(err), {});
  }
  std::filesystem::remove_all(capture);
  return outcome;
}

}  // namespace depot::testing
