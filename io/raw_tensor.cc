#include "io/raw_tensor.h"

#include <bit>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "core/util.h"

namespace wavtok {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F64:
    case DType::I64:
      return 8;
    case DType::F32:
    case DType::I32:
      return 4;
    case DType::F16:
    case DType::BF16:
    case DType::I16:
      return 2;
    case DType::I8:
    case DType::U8:
    case DType::Bool:
      return 1;
  }
  throw Error("dtype_size: invalid dtype");
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32:
      return "float32";
    case DType::F64:
      return "float64";
    case DType::F16:
      return "float16";
    case DType::BF16:
      return "bfloat16";
    case DType::I64:
      return "int64";
    case DType::I32:
      return "int32";
    case DType::I16:
      return "int16";
    case DType::I8:
      return "int8";
    case DType::U8:
      return "uint8";
    case DType::Bool:
      return "bool";
  }
  return "invalid";
}

int64_t RawTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

namespace {

// IEEE binary16 -> binary32, exact for every value (subnormals, infinities, NaN payloads).
float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112u) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {
    // Subnormal half: shift the mantissa up until its leading 1 becomes the implicit bit.
    int e = -1;
    do {
      ++e;
      mant <<= 1;
    } while ((mant & 0x400u) == 0);
    bits = sign | (uint32_t(112 - e) << 23) | ((mant & 0x3ffu) << 13);
  }
  return std::bit_cast<float>(bits);
}

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

template <typename Out, typename Fn>
std::vector<Out> convert(const RawTensor& t, Fn&& fn) {
  const size_t es = dtype_size(t.dtype);
  const int64_t n = t.numel();
  if (n < 0 || t.bytes.size() != size_t(n) * es)
    throw Error(std::string("RawTensor: ") + std::to_string(t.bytes.size()) + " bytes do not hold " +
                std::to_string(n) + " " + dtype_name(t.dtype) + " elements");
  std::vector<Out> out(static_cast<size_t>(n));
  const uint8_t* p = t.bytes.data();
  for (size_t i = 0; i < out.size(); ++i) out[i] = fn(p + i * es);
  return out;
}

// Float -> int64 truncation toward zero, saturating instead of invoking undefined behaviour.
int64_t float_to_i64(double v) {
  if (v != v) return 0;
  if (v >= 9223372036854775807.0) return std::numeric_limits<int64_t>::max();
  if (v <= -9223372036854775808.0) return std::numeric_limits<int64_t>::min();
  return static_cast<int64_t>(v);
}

}  // namespace

std::vector<float> RawTensor::to_float() const {
  switch (dtype) {
    case DType::F32:
      return convert<float>(*this, [](const uint8_t* p) { return load<float>(p); });
    case DType::F64:
      return convert<float>(*this, [](const uint8_t* p) { return static_cast<float>(load<double>(p)); });
    case DType::F16:
      return convert<float>(*this, [](const uint8_t* p) { return half_to_float(load<uint16_t>(p)); });
    case DType::BF16:
      return convert<float>(*this, [](const uint8_t* p) { return bf16_to_float(load<uint16_t>(p)); });
    case DType::I64:
      return convert<float>(*this, [](const uint8_t* p) { return static_cast<float>(load<int64_t>(p)); });
    case DType::I32:
      return convert<float>(*this, [](const uint8_t* p) { return static_cast<float>(load<int32_t>(p)); });
    case DType::I16:
      return convert<float>(*this, [](const uint8_t* p) { return static_cast<float>(load<int16_t>(p)); });
    case DType::I8:
      return convert<float>(*this, [](const uint8_t* p) { return static_cast<float>(load<int8_t>(p)); });
    case DType::U8:
      return convert<float>(*this, [](const uint8_t* p) { return static_cast<float>(*p); });
    case DType::Bool:
      return convert<float>(*this, [](const uint8_t* p) { return *p ? 1.0f : 0.0f; });
  }
  throw Error("RawTensor::to_float: invalid dtype");
}

std::vector<int64_t> RawTensor::to_int64() const {
  switch (dtype) {
    case DType::F32:
      return convert<int64_t>(*this, [](const uint8_t* p) { return float_to_i64(load<float>(p)); });
    case DType::F64:
      return convert<int64_t>(*this, [](const uint8_t* p) { return float_to_i64(load<double>(p)); });
    case DType::F16:
      return convert<int64_t>(*this, [](const uint8_t* p) { return float_to_i64(half_to_float(load<uint16_t>(p))); });
    case DType::BF16:
      return convert<int64_t>(*this, [](const uint8_t* p) { return float_to_i64(bf16_to_float(load<uint16_t>(p))); });
    case DType::I64:
      return convert<int64_t>(*this, [](const uint8_t* p) { return load<int64_t>(p); });
    case DType::I32:
      return convert<int64_t>(*this, [](const uint8_t* p) { return int64_t(load<int32_t>(p)); });
    case DType::I16:
      return convert<int64_t>(*this, [](const uint8_t* p) { return int64_t(load<int16_t>(p)); });
    case DType::I8:
      return convert<int64_t>(*this, [](const uint8_t* p) { return int64_t(load<int8_t>(p)); });
    case DType::U8:
      return convert<int64_t>(*this, [](const uint8_t* p) { return int64_t(*p); });
    case DType::Bool:
      return convert<int64_t>(*this, [](const uint8_t* p) { return int64_t(*p != 0); });
  }
  throw Error("RawTensor::to_int64: invalid dtype");
}

}  // namespace wavtok
