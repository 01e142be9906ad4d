// Another program as a child process for a test (promtool, prometheus): its stdout and stderr go
// to a log file; the destructor stops it (SIGTERM, then SIGKILL after 5 s) and waits for it.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

namespace depot::testing {

class ChildProcess {
 public:
  // Runs argv[0] (looked up in PATH) with the other arguments.
  ChildProcess(std::vector<std::string> argv, std::filesystem::path log);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Waits for the exit: the exit status (127: could not be run), or -1 if it ended by a signal.
  int wait_exit();
  // What it wrote so far.
  std::string output() const;

 private:
  pid_t pid_ = -1;
  std::filesystem::path log_;
};

// The full path of `program` in PATH (or in /usr/bin, /usr/sbin), or "" if it is not installed.
std::string find_program(const std::string& program);

}  // namespace depot::testing
