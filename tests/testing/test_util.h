// Helpers shared by tests: fixture paths, scratch folders, comparison metrics.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include "core/util.h"
#include "io/npy.h"

namespace wavtok::testing {

inline std::string source_dir() { return WAVTOK_SOURCE_DIR; }
inline std::string fixtures_dir() { return std::string(WAVTOK_SOURCE_DIR) + "/../shared/fixtures"; }
inline std::string fixture(const std::string& rel) { return fixtures_dir() + "/" + rel; }

// A fresh, empty scratch folder under the build tree: test_scratch/NAME, or test_scratch/SUITE.TEST for the
// running gtest test when no name is given.
inline std::string scratch_dir(const std::string& name = "") {
  std::string leaf = name;
  if (leaf.empty()) {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    leaf = std::string(info->test_suite_name()) + "." + info->name();
  }
  std::filesystem::path p = std::filesystem::path(WAVTOK_BINARY_DIR) / "test_scratch" / leaf;
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

using wavtok::snr_db;  // core/util.h

inline double max_abs(const float* a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < b.size(); ++i) m = std::max(m, double(std::abs(a[i] - b[i])));
  return m;
}

inline std::vector<float> npy_floats(const std::string& path) { return read_npy(path).to_float(); }
inline std::vector<int64_t> npy_ints(const std::string& path) { return read_npy(path).to_int64(); }

// Runs Debian's python3 (which has torch) on a repo script; returns the exit status.
inline int run_python(const std::string& args) {
  const std::string cmd = "/usr/bin/python3 " + args;
  return std::system(cmd.c_str());
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
inline std::string python_first_line(const std::string& args) {
  FILE* p = ::popen(("/usr/bin/python3 " + args).c_str(), "r");
  if (!p) return {};
  char buf[256] = {};
  const bool ok = std::fgets(buf, sizeof buf, p) != nullptr;
  char rest[256];
  while (std::fgets(rest, sizeof rest, p) != nullptr) {}
  return ::pclose(p) == 0 && ok ? std::string(buf) : std::string();
}

}  // namespace wavtok::testing
