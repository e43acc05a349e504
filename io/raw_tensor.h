// Typed, contiguous tensors as stored in files (checkpoints, .npy), before conversion to float.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace wavtok {

enum class DType { F32, F64, F16, BF16, I64, I32, I16, I8, U8, Bool };

size_t dtype_size(DType t);
const char* dtype_name(DType t);

struct RawTensor {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;  // contiguous, row-major, little-endian

  int64_t numel() const;
  std::vector<float> to_float() const;    // converts any dtype
  std::vector<int64_t> to_int64() const;  // converts any dtype (floats truncated)
};

}  // namespace wavtok
