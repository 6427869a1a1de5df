#pragma once
/// Between cli.cc (parsing, small commands) and cli_run.cc (`netplay run`).

#include <string>
#include <vector>

#include "runner/cli/cli.h"

namespace netplay::cli {

/// `netplay run` as typed, before any checking beyond CLI11's own.
struct RunArgs {
  std::string playbook;
  std::vector<std::string> sets;
  std::vector<std::string> vars;
  std::vector<std::string> outputs;
  std::vector<std::string> only;
  std::string jobs = "4";
  std::string timeout;
  bool fail_fast = false;
  bool quiet = false;
  bool verbose = false;
  bool no_color = false;
};

int run_command(const RunArgs& args, const CliIo& io);

/// `netplay decode` as typed (cli_decode.cc).
struct DecodeArgs {
  std::string file;
  std::string format = "text";
  std::vector<int> ports;
  std::string filter;
  std::string tags;
  std::vector<std::string> store;
};
}  // namespace netplay::cli

namespace CLI {
class App;
}

namespace netplay::cli {
void setup_decode(CLI::App& cmd, DecodeArgs& args);
int decode_command(const DecodeArgs& args, const CliIo& io);

/// Prints "netplay: MESSAGE" on io.err; returns 2 (usage / invalid playbook).
int usage_error(const CliIo& io, const std::string& message);

/// Writes all of `s` to `f` (stdout may be a closed pipe: then it simply stops).
void put(std::FILE* f, const std::string& s);

}  // namespace netplay::cli
