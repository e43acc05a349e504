// The int8 LSTM's own implementation: input products as one matmul per layer, the recurrence as a u8 x s8 GEMV
// per step, gates and cell in float (nn/lstm_int8.h).
#include "nn/lstm_int8.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "nn/layer_support.h"
#include "nn/layers.h"

namespace wavtok {

namespace {

std::atomic<int> g_kernel{int(LstmInt8Kernel::Auto)};

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

// Packs rows [0, rows) x [0, cols) of codes (row-major, leading dim cols) into [R/16, K4, 16, 4], zeros outside.
void pack(const int8_t* codes, int rows, int cols, int R, int K4, int8_t* out) {
  std::memset(out, 0, size_t(R) * K4 * 4);
  for (int r = 0; r < rows; ++r)
    for (int k = 0; k < cols; ++k)
      out[((size_t(r / 16) * K4 + k / 4) * 16 + r % 16) * 4 + k % 4] = codes[size_t(r) * cols + k];
}

}  // namespace

void set_lstm_int8_kernel(LstmInt8Kernel k) {
  if (!lstm_int8_kernel_supported(k))
    throw Error(std::string("set_lstm_int8_kernel: this CPU cannot run the ") + lstm_int8_kernel_name(k) +
                " kernel");
  g_kernel.store(int(k));
}

LstmInt8Kernel lstm_int8_kernel() {
  const auto k = LstmInt8Kernel(g_kernel.load());
  if (k != LstmInt8Kernel::Auto) return k;
  return cpu_has_vnni() ? LstmInt8Kernel::Avx512Vnni : LstmInt8Kernel::Portable;
}

bool lstm_int8_kernel_supported(LstmInt8Kernel k) { return k != LstmInt8Kernel::Avx512Vnni || cpu_has_vnni(); }

const char* lstm_int8_kernel_name(LstmInt8Kernel k) {
  switch (k) {
    case LstmInt8Kernel::Auto: return "auto";
    case LstmInt8Kernel::Portable: return "portable";
    case LstmInt8Kernel::Avx512Vnni: return "avx512-vnni";
    case LstmInt8Kernel::OneDnnRnn: return "onednn-rnn";
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

__attribute__((target("avx512f,avx512bw,avx512vnni"))) void lstm_int8_gemv_vnni(const int8_t* w, int blocks, int k4,
                                                                                const uint8_t* h, int32_t* acc) {
  const size_t bs = size_t(k4) * 64;  // bytes per block of 16 rows
  int b = 0;
  // Eight blocks at a time: eight independent accumulator chains hide vpdpbusd's latency, one broadcast each.
  for (; b + 8 <= blocks; b += 8) {
    __m512i a[8];
    for (int i = 0; i < 8; ++i) a[i] = _mm512_loadu_si512(acc + 16 * (b + i));
    const int8_t* wb = w + size_t(b) * bs;
    for (int k = 0; k < k4; ++k) {
      int32_t hv;
      std::memcpy(&hv, h + 4 * k, 4);
      const __m512i x = _mm512_set1_epi32(hv);
      const int8_t* wk = wb + size_t(k) * 64;
      for (int i = 0; i < 8; ++i) a[i] = _mm512_dpbusd_epi32(a[i], x, _mm512_loadu_si512(wk + i * bs));
    }
    for (int i = 0; i < 8; ++i) _mm512_storeu_si512(acc + 16 * (b + i), a[i]);
  }
  for (; b < blocks; ++b) {
    __m512i a = _mm512_loadu_si512(acc + 16 * b);
    const int8_t* wb = w + size_t(b) * bs;
    for (int k = 0; k < k4; ++k) {
      int32_t hv;
      std::memcpy(&hv, h + 4 * k, 4);
      a = _mm512_dpbusd_epi32(a, _mm512_set1_epi32(hv), _mm512_loadu_si512(wb + size_t(k) * 64));
    }
    _mm512_storeu_si512(acc + 16 * b, a);
  }
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
  deq_.assign(size_t(R_), 0.0f);
  for (int r = 0; r < G4; ++r) deq_[r] = p.weight_scale[r] / p.data_scale;
  auto code = [&](float w, int r) {
    return int8_t(std::clamp(std::nearbyint(w / p.weight_scale[r]), -127.0f, 127.0f));
  };
  for (int l = 0; l < L_; ++l)
    for (int r = 0; r < G4; ++r) {
      int32_t sum = 0;
      for (int i = 0; i < H; ++i) {
        const size_t src = (size_t(l) * H + i) * G4 + r;  // ldigo: [l][i][gate row]
        const int8_t a = code(w_l[src], r), b = code(w_i[src], r);
        wih_[(size_t(l) * G4 + r) * H + i] = a;
        whh_[(size_t(l) * G4 + r) * H + i] = b;
        sum += int32_t(a) + int32_t(b);
      }
      comp_[size_t(l) * R_ + r] = shift_i_ * sum;
      bias_[size_t(l) * R_ + r] = bias[size_t(l) * G4 + r];
    }
  wcache_.resize(size_t(L_));
  const size_t per = size_t(R_) * K4_ * 4;
  whh_p_.resize(size_t(L_) * per);
  for (int l = 0; l < L_; ++l) pack(whh_.data() + size_t(l) * G4 * H, G4, H, R_, K4_, whh_p_.data() + l * per);
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

void LstmInt8Impl::forward(const float* x, int64_t T, float* y, const float* h0, const float* c0, float* h1,
                           float* c1, LstmInt8Kernel k) const {
  const int H = H_, R = R_, K4 = K4_;
  const bool vnni = k == LstmInt8Kernel::Avx512Vnni;
  if (vnni && !cpu_has_vnni()) throw Error("Lstm: the avx512-vnni int8 kernel needs AVX-512 VNNI");
  // Scratch per thread, grown to the largest shape seen: no allocation once warm.
  thread_local std::vector<uint8_t> in, out, hq;
  thread_local std::vector<int32_t> gx, acc;
  thread_local std::vector<float> c;
  const size_t nx = size_t(T) * H, ng = size_t(T) * R;
  if (in.size() < nx) in.resize(nx), out.resize(nx);
  if (gx.size() < ng) gx.resize(ng);
  if (hq.size() < size_t(4) * K4) hq.resize(size_t(4) * K4);
  if (acc.size() < size_t(R)) acc.resize(size_t(R));
  if (c.size() < size_t(H)) c.resize(size_t(H));
  std::fill(hq.begin(), hq.end(), uint8_t(0));  // padding inputs (weights there are 0)
  for (size_t i = 0; i < nx; ++i) in[i] = uint8_t(std::clamp(std::nearbyint(x[i] * in_k_ + shift_), 0.0f, 255.0f));
  std::shared_ptr<const Proj> proj;
  if (vnni) proj = proj_cache_.get(T, [&] { return make_proj(T); });
  const size_t per = size_t(R) * K4 * 4;
  for (int l = 0; l < L_; ++l) {
    // Input products of every step: gx[t] = W_ih codes . input codes (raw u8; the shift is compensated later).
    if (proj) {
      // The matmul writes [T, 4H]; with R == 4H (H % 4 == 0) that is gx's layout, else spread the rows out.
      int32_t* dst = gx.data();
      run_primitive(proj->prim, {{DNNL_ARG_SRC, dnnl::memory(proj->src_md, cpu_engine(), in.data())},
                                 {DNNL_ARG_WEIGHTS, proj->w[size_t(l)]},
                                 {DNNL_ARG_DST, dnnl::memory(proj->dst_md, cpu_engine(), dst)}});
      if (R != 4 * H)
        for (int64_t t = T - 1; t >= 0; --t) {
          std::memmove(dst + t * R, dst + t * 4 * H, sizeof(int32_t) * 4 * H);
          std::fill(dst + t * R + 4 * H, dst + (t + 1) * R, 0);
        }
    } else {
      const int8_t* w = wih_.data() + size_t(l) * 4 * H * H;
      for (int64_t t = 0; t < T; ++t) {
        std::fill(gx.data() + t * R, gx.data() + (t + 1) * R, 0);
        lstm_int8_gemv_portable(w, 4 * H, H, in.data() + t * H, gx.data() + t * R);
      }
    }
    // Recurrence: hidden codes of the carried state (requantized: the codes a longer call would have used).
    for (int j = 0; j < H; ++j)
      hq[size_t(j)] = uint8_t(std::clamp(std::nearbyint(h0[size_t(l) * H + j] * scale_ + shift_), 0.0f, 255.0f));
    std::fill(hq.begin() + H, hq.end(), uint8_t(0));
    std::copy(c0 + size_t(l) * H, c0 + size_t(l + 1) * H, c.begin());
    const int8_t* wp = whh_p_.data() + l * per;
    const int8_t* wr = whh_.data() + size_t(l) * 4 * H * H;
    const int32_t* comp = comp_.data() + size_t(l) * R;
    const float* bias = bias_.data() + size_t(l) * R;
    for (int64_t t = 0; t < T; ++t) {
      int32_t* a = gx.data() + t * R;
      if (vnni) lstm_int8_gemv_vnni(wp, R / 16, K4, hq.data(), a);
      else lstm_int8_gemv_portable(wr, 4 * H, H, hq.data(), a);
      gates_step(a, comp, deq_.data(), bias, H, scale_, shift_, c.data(), hq.data());
      std::copy(hq.data(), hq.data() + H, out.data() + t * H);
    }
    for (int j = 0; j < H; ++j) h1[size_t(l) * H + j] = deq_code_[hq[size_t(j)]];
    std::copy(c.data(), c.data() + H, c1 + size_t(l) * H);
    std::swap(in, out);
  }
  for (size_t i = 0; i < nx; ++i) y[i] = deq_code_[in[i]];
}

}  // namespace wavtok
