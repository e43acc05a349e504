// The int8 LSTM's own implementation (docs/PTQ.md "int8 end to end"): the input-to-hidden products of a layer for
// all time steps as one u8 x s8 -> s32 matmul, then the recurrence with a u8 x s8 GEMV per step (AVX-512 VNNI, or a
// portable loop chosen at run time when the CPU lacks it) and the gates and cell in float. The arithmetic is the
// one LstmInt8Params defines (nn/layers.h), the same as oneDNN's int8 lstm_forward, which stays selectable.
// Internal to nn/ (Lstm uses it); tests and benchmarks pick the kernel with set_lstm_int8_kernel.
#pragma once

#include <cstdint>
#include <vector>

#include "core/dnnl_util.h"

namespace wavtok {

struct LstmInt8Params;

enum class LstmInt8Kernel {
  Auto,        // the fastest this CPU runs: Avx512Vnni where present, else Portable
  Portable,    // plain C++ loops (exact integer sums; vectorised by the compiler for the build's target)
  Avx512Vnni,  // vpdpbusd GEMV for the recurrence, oneDNN's int8 matmul for the input products
  OneDnnRnn,   // oneDNN's int8 lstm_forward (the implementation before this one)
};
// Process-wide choice for every int8 Lstm (default Auto, or WAVTOK_LSTM_INT8_KERNEL=auto|portable|avx512-vnni|
// onednn-rnn in the environment). Throws if the CPU cannot run the kernel asked for.
void set_lstm_int8_kernel(LstmInt8Kernel k);
LstmInt8Kernel lstm_int8_kernel();  // the choice, Auto resolved for this CPU
bool lstm_int8_kernel_supported(LstmInt8Kernel k);
const char* lstm_int8_kernel_name(LstmInt8Kernel k);

// Weights of an int8 LSTM with every layer's input width = hidden width H (what Lstm supports), made once by
// Lstm::set_int8: s8 codes clamp(rint(w / weight_scale[r]), -127, 127) packed for the GEMV, the u8 shift's
// compensation per gate row in integers (the data shift must be an integer), the bias b_ih + b_hh, and the per-row
// dequantization weight_scale[r] / data_scale.
class LstmInt8Impl {
 public:
  // w_l, w_i: the float weights in oneDNN's ldigo layout [L, 1, H, 4, H]; bias ldgo [L, 1, 4, H].
  LstmInt8Impl(int layers, int hidden, const float* w_l, const float* w_i, const float* bias, const LstmInt8Params& p);
  // Whether these parameters can run here (integral data shift, sums that fit int32); else Lstm uses OneDnnRnn.
  static bool supports(int hidden, const LstmInt8Params& p);
  // x [T, H] float, y [T, H] the last layer's dequantized hidden codes; h0, c0 [L, H] in, h1, c1 [L, H] out.
  void forward(const float* x, int64_t T, float* y, const float* h0, const float* c0, float* h1, float* c1,
               LstmInt8Kernel k) const;

 private:
  struct Proj {  // oneDNN's u8 x s8 -> s32 matmul for the input products of T steps, one per T
    dnnl::matmul prim;
    dnnl::memory::desc src_md, dst_md;
    std::vector<dnnl::memory> w;  // per layer, in the layout the primitive asked for (shared via wcache_)
  };
  Proj make_proj(int64_t T) const;

  int L_ = 0, H_ = 0, R_ = 0, K4_ = 0;  // R_ = 4H rows padded to 16, K4_ = H padded to 4, over 4
  float in_k_ = 1, scale_ = 127, shift_ = 128, inv_scale_ = 1.0f / 127;
  int32_t shift_i_ = 128;
  std::vector<int8_t> wih_, whh_;      // [L, 4H, H] row-major codes (portable kernel; W_ih: the matmul's weights)
  std::vector<int8_t> whh_p_, wih_p_;  // [L, R * K4 * 4] packed for lstm_int8_gemv_vnni
  std::vector<int32_t> comp_;          // [L, R]: shift * (row sums of W_ih and W_hh codes; of W_ih alone if per matrix)
  std::vector<float> deq_;             // [L, R] weight_scale / data_scale (0 in padding rows); of W_ih if per matrix
  bool per_matrix_ = false;            // W_ih and W_hh have their own row scales: two sums per gate row
  std::vector<int32_t> comp_hh_;       // per matrix: [L, R] shift * row sums of the W_hh codes
  std::vector<float> deq_hh_;          // per matrix: [L, R] W_hh's weight_scale / data_scale
  std::vector<float> bias_;            // [L, R]
  float deq_code_[256];                // (code - shift) / data_scale
  ShapeCache<Proj> proj_cache_;
  std::vector<WeightCache> wcache_;  // per layer: the W_ih codes in each layout a matmul asked for
};

// The GEMV kernels (exposed for tests), acc[r] += sum_k w[r, k] * h[k] exactly in int32:
// portable: w row-major [rows, cols];
// vnni: w packed in blocks of 16 rows x 4 inputs (64 bytes: row-major 16 x 4), the blocks in groups of 8 (the last
// group may have fewer), each group stored [k4, blocks in the group, 16, 4] from offset (first block) * k4 * 64,
// zeros in the padding; h padded with zeros to 4 * k4, acc [16 * blocks]. Needs AVX-512 VNNI.
void lstm_int8_gemv_portable(const int8_t* w, int rows, int cols, const uint8_t* h, int32_t* acc);
void lstm_int8_gemv_vnni(const int8_t* w, int blocks, int k4, const uint8_t* h, int32_t* acc);

}  // namespace wavtok
