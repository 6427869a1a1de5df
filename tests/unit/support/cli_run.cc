#include "tests/unit/support/cli_run.h"

#include <cstdio>

#include "runner/cli/cli.h"

namespace netplay {
std::string drain(std::FILE* f) {
  std::fflush(f);
  std::rewind(f);
  std::string s;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
  return s;
}

CliOutcome run_cli_captured(std::vector<std::string> args, const CliRunOptions& opts) {
  args.insert(args.begin(), "netplay");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  CliIo io;
  io.out = std::tmpfile();
  io.err = std::tmpfile();
  io.interrupt = opts.interrupt;
  io.out_tty = opts.out_tty;
  io.err_tty = opts.err_tty;
  io.no_color_env = opts.no_color_env;
  int rc = run_cli(static_cast<int>(argv.size()), argv.data(), io);
  CliOutcome o{rc, drain(io.out), drain(io.err)};
  std::fclose(io.out);
  std::fclose(io.err);
  return o;
}

}  // namespace netplay
