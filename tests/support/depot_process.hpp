// The built `depot serve` binary as a child process, for tests of what only the real process
// does (signals, exit status, its log): stderr goes to a file, the port is read from its log.
// run_depot runs any other `depot` command to its end.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace depot::testing {

struct DepotProcess {
  pid_t pid = -1;
  std::filesystem::path log;
  uint16_t port = 0;  // 0 if the "listening" line did not appear within 5 s

  // Runs `depot serve <arguments>` in `directory`.
  DepotProcess(const std::filesystem::path& directory, std::vector<std::string> arguments);
  // Waits for the exit: the exit status, or -1 if it ended by a signal.
  int wait_exit();
  // Kills the process if it still runs.
  ~DepotProcess();
  DepotProcess(const DepotProcess&) = delete;
  DepotProcess& operator=(const DepotProcess&) = delete;
};

struct CommandOutcome {
  int status = -1;  // the exit status, -1 if it ended by a signal
  std::string out;
  std::string err;
};

// Runs `depot <arguments>` in `directory` with `input` on stdin and waits for it. With
// `terminal`, stderr is a pseudo-terminal (what an operator's shell gives it), read as it comes.
CommandOutcome run_depot(const std::filesystem::path& directory, std::vector<std::string> arguments,
                         bool terminal = false, const std::string& input = "");

}  // namespace depot::testing
