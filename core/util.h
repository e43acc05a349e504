// Small helpers shared across the libraries (each written once here): string suffixes, SNR, bfloat16 rounding and
// the s8 weight codes of int8 layers.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <vector>

namespace wavtok {

inline bool ends_with(std::string_view s, std::string_view suffix) { return s.ends_with(suffix); }

// Signal-to-noise ratio in dB of `x` against `ref` over their common length: 10 log10(sum ref^2 / sum (ref-x)^2),
// the error energy floored at 1e-30 (identical signals give a large finite value).
double snr_db(std::span<const float> ref, std::span<const float> x);

// float32 -> bfloat16, rounding to nearest even (finite inputs).
inline uint16_t float_to_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float bf16_to_float(uint16_t b) {
  const uint32_t u = uint32_t(b) << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

// The s8 weight codes an int8 layer uses: clamp(rint(w / scale[o]), -127, 127), w = [Cout, ...] row-major. The
// model file stores exactly these; loading them back as codes * scale reproduces the same codes.
std::vector<int8_t> int8_weight_codes(const float* w, int64_t numel, const std::vector<float>& scale);

}  // namespace wavtok
