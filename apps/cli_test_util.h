// Runs the CLI in-process for the apps tests: exit code plus everything it printed.
#pragma once

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "apps/cli.h"

namespace wavtok::testing {

struct CliResult {
  int code;
  std::string err;  // stderr followed by stdout
};

inline CliResult run_cli(std::vector<std::string> args) {
  args.insert(args.begin(), "wavtok");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  ::testing::internal::CaptureStderr();
  ::testing::internal::CaptureStdout();
  const int code = cli_main(static_cast<int>(argv.size()), argv.data());
  const std::string out = ::testing::internal::GetCapturedStdout();
  const std::string err = ::testing::internal::GetCapturedStderr();
  return {code, err + out};
}

}  // namespace wavtok::testing
