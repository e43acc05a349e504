// The int8 LSTM's own implementation: input products as one matmul per layer, the recurrence as a u8 x s8 GEMV
// per step, gates and cell in float (nn/lstm_int8.h).
#include "nn/lstm_int8.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/error.h"
#include "nn/layer_support.h"
#include "nn/layers.h"

namespace wavtok {

namespace {

// The starting choice: Auto, or WAVTOK_LSTM_INT8_KERNEL=portable|avx512-vnni|onednn-rnn|auto from the environment
// (to time the implementations side by side in whole-model runs, e.g. `wavtok ptq-speed`).
int initial_kernel() {
  const char* e = std::getenv("WAVTOK_LSTM_INT8_KERNEL");
  if (!e || !*e) return int(LstmInt8Kernel::Auto);
  for (auto k : {LstmInt8Kernel::Auto, LstmInt8Kernel::Portable, LstmInt8Kernel::Avx512Vnni, LstmInt8Kernel::OneDnnRnn})
    if (std::string(e) == lstm_int8_kernel_name(k)) {
      if (!lstm_int8_kernel_supported(k))
        throw Error(std::string("WAVTOK_LSTM_INT8_KERNEL=") + e + ": this CPU cannot run that kernel");
      return int(k);
    }
  throw Error(std::string("WAVTOK_LSTM_INT8_KERNEL=") + e +
              ": unknown kernel (auto, portable, avx512-vnni or onednn-rnn)");
}

std::atomic<int>& kernel_choice() {
  static std::atomic<int> k{initial_kernel()};
  return k;
}

bool cpu_has_vnni() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vnni");
  }();
  return has;
}

// sigmoid and tanh through exp of a non-positive argument (layer_support.h): no libm call, so the gate loop
// vectorises; absolute errors ~1e-7, far below the hidden state's code step 1 / data_scale.
inline float sigmoid_v(float v) {
  const float e = exp_nonpositive(v > 0.0f ? -v : v);
  const float r = 1.0f / (1.0f + e);
  return v > 0.0f ? r : e * r;
}
inline float tanh_v(float v) {
  const float a = v > 0.0f ? v : -v;
  const float e = exp_nonpositive(-2.0f * a);
  const float t = (1.0f - e) / (1.0f + e);
  return v > 0.0f ? t : -t;
}

// One time step's gates and cell for rows [0, H) of each gate: acc holds the integer sums of W_ih x + W_hh h (raw
// u8 codes), comp the shift compensation. Writes the cell state and the new hidden codes.
// (__restrict: without it GCC does not vectorise the loop.)
void gates_step(const int32_t* __restrict acc, const int32_t* __restrict comp, const float* __restrict deq,
                const float* __restrict bias, int H, float scale, float shift, float* __restrict c,
                uint8_t* __restrict hq) {
  const int32_t *ai = acc, *af = acc + H, *ag = acc + 2 * H, *ao = acc + 3 * H;
  const int32_t *ci = comp, *cf = comp + H, *cg = comp + 2 * H, *co = comp + 3 * H;
  const float *di = deq, *df = deq + H, *dg = deq + 2 * H, *dq = deq + 3 * H;
  const float *bi = bias, *bf = bias + H, *bg = bias + 2 * H, *bo = bias + 3 * H;
  for (int j = 0; j < H; ++j) {
    const float zi = float(ai[j] - ci[j]) * di[j] + bi[j];
    const float zf = float(af[j] - cf[j]) * df[j] + bf[j];
    const float zg = float(ag[j] - cg[j]) * dg[j] + bg[j];
    const float zo = float(ao[j] - co[j]) * dq[j] + bo[j];
    const float cj = sigmoid_v(zf) * c[j] + sigmoid_v(zi) * tanh_v(zg);
    c[j] = cj;
    const float h = sigmoid_v(zo) * tanh_v(cj);
    hq[j] = uint8_t(std::clamp(std::nearbyint(h * scale + shift), 0.0f, 255.0f));
  }
}

// gates_step with W_ih and W_hh under their own row scales (per-matrix LstmInt8Params): the input sums in acc, the
// recurrent ones in acc_h, each with its compensation and dequantization.
void gates_step2(const int32_t* __restrict acc, const int32_t* __restrict comp, const float* __restrict deq,
                 const int32_t* __restrict acc_h, const int32_t* __restrict comp_h, const float* __restrict deq_h,
                 const float* __restrict bias, int H, float scale, float shift, float* __restrict c,
                 uint8_t* __restrict hq) {
  for (int j = 0; j < H; ++j) {
    float z[4];
    for (int k = 0; k < 4; ++k) {
      const int r = k * H + j;
      z[k] = float(acc[r] - comp[r]) * deq[r] + float(acc_h[r] - comp_h[r]) * deq_h[r] + bias[r];
    }
    const float cj = sigmoid_v(z[1]) * c[j] + sigmoid_v(z[0]) * tanh_v(z[2]);
    c[j] = cj;
    const float h = sigmoid_v(z[3]) * tanh_v(cj);
    hq[j] = uint8_t(std::clamp(std::nearbyint(h * scale + shift), 0.0f, 255.0f));
  }
}

// u8 codes clamp(rint(x * k + z), 0, 255) (locals and __restrict: so that the loop vectorises).
void quantize_codes(const float* __restrict x, int64_t n, float k, float z, uint8_t* __restrict out) {
  for (int64_t i = 0; i < n; ++i) out[i] = uint8_t(std::clamp(std::nearbyint(x[i] * k + z), 0.0f, 255.0f));
}

// Packs rows [0, rows) x [0, cols) of codes (row-major, leading dim cols) for lstm_int8_gemv_vnni, zeros outside:
// blocks of 16 rows in groups of 8 blocks, each group [K4, blocks in group, 16, 4] (nn/lstm_int8.h).
void pack(const int8_t* codes, int rows, int cols, int R, int K4, int8_t* out) {
  const int blocks = R / 16;
  std::memset(out, 0, size_t(R) * K4 * 4);
  for (int r = 0; r < rows; ++r) {
    const int b = r / 16, g0 = b / 8 * 8, gs = std::min(8, blocks - g0);
    for (int k = 0; k < cols; ++k)
      out[size_t(g0) * K4 * 64 + (size_t(k / 4) * gs + (b - g0)) * 64 + (r % 16) * 4 + k % 4] =
          codes[size_t(r) * cols + k];
  }
}

}  // namespace

void set_lstm_int8_kernel(LstmInt8Kernel k) {
  if (!lstm_int8_kernel_supported(k))
    throw Error(std::string("set_lstm_int8_kernel: this CPU cannot run the ") + lstm_int8_kernel_name(k) + " kernel");
  kernel_choice().store(int(k));
}

LstmInt8Kernel lstm_int8_kernel() {
  const auto k = LstmInt8Kernel(kernel_choice().load());
  if (k != LstmInt8Kernel::Auto) return k;
  return cpu_has_vnni() ? LstmInt8Kernel::Avx512Vnni : LstmInt8Kernel::Portable;
}

bool lstm_int8_kernel_supported(LstmInt8Kernel k) { return k != LstmInt8Kernel::Avx512Vnni || cpu_has_vnni(); }

const char* lstm_int8_kernel_name(LstmInt8Kernel k) {
  switch (k) {
    case LstmInt8Kernel::Auto:
      return "auto";
    case LstmInt8Kernel::Portable:
      return "portable";
    case LstmInt8Kernel::Avx512Vnni:
      return "avx512-vnni";
    case LstmInt8Kernel::OneDnnRnn:
      return "onednn-rnn";
  }
  return "?";
}

void lstm_int8_gemv_portable(const int8_t* w, int rows, int cols, const uint8_t* h, int32_t* acc) {
  // Row by row: a widening dot-product reduction, which compilers vectorise for any SIMD target (exact: int32).
  for (int r = 0; r < rows; ++r) {
    const int8_t* __restrict wr = w + size_t(r) * cols;
    int32_t a = 0;
    for (int k = 0; k < cols; ++k) a += int32_t(wr[k]) * int32_t(h[k]);
    acc[r] += a;
  }
}

namespace {

// One group of NB blocks of 16 rows: NB independent accumulator chains hide vpdpbusd's latency; the group's
// weights are read in one sequential pass (NB * 64 bytes per group of 4 inputs), one broadcast of h per 4 inputs.
template <int NB>
__attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline)) inline void vnni_group(const int8_t* w, int k4,
                                                                                             const uint8_t* h,
                                                                                             int32_t* acc, int nb) {
  __m512i a[NB];
  for (int i = 0; i < NB; ++i) a[i] = i < nb ? _mm512_loadu_si512(acc + 16 * i) : _mm512_setzero_si512();
  for (int k = 0; k < k4; ++k) {
    int32_t hv;
    std::memcpy(&hv, h + 4 * k, 4);
    const __m512i x = _mm512_set1_epi32(hv);
    const int8_t* wk = w + size_t(k) * nb * 64;
    for (int i = 0; i < NB; ++i)
      if (i < nb) a[i] = _mm512_dpbusd_epi32(a[i], x, _mm512_loadu_si512(wk + i * 64));
  }
  for (int i = 0; i < NB; ++i)
    if (i < nb) _mm512_storeu_si512(acc + 16 * i, a[i]);
}

}  // namespace

__attribute__((target("avx512f,avx512bw,avx512vnni"))) void lstm_int8_gemv_vnni(const int8_t* w, int blocks, int k4,
                                                                                const uint8_t* h, int32_t* acc) {
  int b = 0;
  for (; b + 8 <= blocks; b += 8) vnni_group<8>(w + size_t(b) * k4 * 64, k4, h, acc + 16 * b, 8);
  if (b < blocks) vnni_group<8>(w + size_t(b) * k4 * 64, k4, h, acc + 16 * b, blocks - b);
}

bool LstmInt8Impl::supports(int hidden, const LstmInt8Params& p) {
  // Integer compensation needs an integral shift; the sums of both products (2H terms of 255 * 127) fit int32.
  return p.data_shift == std::nearbyint(p.data_shift) && int64_t(hidden) * 2 * 255 * 127 < (int64_t(1) << 31);
}

LstmInt8Impl::LstmInt8Impl(int layers, int hidden, const float* w_l, const float* w_i, const float* bias,
                           const LstmInt8Params& p)
    : L_(layers), H_(hidden) {
  if (!supports(hidden, p)) throw Error("LstmInt8Impl: unsupported int8 parameters");
  const int H = H_, G4 = 4 * H;
  R_ = (G4 + 15) / 16 * 16;
  K4_ = (H + 3) / 4;
  scale_ = p.data_scale;
  shift_ = p.data_shift;
  shift_i_ = int32_t(p.data_shift);
  inv_scale_ = 1.0f / p.data_scale;
  in_k_ = p.data_scale / p.in_divisor;
  for (int c = 0; c < 256; ++c) deq_code_[c] = (float(c) - shift_) / scale_;
  wih_.assign(size_t(L_) * G4 * H, 0);
  whh_.assign(size_t(L_) * G4 * H, 0);
  comp_.assign(size_t(L_) * R_, 0);
  bias_.assign(size_t(L_) * R_, 0.0f);
  per_matrix_ = p.per_matrix(H);
  // Row scale of layer l's W_ih (m = 0) or W_hh (m = 1).
  auto scale_of = [&](int l, int m, int r) {
    return per_matrix_ ? p.weight_scale[(size_t(2) * l + m) * G4 + r] : p.weight_scale[size_t(r)];
  };
  deq_.assign(size_t(L_) * R_, 0.0f);
  if (per_matrix_) {
    deq_hh_.assign(size_t(L_) * R_, 0.0f);
    comp_hh_.assign(size_t(L_) * R_, 0);
  }
  auto code = [&](float w, float s) { return int8_t(std::clamp(std::nearbyint(w / s), -127.0f, 127.0f)); };
  for (int l = 0; l < L_; ++l)
    for (int r = 0; r < G4; ++r) {
      const float si = scale_of(l, 0, r), sh = scale_of(l, 1, r);
      int32_t sum_i = 0, sum_h = 0;
      for (int i = 0; i < H; ++i) {
        const size_t src = (size_t(l) * H + i) * G4 + r;  // ldigo: [l][i][gate row]
        const int8_t a = code(w_l[src], si), b = code(w_i[src], sh);
        wih_[(size_t(l) * G4 + r) * H + i] = a;
        whh_[(size_t(l) * G4 + r) * H + i] = b;
        sum_i += int32_t(a);
        sum_h += int32_t(b);
      }
      deq_[size_t(l) * R_ + r] = si / p.data_scale;
      if (per_matrix_) {
        comp_[size_t(l) * R_ + r] = shift_i_ * sum_i;
        comp_hh_[size_t(l) * R_ + r] = shift_i_ * sum_h;
        deq_hh_[size_t(l) * R_ + r] = sh / p.data_scale;
      } else {
        comp_[size_t(l) * R_ + r] = shift_i_ * (sum_i + sum_h);
      }
      bias_[size_t(l) * R_ + r] = bias[size_t(l) * G4 + r];
    }
  wcache_.resize(size_t(L_));
  const size_t per = size_t(R_) * K4_ * 4;
  whh_p_.resize(size_t(L_) * per);
  wih_p_.resize(size_t(L_) * per);
  for (int l = 0; l < L_; ++l) {
    pack(whh_.data() + size_t(l) * G4 * H, G4, H, R_, K4_, whh_p_.data() + l * per);
    pack(wih_.data() + size_t(l) * G4 * H, G4, H, R_, K4_, wih_p_.data() + l * per);
  }
}

LstmInt8Impl::Proj LstmInt8Impl::make_proj(int64_t T) const {
  using dnnl::memory;
  const int64_t H = H_, G4 = 4 * H;
  memory::desc src_md({T, H}, ddt::u8, dtag::ab);
  memory::desc w_any({H, G4}, ddt::s8, dtag::any);
  memory::desc w_user({H, G4}, ddt::s8, dtag::ba);  // codes stored [4H, H]
  memory::desc dst_md({T, G4}, ddt::s32, dtag::ab);
  // No output scales: the integer sums come out exact and are dequantized with the recurrent ones.
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src_md, w_any, dst_md), scratchpad_attr(), cpu_engine());
  Proj e{dnnl::matmul(pd), src_md, dst_md, {}};
  for (int l = 0; l < L_; ++l)
    e.w.push_back(wcache_[size_t(l)].get(pd.weights_desc(), [&] {
      return reorder_s8_weights(pd.weights_desc(), w_user, wih_.data() + size_t(l) * G4 * H);
    }));
  return e;
}

void LstmInt8Impl::forward(const float* x, int64_t T, float* y, const float* h0, const float* c0, float* h1, float* c1,
                           LstmInt8Kernel k) const {
  const int H = H_, R = R_, K4 = K4_, L = L_;
  const bool vnni = k == LstmInt8Kernel::Avx512Vnni;
  if (vnni && !cpu_has_vnni()) throw Error("Lstm: the avx512-vnni int8 kernel needs AVX-512 VNNI");
  // Time in chunks of kChunk steps, every layer over a chunk before the next chunk (the same arithmetic as layer
  // by layer over the whole sequence: each layer carries its hidden codes and cell from chunk to chunk), so that
  // the scratch stays bounded for any T and at most two matmul shapes serve a call.
  constexpr int64_t kChunk = 256;
  const int64_t TC = std::min(T, kChunk);
  // Scratch per thread, grown to the largest shape seen: no allocation once warm.
  thread_local std::vector<uint8_t> in, out, hq, rowpad;
  thread_local std::vector<int32_t> gx, gh;
  thread_local std::vector<float> c;
  const size_t hs = size_t(4) * K4;  // hidden codes of a layer, padded with zero codes (their weights are 0)
  if (in.size() < size_t(TC) * H) in.resize(size_t(TC) * H), out.resize(size_t(TC) * H);
  if (gx.size() < size_t(TC) * R) gx.resize(size_t(TC) * R);
  if (per_matrix_ && gh.size() < size_t(R)) gh.resize(size_t(R));
  if (hq.size() < size_t(L) * hs) hq.resize(size_t(L) * hs);
  if (rowpad.size() < hs) rowpad.resize(hs);
  if (c.size() < size_t(L) * H) c.resize(size_t(L) * H);
  // Each layer's carried state: hidden codes (requantized: the codes a longer call would have used) and cell.
  for (int l = 0; l < L; ++l) {
    uint8_t* q = hq.data() + l * hs;
    for (int j = 0; j < H; ++j)
      q[j] = uint8_t(std::clamp(std::nearbyint(h0[size_t(l) * H + j] * scale_ + shift_), 0.0f, 255.0f));
    std::fill(q + H, q + hs, uint8_t(0));
  }
  std::copy(c0, c0 + size_t(L) * H, c.begin());
  const size_t per = size_t(R) * K4 * 4;
  for (int64_t t0 = 0; t0 < T; t0 += kChunk) {
    const int64_t n = std::min(kChunk, T - t0);
    quantize_codes(x + t0 * H, n * H, in_k_, shift_, in.data());
    // A few steps (a streaming push) run their input products as VNNI GEMVs: oneDNN's matmul costs more there.
    constexpr int64_t kMatmulMin = 8;
    std::shared_ptr<const Proj> proj;
    if (vnni && n >= kMatmulMin) proj = proj_cache_.get(n, [&] { return make_proj(n); });
    for (int l = 0; l < L; ++l) {
      // Input products of the chunk's steps: gx[t] = W_ih codes . input codes (raw u8; shift compensated later).
      int32_t* g = gx.data();
      if (proj) {
        run_primitive(proj->prim, {{DNNL_ARG_SRC, dnnl::memory(proj->src_md, cpu_engine(), in.data())},
                                   {DNNL_ARG_WEIGHTS, proj->w[size_t(l)]},
                                   {DNNL_ARG_DST, dnnl::memory(proj->dst_md, cpu_engine(), g)}});
        if (R != 4 * H)  // the matmul wrote rows of 4H: spread them to R (from the last, in place)
          for (int64_t t = n - 1; t >= 0; --t) {
            std::memmove(g + t * R, g + t * 4 * H, sizeof(int32_t) * 4 * H);
            std::fill(g + t * R + 4 * H, g + (t + 1) * R, 0);
          }
      } else if (vnni) {
        std::fill(g, g + n * R, 0);
        uint8_t* pad = rowpad.data();  // the input row padded to 4 * K4 codes
        for (int64_t t = 0; t < n; ++t) {
          const uint8_t* row = in.data() + t * H;
          if (4 * K4 != H) {
            std::copy(row, row + H, pad);
            std::fill(pad + H, pad + 4 * K4, uint8_t(0));
            row = pad;
          }
          lstm_int8_gemv_vnni(wih_p_.data() + l * per, R / 16, K4, row, g + t * R);
        }
      } else {
        const int8_t* w = wih_.data() + size_t(l) * 4 * H * H;
        std::fill(g, g + n * R, 0);
        for (int64_t t = 0; t < n; ++t) lstm_int8_gemv_portable(w, 4 * H, H, in.data() + t * H, g + t * R);
      }
      // The recurrence: the hidden-to-hidden products, then gates and cell, step by step.
      uint8_t* q = hq.data() + l * hs;
      float* cl = c.data() + size_t(l) * H;
      const int8_t* wp = whh_p_.data() + l * per;
      const int8_t* wr = whh_.data() + size_t(l) * 4 * H * H;
      const int32_t* comp = comp_.data() + size_t(l) * R;
      const float* deq = deq_.data() + size_t(l) * R;
      const float* bias = bias_.data() + size_t(l) * R;
      for (int64_t t = 0; t < n; ++t) {
        int32_t* a = g + t * R;
        if (per_matrix_) {  // the recurrent sums apart, under W_hh's scales
          int32_t* ah = gh.data();
          std::fill(ah, ah + R, 0);
          if (vnni) lstm_int8_gemv_vnni(wp, R / 16, K4, q, ah);
          else lstm_int8_gemv_portable(wr, 4 * H, H, q, ah);
          gates_step2(a, comp, deq, ah, comp_hh_.data() + size_t(l) * R, deq_hh_.data() + size_t(l) * R, bias, H,
                      scale_, shift_, cl, q);
        } else {
          if (vnni) lstm_int8_gemv_vnni(wp, R / 16, K4, q, a);
          else lstm_int8_gemv_portable(wr, 4 * H, H, q, a);
          gates_step(a, comp, deq, bias, H, scale_, shift_, cl, q);
        }
        std::copy(q, q + H, out.data() + t * H);
      }
      std::swap(in, out);
    }
    float* __restrict yc = y + t0 * H;
    const float* __restrict lut = deq_code_;
    const uint8_t* __restrict codes = in.data();
    for (int64_t i = 0; i < n * H; ++i) yc[i] = lut[codes[i]];
  }
  for (int l = 0; l < L; ++l)
    for (int j = 0; j < H; ++j) h1[size_t(l) * H + j] = deq_code_[hq[l * hs + j]];
  std::copy(c.data(), c.data() + size_t(L) * H, c1);
}

}  // namespace wavtok
