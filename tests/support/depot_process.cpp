// `depot serve` as a child process (see depot_process.hpp).
#include "tests/support/depot_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
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

}  // namespace depot::testing
