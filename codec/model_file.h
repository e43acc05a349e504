// The engine's own model file (".wtk"): one memory-mappable file with a versioned header, the model
// config as YAML text, a tensor table and 64-byte aligned float32 tensor data (weight norm folded).
//
// Layout (little-endian):
//   0   char[8]  magic "WAVTOKMF"
//   8   u32      format version (1)
//   12  u32      flags (0)
//   16  u64      config length in bytes (YAML text follows the header)
//   24  u64      tensor count
//   32  config text, then per tensor: u32 name length, name bytes, u32 dtype (0 = f32), u32 ndim,
//       i64 dims[ndim], u64 data offset from file start, u64 data bytes
//   data: each tensor at a 64-byte aligned offset.
#pragma once

#include <string>

#include "codec/config.h"
#include "codec/weights.h"

namespace wavtok {

constexpr uint32_t kModelFileVersion = 1;

struct ModelFileLimits {
  int64_t max_tensors = 100000;
  int64_t max_config_bytes = 1 << 20;
  int max_ndim = 8;
  int max_name = 4096;
};

bool is_model_file(const std::string& path);  // checks the magic only
void write_model_file(const std::string& path, const ModelConfig& config, const WeightMap& weights);
// Memory-maps the file, validates every offset and size against the file length, and copies tensors out.
void read_model_file(const std::string& path, ModelConfig& config, WeightMap& weights, const ModelFileLimits& limits = {});
// The same from bytes in memory (e.g. the model embedded in the binary); `origin` names it in errors.
void parse_model_file(const uint8_t* data, size_t size, const std::string& origin, ModelConfig& config,
                      WeightMap& weights, const ModelFileLimits& limits = {});

}  // namespace wavtok
