// Test-only: samples that PyTorch and NumPy themselves write (python/tests/make_torch_samples.py), generated once per
// build tree and shared by the test processes that CTest runs in parallel.
#pragma once

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace wavtok::testing {

struct TorchSamples {
  std::string dir;    // WAVTOK_BINARY_DIR/torch_samples, valid when error is empty
  std::string error;  // why the samples could not be made
};

inline std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> out;
  std::string field;
  std::istringstream in(line);
  while (std::getline(in, field, '\t')) out.push_back(field);
  return out;
}

// Regenerates the samples when the script changed since the last run. A lock file serialises processes;
// the script writes into a scratch folder that is renamed into place only when complete.
inline TorchSamples torch_samples() {
  namespace fs = std::filesystem;
  static TorchSamples cached;
  if (!cached.dir.empty() || !cached.error.empty()) return cached;

  const fs::path bin = WAVTOK_BINARY_DIR;
  const fs::path script = fs::path(WAVTOK_SOURCE_DIR) / "python" / "tests" / "make_torch_samples.py";
  const fs::path final_dir = bin / "torch_samples";
  const fs::path stamp = final_dir / "STAMP";
  const std::string want_stamp = std::to_string(fs::last_write_time(script).time_since_epoch().count()) + " " +
                                 std::to_string(fs::file_size(script));

  const int lock = ::open((bin / "torch_samples.lock").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  if (lock < 0 || ::flock(lock, LOCK_EX) != 0) {
    cached.error = "cannot lock " + (bin / "torch_samples.lock").string();
    return cached;
  }
  std::string have_stamp;
  if (std::ifstream in(stamp); in) std::getline(in, have_stamp);
  if (have_stamp != want_stamp) {
    const std::string check = "OMP_NUM_THREADS=1 /usr/bin/python3 -c 'import torch, numpy' > /dev/null 2>&1";
    if (std::system(check.c_str()) != 0) {
      cached.error =
          "/usr/bin/python3 cannot import torch and numpy, which these tests need as independent truth; "
          "run scripts/setup.sh (Debian packages python3-torch, python3-numpy)";
    } else {
      const fs::path tmp = bin / ("torch_samples.tmp." + std::to_string(::getpid()));
      fs::remove_all(tmp);
      const std::string cmd = "OMP_NUM_THREADS=1 /usr/bin/python3 " + script.string() + " " + tmp.string() +
                              " --fixtures " + std::string(WAVTOK_SOURCE_DIR) + "/../shared/fixtures";
      if (std::system(cmd.c_str()) != 0) {
        cached.error = "failed: " + cmd;
      } else {
        fs::remove_all(final_dir);
        fs::rename(tmp, final_dir);
        std::ofstream(stamp) << want_stamp << "\n";
      }
      fs::remove_all(tmp);
    }
  }
  ::flock(lock, LOCK_UN);
  ::close(lock);
  if (cached.error.empty()) cached.dir = final_dir.string();
  return cached;
}

}  // namespace wavtok::testing
