#pragma once
/// The command line: `netplay run|validate|list|describe|schema`. Parsing is CLI11's; every
/// error becomes one line on stderr and an exit code from the contract (0/1/2/3/130).

#include <atomic>
#include <cstdio>
#include <expected>
#include <string>
#include <string_view>

#include "runner/report/reporters.h"
#include "runner/step/step.h"

namespace netplay {

/// One `--output FORMAT[=FILE]`; an empty path (or "-") means stdout.
struct OutputTarget {
  Format format = Format::kText;
  std::string path;
};
std::expected<OutputTarget, std::string> parse_output_target(std::string_view spec);

/// Where the commands write and what they know about the terminal; a seam for tests.
struct CliIo {
  std::FILE* out = stdout;
  std::FILE* err = stderr;
  bool out_tty = false;
  bool err_tty = false;
  bool no_color_env = false;  // NO_COLOR is set (and not empty)
  /// Set by the SIGINT/SIGTERM handler; `run` hands it to the scheduler.
  const std::atomic<bool>* interrupt = nullptr;
  /// Called right before the steps start (cli_main installs the signal handlers there, so
  /// that Ctrl-C while loading still simply ends the process).
  void (*before_run)() = nullptr;
};

/// Parses and runs one command. Never throws for bad input: usage errors are one line on
/// io.err and exit 2.
int run_cli(int argc, const char* const* argv, const CliIo& io);

/// main(): real stdio, signal handling, and a catch-all so that nothing ever ends in a
/// stack trace.
int cli_main(int argc, char** argv);

/// `netplay describe STEP`, as text.
std::string describe_step(const StepSpec& spec);

}  // namespace netplay
