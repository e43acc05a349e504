// Conv1d with per-token (dynamic) u8 activations: each output step's im2col row quantized on its own range
// (Int8Params::dynamic in nn/layers.h defines the arithmetic; docs/PTQ.md "Per-token activations"), or each input
// step's group of N channels (Int8Params::act_group; docs/PTQ.md "Activation ranges per step and channel group").
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "core/error.h"
#include "nn/layer_support.h"
#include "nn/layers.h"

namespace wavtok {

using dnnl::memory;

// What per-token and per-group layers share: a dense channels-last conv with no static input quantization, at most
// kMaxTokenCols inputs per output. Throws naming the layer.
void Conv1d::check_dynamic_int8(const Int8Params& p, const std::string& who) const {
  if (!channels_last_)
    throw Error(who + "needs a channels-last layer (the SEANet convs); this one is channels-first");
  if (groups_ != 1) throw Error(who + "needs groups == 1");
  if (p.act_scale != 1.0f || p.act_zero != 0 || !p.in_shift.empty() || !p.in_scale.empty())
    throw Error(who + "takes no static activation scale, zero point, shift or divisor");
  const int64_t kc = int64_t(cin_) * kernel_;
  if (kc > kMaxTokenCols)
    throw Error(who + "reads " + std::to_string(kc) + " inputs per output, more than " +
                std::to_string(kMaxTokenCols));
}

void Conv1d::set_token_int8(const Int8State& q) {
  check_dynamic_int8(q.p, "Conv1d" + (name_.empty() ? std::string() : " " + name_) + ": per-token int8 ");
  const Int8Params& p = q.p;
  const int64_t kc = int64_t(cin_) * kernel_;
  auto t = std::make_shared<TokenWeights>();
  t->w.resize(size_t(cout_) * size_t(kc));
  t->sum.assign(size_t(cout_), 0);
  t->scale = p.weight_scale;
  for (int o = 0; o < cout_; ++o)
    for (int c = 0; c < cin_; ++c)
      for (int k = 0; k < kernel_; ++k) {
        const int8_t v = q.qw[(size_t(o) * cin_ + c) * kernel_ + k];
        t->w[size_t(o) * kc + size_t(k) * cin_ + c] = v;
        t->sum[size_t(o)] += v;
      }
  tok_ = std::move(t);
}

Conv1d::TokenEntry Conv1d::make_token(int64_t tout) const {
  const int64_t kc = int64_t(cin_) * kernel_;
  memory::desc src_md({tout, kc}, ddt::u8, dtag::ab);
  memory::desc w_any({kc, cout_}, ddt::s8, dtag::any);
  memory::desc w_user({kc, cout_}, ddt::s8, dtag::ba);  // stored [Cout][K*Cin]
  memory::desc dst_md({tout, cout_}, ddt::s32, dtag::ab);
  // No output scales: the exact integer sums are dequantized per token and channel below.
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src_md, w_any, dst_md), scratchpad_attr(), cpu_engine());
  return TokenEntry{dnnl::matmul(pd), wcache_.get(pd.weights_desc(), [&] {
                      return reorder_s8_weights(pd.weights_desc(), w_user, tok_->w.data());
                    }),
                    src_md, dst_md};
}

namespace {

// min(min(r), 0) and max(max(r), 0) of one input frame of n floats (any order: min and max are exact).
inline void frame_range(const float* r, int n, float* lo_out, float* hi_out) {
#if defined(__AVX512F__)
  if (n >= 16) {
    __m512 lo = _mm512_setzero_ps(), hi = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
      const __m512 v = _mm512_loadu_ps(r + i);
      lo = _mm512_min_ps(lo, v);
      hi = _mm512_max_ps(hi, v);
    }
    if (i < n) {  // the rest, zero-filled: 0 lies in the range anyway
      const __m512 v = _mm512_maskz_loadu_ps(__mmask16((1u << (n - i)) - 1u), r + i);
      lo = _mm512_min_ps(lo, v);
      hi = _mm512_max_ps(hi, v);
    }
    *lo_out = _mm512_reduce_min_ps(lo);
    *hi_out = _mm512_reduce_max_ps(hi);
    return;
  }
#endif
  float lo = 0.0f, hi = 0.0f;
  for (int i = 0; i < n; ++i) {
    lo = r[i] < lo ? r[i] : lo;
    hi = r[i] > hi ? r[i] : hi;
  }
  *lo_out = lo;
  *hi_out = hi;
}

// s = max((hi - lo) / 255, 1e-8), inv = 1 / s, z = clamp(rint(-lo * inv), 0, 255) for n rows (Int8Params::dynamic).
WAVTOK_WIDE_VECTORS void row_params(const float* lo, const float* hi, int64_t n, float* s, float* inv, float* z) {
  for (int64_t t = 0; t < n; ++t) {
    const float st = std::max((hi[t] - lo[t]) / 255.0f, 1e-8f);
    const float it = 1.0f / st;
    s[t] = st;
    inv[t] = it;
    z[t] = std::clamp(std::nearbyint(-lo[t] * it), 0.0f, 255.0f);
  }
}

// u8 codes clamp(rint(v * inv), -z, 255 - z) + z (rint half-to-even, as quantize_act).
WAVTOK_WIDE_VECTORS inline void codes_row(const float* r, int64_t n, float inv, float z, uint8_t* out) {
#if defined(__AVX512F__) && defined(__AVX512BW__)
  // 64 values a step, packed to bytes in registers and stored at once; the tail masked (rows are short, K*Cin
  // from 7), so there is no scalar remainder loop.
  const __m512 vi = _mm512_set1_ps(inv), vz = _mm512_set1_ps(z), vlo = _mm512_set1_ps(-z),
               vhi = _mm512_set1_ps(255.0f - z);
  // packus interleaves the four vectors by 128-bit lane: dword 4l + j of the packed bytes holds lane l of vector j.
  const __m512i order = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
  auto code16 = [&](int64_t i) {
    const int64_t left = n - i;
    const __mmask16 m = left >= 16 ? __mmask16(0xffff) : left <= 0 ? __mmask16(0) : __mmask16((1u << left) - 1u);
    __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, r + i), vi);
    v = _mm512_min_ps(_mm512_max_ps(v, vlo), vhi);
    v = _mm512_add_ps(_mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), vz);
    return _mm512_cvttps_epi32(v);
  };
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const __m512i a0 = code16(i), a1 = code16(i + 16), a2 = code16(i + 32), a3 = code16(i + 48);
    const __m512i b = _mm512_packus_epi16(_mm512_packus_epi32(a0, a1), _mm512_packus_epi32(a2, a3));
    _mm512_storeu_si512(out + i, _mm512_permutexvar_epi32(order, b));
  }
  for (; i < n; i += 16) {  // the rest 16 at a time
    const int64_t left = n - i;
    const __mmask16 m = left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1u);
    _mm_mask_storeu_epi8(out + i, m, _mm512_cvtepi32_epi8(code16(i)));
  }
#else
  constexpr float kMagic = 12582912.0f;
  const float lo = -z, hi = 255.0f - z;
  for (int64_t i = 0; i < n; ++i) {
    float v = std::clamp(r[i] * inv, lo, hi);
    v = (v + kMagic) - kMagic;
    out[i] = static_cast<uint8_t>(static_cast<int>(v + z));
  }
#endif
}

// y[t, o] = (s_t * ws[o]) * float(acc[t, o] - z_t * S_o) + b[o] [+ y[t, o]] over one token's Cout outputs.
WAVTOK_WIDE_VECTORS inline void epilogue_row(const int32_t* acc, int cout, float st, int32_t zt, const float* ws,
                                             const int32_t* sum, const float* b, float* y, bool accumulate) {
#if defined(__AVX512F__)
  const __m512 vs = _mm512_set1_ps(st);
  const __m512i vz = _mm512_set1_epi32(zt);
  for (int o = 0; o < cout; o += 16) {
    const __mmask16 m = cout - o >= 16 ? __mmask16(0xffff) : __mmask16((1u << (cout - o)) - 1u);
    const __m512i d = _mm512_sub_epi32(_mm512_maskz_loadu_epi32(m, acc + o),
                                       _mm512_mullo_epi32(vz, _mm512_maskz_loadu_epi32(m, sum + o)));
    const __m512 sc = _mm512_mul_ps(vs, _mm512_maskz_loadu_ps(m, ws + o));
    // a product then a sum, not fused: the same float32 roundings as the definition (and python/qat.py's emulation)
    __m512 v = _mm512_add_ps(_mm512_mul_ps(sc, _mm512_cvtepi32_ps(d)), _mm512_maskz_loadu_ps(m, b + o));
    if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, y + o));
    _mm512_mask_storeu_ps(y + o, m, v);
  }
#else
  if (accumulate) {
    for (int o = 0; o < cout; ++o) y[o] = ((st * ws[o]) * float(acc[o] - zt * sum[o]) + b[o]) + y[o];
  } else {
    for (int o = 0; o < cout; ++o) y[o] = (st * ws[o]) * float(acc[o] - zt * sum[o]) + b[o];
  }
#endif
}

#if defined(__AVX512F__) && defined(__AVX512BW__)
// Narrow layers (the shipped model's 24 kHz convs: 1-16 channels, 8-16 outputs) cost per row more than their MACs;
// these do several rows or frames per vector where the widths divide 16.

// l / w for lane l: lane -> row within a vector of 16 / w rows of width w.
inline __m512i lane_rows(int w) {
  alignas(64) int32_t idx[16];
  for (int l = 0; l < 16; ++l) idx[l] = l / w;
  return _mm512_load_si512(idx);
}

// Per-frame min(min, 0) / max(max, 0) for cin in {1, 2, 4, 8}: 16 / cin frames per vector, reduced within each
// group of cin lanes by xor-permutes, one lane per frame compressed and stored. Returns the frames done.
WAVTOK_WIDE_VECTORS int64_t frame_ranges_narrow(const float* x, int64_t nf, int cin, float* flo, float* fhi) {
  const int g = 16 / cin;
  const __mmask16 gm = __mmask16((1u << g) - 1u);
  __mmask16 first = 0;
  for (int l = 0; l < 16; l += cin) first = __mmask16(first | (1u << l));
  const __m512i lanes = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  const __m512 zero = _mm512_setzero_ps();
  int64_t f = 0;
  for (; f + g <= nf; f += g) {
    const __m512 v = _mm512_loadu_ps(x + f * cin);
    __m512 lo = _mm512_min_ps(v, zero), hi = _mm512_max_ps(v, zero);
    for (int st = 1; st < cin; st <<= 1) {
      const __m512i idx = _mm512_xor_si512(lanes, _mm512_set1_epi32(st));
      lo = _mm512_min_ps(lo, _mm512_permutexvar_ps(idx, lo));
      hi = _mm512_max_ps(hi, _mm512_permutexvar_ps(idx, hi));
    }
    // compress in registers, then a masked store: the memory form of vcompressps is microcoded on AMD Zen 4
    // (it took 60 % of a per-group conv's time there)
    _mm512_mask_storeu_ps(flo + f, gm, _mm512_maskz_compress_ps(first, lo));
    _mm512_mask_storeu_ps(fhi + f, gm, _mm512_maskz_compress_ps(first, hi));
  }
  return f;
}

// The u8 codes of rows that are single contiguous frames (K = 1, stride 1) of width cin in {1, 2, 4, 8, 16}:
// 16 / cin rows per vector, each lane with its row's inv and z. Returns the rows done.
WAVTOK_WIDE_VECTORS int64_t codes_rows_narrow(const float* x, int64_t n, int cin, const float* rinv, const float* rz,
                                              uint8_t* out) {
  const int g = 16 / cin;
  const __m512i rows = lane_rows(cin);
  const __mmask16 gm = __mmask16((1u << g) - 1u);
  int64_t t = 0;
  for (; t + g <= n; t += g) {
    const __m512 vi = _mm512_permutexvar_ps(rows, _mm512_maskz_loadu_ps(gm, rinv + t));
    const __m512 vz = _mm512_permutexvar_ps(rows, _mm512_maskz_loadu_ps(gm, rz + t));
    __m512 v = _mm512_mul_ps(_mm512_loadu_ps(x + t * cin), vi);
    v = _mm512_min_ps(_mm512_max_ps(v, _mm512_sub_ps(_mm512_setzero_ps(), vz)),
                      _mm512_sub_ps(_mm512_set1_ps(255.0f), vz));
    v = _mm512_add_ps(_mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), vz);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + t * cin), _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(v)));
  }
  return t;
}

// epilogue_row over rows of cout in {1, 2, 4, 8, 16} outputs: 16 / cout rows per vector. Returns the rows done.
WAVTOK_WIDE_VECTORS int64_t epilogue_rows_narrow(const int32_t* acc, int64_t n, int cout, const float* ss,
                                                 const float* rz, const float* ws, const int32_t* sum, const float* b,
                                                 float* y, bool accumulate) {
  const int g = 16 / cout;
  const __m512i rows = lane_rows(cout);
  const __mmask16 gm = __mmask16((1u << g) - 1u);
  alignas(64) float wsl[16], bl[16];
  alignas(64) int32_t suml[16];
  for (int l = 0; l < 16; ++l) wsl[l] = ws[l % cout], bl[l] = b[l % cout], suml[l] = sum[l % cout];
  const __m512 vws = _mm512_load_ps(wsl), vb = _mm512_load_ps(bl);
  const __m512i vsum = _mm512_load_si512(suml);
  int64_t t = 0;
  for (; t + g <= n; t += g) {
    const __m512 vs = _mm512_permutexvar_ps(rows, _mm512_maskz_loadu_ps(gm, ss + t));
    const __m512i vz = _mm512_cvttps_epi32(_mm512_permutexvar_ps(rows, _mm512_maskz_loadu_ps(gm, rz + t)));
    const __m512i d = _mm512_sub_epi32(_mm512_loadu_si512(acc + t * cout), _mm512_mullo_epi32(vz, vsum));
    __m512 v = _mm512_add_ps(_mm512_mul_ps(_mm512_mul_ps(vs, vws), _mm512_cvtepi32_ps(d)), vb);
    if (accumulate) v = _mm512_add_ps(v, _mm512_loadu_ps(y + t * cout));
    _mm512_storeu_ps(y + t * cout, v);
  }
  return t;
}
#endif

}  // namespace

WAVTOK_WIDE_VECTORS void Conv1d::run_token(const float* x, int64_t tin, float* y, bool accumulate) const {
  const int64_t tout = out_len(tin);
  const int64_t kc = int64_t(cin_) * kernel_;
  // Outputs per matmul: about 512 KiB of u8 codes (so they stay in cache), 16 .. 4096 rows; a call of n outputs
  // uses at most two shapes (the tile and the rest).
  const int64_t tile = std::clamp<int64_t>((int64_t(1) << 19) / kc / 16 * 16, 16, 4096);
  thread_local std::vector<uint8_t> cols;
  thread_local std::vector<int32_t> acc;
  thread_local std::vector<float> ss, rlo, rhi, rinv, rz;
  const int64_t rows = std::min(tile, tout);
  if (cols.size() < size_t(rows * kc)) cols.resize(size_t(rows * kc));
  if (acc.size() < size_t(rows * cout_)) acc.resize(size_t(rows * cout_));
  if (ss.size() < size_t(rows))
    for (auto* v : {&ss, &rlo, &rhi, &rinv, &rz}) v->resize(size_t(rows));
  const TokenWeights& tw = *tok_;
  const int64_t span = int64_t(dilation_) * (kernel_ - 1) + 1;
  thread_local std::vector<float> flo, fhi;  // per input frame: min(min, 0), max(max, 0)
  const int64_t frames = (rows - 1) * stride_ + span;
  if (flo.size() < size_t(frames)) flo.resize(size_t(frames)), fhi.resize(size_t(frames));
  const int64_t step = int64_t(dilation_) * cin_;
  for (int64_t a = 0; a < tout; a += tile) {
    const int64_t n = std::min(tile, tout - a);
    const float* xa = x + a * stride_ * cin_;
    const int64_t nf = (n - 1) * stride_ + span;
    int64_t f0 = 0;
#if defined(__AVX512F__) && defined(__AVX512BW__)
    if (cin_ < 16 && 16 % cin_ == 0) f0 = frame_ranges_narrow(xa, nf, cin_, flo.data(), fhi.data());
#endif
    for (int64_t f = f0; f < nf; ++f) frame_range(xa + f * cin_, cin_, &flo[size_t(f)], &fhi[size_t(f)]);
    // each row's range: that of the K frames it reads (loops over the rows, which vectorise)
    std::fill_n(rlo.data(), n, 0.0f);
    std::fill_n(rhi.data(), n, 0.0f);
    for (int k = 0; k < kernel_; ++k) {
      const float* fl = flo.data() + int64_t(k) * dilation_;
      const float* fh = fhi.data() + int64_t(k) * dilation_;
      float* lo = rlo.data();
      float* hi = rhi.data();
      if (stride_ == 1) {
        for (int64_t t = 0; t < n; ++t) {
          lo[t] = fl[t] < lo[t] ? fl[t] : lo[t];
          hi[t] = fh[t] > hi[t] ? fh[t] : hi[t];
        }
      } else {
        for (int64_t t = 0; t < n; ++t) {
          lo[t] = fl[t * stride_] < lo[t] ? fl[t * stride_] : lo[t];
          hi[t] = fh[t * stride_] > hi[t] ? fh[t * stride_] : hi[t];
        }
      }
    }
    row_params(rlo.data(), rhi.data(), n, ss.data(), rinv.data(), rz.data());  // vectorised over the rows
    int64_t t0 = 0;
#if defined(__AVX512F__) && defined(__AVX512BW__)
    if (kernel_ == 1 && stride_ == 1 && 16 % cin_ == 0)
      t0 = codes_rows_narrow(xa, n, cin_, rinv.data(), rz.data(), cols.data());
#endif
    for (int64_t t = t0; t < n; ++t) {
      const float* base = xa + t * stride_ * cin_;
      const float inv = rinv[size_t(t)], z = rz[size_t(t)];
      uint8_t* row = cols.data() + t * kc;
      if (dilation_ == 1) {
        codes_row(base, kc, inv, z, row);  // the K frames lie next to each other: one run of K*Cin values
      } else {
        for (int k = 0; k < kernel_; ++k) codes_row(base + k * step, cin_, inv, z, row + int64_t(k) * cin_);
      }
    }
    auto e = tcache_.get(n, [&] { return make_token(n); });
    run_primitive(e->prim, {{DNNL_ARG_SRC, memory(e->src_md, cpu_engine(), cols.data())},
                            {DNNL_ARG_WEIGHTS, e->weights},
                            {DNNL_ARG_DST, memory(e->dst_md, cpu_engine(), acc.data())}});
    float* yt = y + a * cout_;
    int64_t e0 = 0;
#if defined(__AVX512F__) && defined(__AVX512BW__)
    if (16 % cout_ == 0)
      e0 = epilogue_rows_narrow(acc.data(), n, cout_, ss.data(), rz.data(), tw.scale.data(), tw.sum.data(), b_.data(),
                                yt, accumulate);
#endif
    for (int64_t t = e0; t < n; ++t)
      epilogue_row(acc.data() + t * cout_, cout_, ss[size_t(t)], int32_t(rz[size_t(t)]), tw.scale.data(), tw.sum.data(),
                   b_.data(), yt + t * cout_, accumulate);
    apply_act(post_, yt, n * cout_);
  }
}

// ---- Per-step, per-group ranges (Int8Params::act_group) ----

// The s8 codes for the VNNI dot products: per block of 16 outputs, tap, group and quad of 4 channels (a group padded
// to a multiple of 4 with zeros) a 64-byte vector whose lane l holds the 4 codes of output 16 ob + l; S_ogk per
// (ob, k, g) as 16 floats.
struct ConvGroupWeights {
  int n = 0, np = 0, ng = 0, ob = 0;  // group size, padded size, groups, output blocks
  std::vector<int8_t> w;              // [ob][K][ng][np / 4][16][4]
  std::vector<float> sum;             // [ob][K][ng][16]
  std::vector<float> scale;           // weight_scale [Cout]
};

int Conv1d::act_group() const { return grp_ ? grp_->n : 0; }

void Conv1d::set_group_int8(const Int8State& q) {
  const std::string who = "Conv1d" + (name_.empty() ? std::string() : " " + name_) + ": per-group int8 ";
  check_dynamic_int8(q.p, who);
  const Int8Params& p = q.p;
  const int n = p.act_group;
  if (n < 1 || n > cin_ || cin_ % n != 0)
    throw Error(who + "group of " + std::to_string(n) + " channels does not divide the " + std::to_string(cin_) +
                " input channels");
  auto g = std::make_shared<ConvGroupWeights>();
  g->n = n;
  g->np = (n + 3) / 4 * 4;
  g->ng = cin_ / n;
  g->ob = (cout_ + 15) / 16;
  const int nq = g->np / 4;
  g->w.assign(size_t(g->ob) * kernel_ * g->ng * nq * 64, 0);
  g->sum.assign(size_t(g->ob) * kernel_ * g->ng * 16, 0.0f);
  g->scale = p.weight_scale;
  for (int o = 0; o < cout_; ++o)
    for (int c = 0; c < cin_; ++c)
      for (int k = 0; k < kernel_; ++k) {
        const int8_t v = q.qw[(size_t(o) * cin_ + c) * kernel_ + k];
        const size_t blk = (size_t(o / 16) * kernel_ + k) * g->ng + c / n;  // (ob, k, g)
        const int j = c % n;
        g->w[(blk * nq + j / 4) * 64 + (o % 16) * 4 + j % 4] = v;
        g->sum[blk * 16 + o % 16] += float(v);  // |S| <= 127 N: exact in float32
      }
  grp_ = std::move(g);
}

namespace {

bool g_group_portable = false;

}  // namespace

void set_group_conv_portable_for_testing(bool on) { g_group_portable = on; }

namespace {

// The per-group kernel's inputs for a tile: u8 codes [frames][ng][np] (zero padded) and, per (frame, group), s and
// -(s z).
struct GroupTile {
  const uint8_t* codes;
  const float* s;
  const float* nsz;
  int ng, np, stride, dilation, kernel, cout;
};

// Outputs [t0, t0 + tb) of output block ob, the definition's loops in its order (any CPU).
void group_outputs_scalar(const GroupTile& gt, const ConvGroupWeights& gw, int ob, int64_t t0, int64_t tb,
                          const float* b, float* y, bool accumulate) {
  const int nq = gw.np / 4;
  const int lanes = std::min(16, gt.cout - ob * 16);
  for (int64_t t = t0; t < t0 + tb; ++t)
    for (int l = 0; l < lanes; ++l) {
      float a = 0.0f;
      for (int k = 0; k < gt.kernel; ++k) {
        const int64_t f = t * gt.stride + int64_t(k) * gt.dilation;
        for (int g = 0; g < gt.ng; ++g) {
          const size_t blk = (size_t(ob) * gt.kernel + k) * gt.ng + g;
          const int64_t r = f * gt.ng + g;
          const uint8_t* qp = gt.codes + r * gt.np;
          const int8_t* wp = gw.w.data() + blk * nq * 64 + l * 4;
          int32_t i = 0;
          for (int j = 0; j < nq; ++j)
            for (int e = 0; e < 4; ++e) i += int32_t(qp[4 * j + e]) * int32_t(wp[j * 64 + e]);
          a = std::fma(float(i), gt.s[r], a);
          a = std::fma(gt.nsz[r], gw.sum[blk * 16 + l], a);
        }
      }
      const int o = ob * 16 + l;
      float* yo = y + t * gt.cout + o;
      const float v = gw.scale[size_t(o)] * a + b[o];  // a product, then a sum (this file: -ffp-contract=off)
      *yo = accumulate ? v + *yo : v;
    }
}

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
// The same for TB consecutive outputs of block ob: per (k, g) each output's group codes broadcast 4 at a time into
// u8 x s8 dot products over 16 outputs (vpdpbusd), then the two fused multiply-adds of the definition. NQ (quads per
// group) is a template argument where it is small, so that every loop unrolls and the accumulators stay in registers;
// NQ = 0 reads it at run time.
template <int TB, int NQ>
WAVTOK_WIDE_VECTORS inline void group_outputs_vnni(const GroupTile& gt, const ConvGroupWeights& gw, int ob, int64_t t0,
                                                   const float* b, float* y, bool accumulate) {
  const int nq = NQ > 0 ? NQ : gw.np / 4;
  __m512 acc[TB];
#pragma GCC unroll 16
  for (int u = 0; u < TB; ++u) acc[u] = _mm512_setzero_ps();
  const int8_t* wp = gw.w.data() + size_t(ob) * gt.kernel * gt.ng * nq * 64;
  const float* sp = gw.sum.data() + size_t(ob) * gt.kernel * gt.ng * 16;
  const int64_t rstep = int64_t(gt.stride) * gt.ng;
  for (int k = 0; k < gt.kernel; ++k) {
    const int64_t r0 = (t0 * gt.stride + int64_t(k) * gt.dilation) * gt.ng;
    for (int g = 0; g < gt.ng; ++g, wp += nq * 64, sp += 16) {
      const __m512 sv = _mm512_loadu_ps(sp);
      const uint8_t* q0 = gt.codes + (r0 + g) * gt.np;
      const float* s0 = gt.s + r0 + g;
      const float* n0 = gt.nsz + r0 + g;
#pragma GCC unroll 16
      for (int u = 0; u < TB; ++u) {
        const uint8_t* qp = q0 + u * rstep * gt.np;
        __m512i i = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int j = 0; j < nq; ++j) {
          int32_t quad;
          std::memcpy(&quad, qp + 4 * j, 4);
          i = _mm512_dpbusd_epi32(i, _mm512_set1_epi32(quad), _mm512_loadu_si512(wp + j * 64));
        }
        acc[u] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i), _mm512_set1_ps(s0[u * rstep]), acc[u]);
        acc[u] = _mm512_fmadd_ps(_mm512_set1_ps(n0[u * rstep]), sv, acc[u]);
      }
    }
  }
  const int o = ob * 16;
  const __mmask16 m = gt.cout - o >= 16 ? __mmask16(0xffff) : __mmask16((1u << (gt.cout - o)) - 1u);
  const __m512 ws = _mm512_maskz_loadu_ps(m, gw.scale.data() + o), vb = _mm512_maskz_loadu_ps(m, b + o);
#pragma GCC unroll 16
  for (int u = 0; u < TB; ++u) {
    float* yo = y + (t0 + u) * gt.cout + o;
    __m512 v = _mm512_add_ps(_mm512_mul_ps(ws, acc[u]), vb);
    if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, yo));
    _mm512_mask_storeu_ps(yo, m, v);
  }
}

// Every output of block ob: blocks of 8, then singles.
template <int NQ>
WAVTOK_WIDE_VECTORS void group_block_vnni(const GroupTile& gt, const ConvGroupWeights& gw, int ob, int64_t nt,
                                          const float* b, float* y, bool accumulate) {
  int64_t t = 0;
  for (; t + 8 <= nt; t += 8) group_outputs_vnni<8, NQ>(gt, gw, ob, t, b, y, accumulate);
  for (; t < nt; ++t) group_outputs_vnni<1, NQ>(gt, gw, ob, t, b, y, accumulate);
}
#endif

}  // namespace

WAVTOK_WIDE_VECTORS void Conv1d::run_group(const float* x, int64_t tin, float* y, bool accumulate) const {
  const ConvGroupWeights& gw = *grp_;
  const int64_t tout = out_len(tin);
  const int n = gw.n, ng = gw.ng, np = gw.np;
  const int64_t span = int64_t(dilation_) * (kernel_ - 1) + 1;
  // Outputs per tile: the codes and per-group factors of the frames they read, about 128 KiB (they are read once
  // per block of 16 outputs, so they should stay in cache).
  const int64_t per_frame = int64_t(ng) * (np + 8);
  const int64_t tile = std::clamp<int64_t>((int64_t(1) << 17) / (per_frame * stride_), 16, 4096);
  const int64_t rows_max = ((std::min(tile, tout) - 1) * stride_ + span) * ng;  // (frame, group) rows of a tile
  thread_local std::vector<uint8_t> codes;
  thread_local std::vector<float> lo, hi, s, inv, z, nsz;
  if (codes.size() < size_t(rows_max * np)) codes.resize(size_t(rows_max * np));
  if (s.size() < size_t(rows_max))
    for (auto* v : {&lo, &hi, &s, &inv, &z, &nsz}) v->resize(size_t(rows_max));
  for (int64_t a = 0; a < tout; a += tile) {
    const int64_t nt = std::min(tile, tout - a);
    const float* xa = x + a * stride_ * cin_;
    const int64_t rows = ((nt - 1) * stride_ + span) * ng;  // each row: N adjacent values of xa
    int64_t r0 = 0;
#if defined(__AVX512F__) && defined(__AVX512BW__)
    if (16 % n == 0 && n < 16) r0 = frame_ranges_narrow(xa, rows, n, lo.data(), hi.data());
#endif
    for (int64_t r = r0; r < rows; ++r) frame_range(xa + r * n, n, &lo[size_t(r)], &hi[size_t(r)]);
    row_params(lo.data(), hi.data(), rows, s.data(), inv.data(), z.data());
    for (int64_t r = 0; r < rows; ++r) nsz[size_t(r)] = -(s[size_t(r)] * z[size_t(r)]);
    r0 = 0;
#if defined(__AVX512F__) && defined(__AVX512BW__)
    if (np == n && 16 % n == 0) r0 = codes_rows_narrow(xa, rows, n, inv.data(), z.data(), codes.data());
#endif
    for (int64_t r = r0; r < rows; ++r) {
      uint8_t* out = codes.data() + r * np;
      codes_row(xa + r * n, n, inv[size_t(r)], z[size_t(r)], out);
      for (int e = n; e < np; ++e) out[e] = 0;
    }
    const GroupTile gt{codes.data(), s.data(), nsz.data(), ng, np, stride_, dilation_, kernel_, cout_};
    float* yt = y + a * cout_;
    for (int ob = 0; ob < gw.ob; ++ob) {
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
      if (!g_group_portable) {
        switch (np / 4) {
          case 1: group_block_vnni<1>(gt, gw, ob, nt, b_.data(), yt, accumulate); break;
          case 2: group_block_vnni<2>(gt, gw, ob, nt, b_.data(), yt, accumulate); break;
          case 4: group_block_vnni<4>(gt, gw, ob, nt, b_.data(), yt, accumulate); break;
          default: group_block_vnni<0>(gt, gw, ob, nt, b_.data(), yt, accumulate); break;
        }
        continue;
      }
#endif
      group_outputs_scalar(gt, gw, ob, 0, nt, b_.data(), yt, accumulate);
    }
    apply_act(post_, yt, nt * cout_);
  }
}

}  // namespace wavtok
