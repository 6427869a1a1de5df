#pragma once
/// Running the CLI in-process, for unit tests of the verbs: argv in, exit code and the
/// text written to stdout and stderr out.

#include <atomic>
#include <cstdio>
#include <string>
#include <vector>

namespace netplay {

struct CliOutcome {
  int rc;
  std::string out;
  std::string err;
};

struct CliRunOptions {
  const std::atomic<bool>* interrupt = nullptr;
  bool out_tty = false;
  bool err_tty = false;
  bool no_color_env = false;
};

/// Everything written to the temporary file `f` so far.
std::string drain(std::FILE* f);

/// Runs `netplay ARGS...` with stdout and stderr captured in temporary files.
CliOutcome run_cli_captured(std::vector<std::string> args, const CliRunOptions& opts = {});

}  // namespace netplay
