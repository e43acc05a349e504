// What the layers' implementations share (nn/*.cc): oneDNN attributes and weight reorders, the int8 state of a
// quantized layer and its activation quantizers, the calibration observer, the SiLU without libm. Internal to nn/.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "nn/layers.h"

namespace wavtok {

dnnl::primitive_attr make_attr(Act post, bool accumulate);
// Cache key that also tells the precision apart, so switching precision never reuses a primitive.
int64_t pkey(int64_t k);
// Reorders user weights into the layout a primitive asked for (done once per primitive).
dnnl::memory reorder_weights(const dnnl::memory::desc& want, const dnnl::memory::desc& have, const float* data);
dnnl::memory copy_to_memory(const dnnl::memory::desc& md, const float* data);

struct Int8State {
  Int8Params p;
  std::vector<int8_t> qw;         // weight codes in the user layout (oi / oiw)
  std::vector<float> shift, inv;  // per input channel: u / act_scale = (x - shift) * inv
  std::vector<float> bias_acc;    // bias in accumulator units, zero-point compensation included
  std::vector<float> out_scale;   // act_scale * weight_scale[o]
};

std::shared_ptr<const Int8State> make_int8_state(Int8Params p, const Tensor& w, const Tensor& b, int cin, int cout,
                                                 const char* who);
// Activation codes into a per-thread buffer (u8, with the layer's shift/divisor and zero point).
const uint8_t* quantize_act(const Int8State& s, const float* x, int64_t rows, int cin, bool channels_last);
// Symmetric s8 codes clamp(rint(x * inv), -127, 127), inv = 1 / act_scale (ConvTranspose1d), per-thread buffer.
const int8_t* quantize_act_s8(float inv, const float* x, int64_t n);
dnnl::primitive_attr int8_attr(const Int8State& s, Act post, bool accumulate);
dnnl::memory reorder_s8_weights(const dnnl::memory::desc& want, const dnnl::memory::desc& have, const int8_t* data);

// Lets GCC vectorise an elementwise loop with 512-bit registers where the CPU has them: -march=native on AVX-512
// CPUs still prefers 256 bits, and the ELU over every SEANet activation ran 1.4x faster with 512 (0.40 -> 0.28 ns
// per element in cache). Results are the same bits: only elementwise loops get it.
#if defined(__GNUC__) && !defined(__clang__) && defined(__AVX512F__)
#define WAVTOK_WIDE_VECTORS __attribute__((target("prefer-vector-width=512")))
#else
#define WAVTOK_WIDE_VECTORS
#endif

// Tests: the per-group int8 conv (Int8Params::act_group) takes its portable loops even where the CPU has AVX512-VNNI,
// so that both paths are checked on one machine. Not for production use; not thread-safe against running convs.
void set_group_conv_portable_for_testing(bool on);

// The calibration observer of this thread (set_act_observer), or nullptr.
extern thread_local const ActObserver* t_observer;

// exp(x) - 1 for x <= 0 as 2^n (exp(r) - 1) + (2^n - 1), without a libm call, so that loops over it vectorise
// (std::exp / std::expm1 do not, and the SEANet encoder applies ELU to every activation): x = n ln2 + r,
// |r| <= ln2/2, exp(r) - 1 = r + r^2 p(r) by Cephes' degree-6 polynomial (relative error ~1e-7), 2^n built in the
// exponent bits (returned in *scale). Inputs below -87 give exp(-87) ~ 1.6e-38.
inline float expm1_reduced(float x, float* scale) {
  x = x > -87.0f ? x : -87.0f;  // also maps NaN to -87 (the caller keeps NaN inputs itself)
  x = x < 0.0f ? x : 0.0f;
  const float n = std::floor(x * 1.44269504088896341f + 0.5f);
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  std::memcpy(scale, &bits, sizeof(*scale));
  return p * r * r + r;  // exp(r) - 1
}

// exp(x) for x <= 0.
inline float exp_nonpositive(float x) {
  float scale;
  const float em1 = expm1_reduced(x, &scale);
  return (em1 + 1.0f) * scale;
}

// exp(x) - 1 for x <= 0, accurate relative to the result also near 0 (as std::expm1, which ELU needs: exp(x) - 1.0f
// loses up to ~6e-8 absolute there, i.e. most digits of a small ELU output, and that error was the largest part of
// the encoder latents' distance to upstream). The 1 is never added; the correction is exactly 0 when n = 0.
inline float expm1_nonpositive(float x) {
  float scale;
  const float em1 = expm1_reduced(x, &scale);
  return em1 * scale + (scale - 1.0f);
}

// v * sigmoid(v) with e = exp(-|v|) <= 1, so that no libm call keeps the loops from vectorising; NaN stays NaN.
inline float silu_value(float v) {
  const float e = exp_nonpositive(v > 0.0f ? -v : v);
  const float sig = v > 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
  return v * sig;
}

// The checks every low-rank adapter pair shares (Conv1d / Linear set_lowrank): rank within 1..max_rank, every
// value finite. `who` starts each message (layer kind and name). Throws Error.
void check_adapter_values(const std::string& who, const Tensor& a, const Tensor& b, int max_rank);

}  // namespace wavtok
