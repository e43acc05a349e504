// int8 kept between layers: a LayerNorm that writes the next int8 layer's u8 codes (docs/PTQ.md "int8 end to end").
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <string>

#include "core/error.h"
#include "nn/layer_support.h"
#include "nn/layers.h"

namespace wavtok {

namespace {
// WAVTOK_INT8_CHAIN=0 in the environment starts with chaining off (profiling the unchained path in a process of
// its own, docs/PTQ.md "int8 end to end").
bool chaining_default() {
  const char* e = std::getenv("WAVTOK_INT8_CHAIN");
  return !(e && std::string(e) == "0");
}
std::atomic<bool> g_chaining{chaining_default()};
}  // namespace

void set_int8_chaining(bool on) { g_chaining = on; }
bool int8_chaining() { return g_chaining.load(); }

namespace {

// One row's LayerNorm into next's codes (see layer_norm_to_codes).
inline void ln_row_codes(const float* xr, int C, float eps, const float* scale, const float* shift, const Int8State& s,
                         uint8_t* out) {
  const float lo = -float(s.p.act_zero), hi = 255.0f - float(s.p.act_zero), z = float(s.p.act_zero);
  constexpr float kMagic = 12582912.0f;  // rounds half to even, as quantize_act
  constexpr int kLanes = 16;
  const float* sh = s.shift.data();
  const float* inv = s.inv.data();
  const float inv_c = 1.0f / float(C);
  // Lane-wise partial sums so that the reductions vectorise without reassociation flags.
  float acc[kLanes] = {};
  int c = 0;
  for (; c + kLanes <= C; c += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += xr[c + j];
  float sum = 0.0f;
  for (int j = 0; j < kLanes; ++j) sum += acc[j];
  for (; c < C; ++c) sum += xr[c];
  const float mean = sum * inv_c;
  float vacc[kLanes] = {};
  c = 0;
  for (; c + kLanes <= C; c += kLanes)
    for (int j = 0; j < kLanes; ++j) {
      const float d = xr[c + j] - mean;
      vacc[j] += d * d;
    }
  float var = 0.0f;
  for (int j = 0; j < kLanes; ++j) var += vacc[j];
  for (; c < C; ++c) var += (xr[c] - mean) * (xr[c] - mean);
  const float rstd = 1.0f / std::sqrt(var * inv_c + eps);
  for (c = 0; c < C; ++c) {
    const float v = (xr[c] - mean) * rstd * scale[c] + shift[c];
    float u = std::clamp((v - sh[c]) * inv[c], lo, hi);
    u = (u + kMagic) - kMagic;
    out[c] = static_cast<uint8_t>(static_cast<int>(u + z));
  }
}

const Int8State& codes_target(const Linear& next, int C, const char* who) {
  const Int8State* s = next.int8_state();
  if (!s) throw Error(std::string(who) + ": " + next.name() + " is not an int8 layer");
  if (next.in_features() != C) throw Error(std::string(who) + ": " + next.name() + " takes another width");
  return *s;
}

}  // namespace

void layer_norm_to_codes(const float* x, int64_t rows, int C, float eps, const float* scale, const float* shift,
                         const Linear& next, uint8_t* codes) {
  const Int8State& s = codes_target(next, C, "layer_norm_to_codes");
  for (int64_t r = 0; r < rows; ++r) ln_row_codes(x + r * C, C, eps, scale, shift, s, codes + r * C);
}

void dwconv_layer_norm_to_codes(const float* x, int64_t n, int64_t first, int64_t rows, int C, int K, const float* w_kc,
                                const float* bias, float eps, const float* scale, const float* shift,
                                const Linear& next, uint8_t* codes) {
  const Int8State& s = codes_target(next, C, "dwconv_layer_norm_to_codes");
  if (K < 1 || K % 2 == 0) throw Error("dwconv_layer_norm_to_codes: the kernel must be odd");
  thread_local std::vector<float> y;
  y.resize(size_t(C));
  const int64_t half = K / 2;
  for (int64_t t = 0; t < rows; ++t) {
    float* yr = y.data();
    std::copy(bias, bias + C, yr);
    for (int k = 0; k < K; ++k) {
      const int64_t r = t + first + k - half;
      if (r < 0 || r >= n) continue;  // zero padding
      const float* xr = x + r * C;
      const float* wk = w_kc + int64_t(k) * C;
      for (int c = 0; c < C; ++c) yr[c] += wk[c] * xr[c];
    }
    ln_row_codes(yr, C, eps, scale, shift, s, codes + t * C);
  }
}

}  // namespace wavtok
