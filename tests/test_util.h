// Helpers shared by tests: fixture paths, scratch folders, comparison metrics.
#pragma once

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "codec/npy.h"

namespace wavtok::testing {

inline std::string source_dir() { return WAVTOK_SOURCE_DIR; }
inline std::string fixtures_dir() { return std::string(WAVTOK_SOURCE_DIR) + "/../shared/fixtures"; }
inline std::string fixture(const std::string& rel) { return fixtures_dir() + "/" + rel; }

// A fresh scratch folder under the build tree.
inline std::string scratch_dir(const std::string& name) {
  std::filesystem::path p = std::filesystem::path(WAVTOK_BINARY_DIR) / "test_scratch" / name;
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

inline double snr_db(const std::vector<float>& ref, const std::vector<float>& x) {
  double s = 0, n = 0;
  const size_t len = std::min(ref.size(), x.size());
  for (size_t i = 0; i < len; ++i) {
    s += double(ref[i]) * ref[i];
    n += (double(ref[i]) - x[i]) * (double(ref[i]) - x[i]);
  }
  return 10.0 * std::log10(s / std::max(n, 1e-30));
}

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

}  // namespace wavtok::testing
