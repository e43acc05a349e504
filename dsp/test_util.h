// Helpers shared by the dsp tests: scratch folders in the build tree and running Debian's Python as a reference.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

namespace wavtok::testing {

// A fresh, empty folder per test under the build tree.
inline std::filesystem::path scratch_dir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  auto dir = std::filesystem::path(WAVTOK_BINARY_DIR) / "dsp_test_tmp" /
             (std::string(info->test_suite_name()) + "." + info->name());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline void write_f32(const std::filesystem::path& p, std::span<const float> x) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(x.data()), std::streamsize(x.size() * sizeof(float)));
}

inline std::vector<float> read_f32(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary | std::ios::ate);
  if (!f) return {};
  std::vector<float> v(size_t(f.tellg()) / sizeof(float));
  f.seekg(0);
  f.read(reinterpret_cast<char*>(v.data()), std::streamsize(v.size() * sizeof(float)));
  return v;
}

// True if /usr/bin/python3 can import all of the given modules (space separated).
inline bool python_has(const std::string& modules) {
  std::string imports;
  for (size_t i = 0, j; i < modules.size(); i = j + 1) {
    j = modules.find(' ', i);
    if (j == std::string::npos) j = modules.size();
    imports += "import " + modules.substr(i, j - i) + ";";
  }
  return std::system(("/usr/bin/python3 -c '" + imports + "' >/dev/null 2>&1").c_str()) == 0;
}

// Runs /usr/bin/python3 with the given arguments; returns its first output line, or "" on failure.
inline std::string run_python(const std::string& args) {
  FILE* p = ::popen(("/usr/bin/python3 " + args).c_str(), "r");
  if (!p) return {};
  char buf[256] = {};
  const bool ok = std::fgets(buf, sizeof buf, p) != nullptr;
  char rest[256];
  while (std::fgets(rest, sizeof rest, p) != nullptr) {
  }
  return ::pclose(p) == 0 && ok ? std::string(buf) : std::string();
}

}  // namespace wavtok::testing
