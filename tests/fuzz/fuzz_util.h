// Helpers shared by the libFuzzer targets (*_fuzz.cc): scratch files for readers that take a path, and the
// tiny fixture model the encode/decode targets run. Only the fuzz targets include this header.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "models/model.h"
#include "models/models.h"

namespace wavtok::fuzz {

// Folder for scratch files: $WAVTOK_FUZZ_TMP, else /dev/shm (tmpfs, fast), else /tmp.
inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    if (const char* d = std::getenv("WAVTOK_FUZZ_TMP"); d && *d) return std::string(d);
    return std::string(::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
  }();
  return dir;
}

// Writes `data` to a per-process scratch file named after `name` (keep the extension: some readers look at it)
// and returns its path. Aborts if the file cannot be written, so a full disk is not mistaken for a finding.
inline std::string scratch_file(const std::string& name, const uint8_t* data, size_t size) {
  const std::string path = scratch_dir() + "/wavtok-fuzz-" + std::to_string(::getpid()) + "-" + name;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || (size && std::fwrite(data, 1, size, f) != size) || std::fclose(f) != 0) {
    std::perror(path.c_str());
    std::abort();
  }
  return path;
}

// The fixture WavTokenizer (75 tokens/s, one 512-entry codebook), loaded once.
inline std::shared_ptr<const Model> tiny_model() {
  static const std::shared_ptr<const Model> m = [] {
    const std::string dir = std::string(WAVTOK_SOURCE_DIR) + "/../shared/fixtures/wavtokenizer-75/";
    LoadOptions o;
    o.config_path = dir + "config.yaml";
    return Model::load(dir + "model.ckpt", o);
  }();
  return m;
}

}  // namespace wavtok::fuzz
