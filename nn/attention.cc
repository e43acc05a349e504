// AttentionCore: softmax(Q K^T) V with an optional post-softmax quantizer (calibration hook included).
#include "nn/layers.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <stdexcept>
#include <utility>

#include "core/error.h"
#include "nn/layer_support.h"
#include "quant/log_quant.h"

namespace wavtok {

using dnnl::memory;

// ---------------------------------------------------------------- Attention

AttentionCore::Entry AttentionCore::make(int64_t T, int C) const {
  memory::desc q_md({T, C}, ddt::f32, dtag::ab);
  memory::desc kt_md({C, T}, ddt::f32, dtag::ba);  // K stored [T, C], read transposed
  memory::desc s_md({T, T}, ddt::f32, dtag::ab);
  memory::desc v_md({T, C}, ddt::f32, dtag::ab);
  memory::desc o_md({T, C}, ddt::f32, dtag::ab);
  dnnl::primitive_attr scale_attr = scratchpad_attr();
  scale_attr.set_output_scales(0, {1.0f / std::sqrt(static_cast<float>(C))});
  dnnl::primitive_attr pv_attr = make_attr(Act::None, false);
  if (get_precision() == Precision::BF16) scale_attr.set_fpmath_mode(dnnl::fpmath_mode::bf16);
  dnnl::matmul::primitive_desc qk_pd(dnnl::matmul::desc(q_md, kt_md, s_md), scale_attr, cpu_engine());
  dnnl::matmul::primitive_desc pv_pd(dnnl::matmul::desc(s_md, v_md, o_md), pv_attr, cpu_engine());
  dnnl::softmax_forward::primitive_desc sm_pd(dnnl::softmax_forward::desc(dnnl::prop_kind::forward_inference, s_md, 1),
                                              scratchpad_attr(), cpu_engine());
  return Entry{dnnl::matmul(qk_pd), dnnl::matmul(pv_pd), dnnl::softmax_forward(sm_pd), q_md, kt_md, s_md, v_md, o_md};
}

// ---------------------------------------------------------------- int8 attention (see set_int8)

namespace {

constexpr float kMagic = 12582912.0f;  // (v + kMagic) - kMagic rounds half to even

// Symmetric s8 codes of x [T, C] with one scale per row (rows), per column (!rows) or per tensor (all): the
// scales go to `scale` ([T], [C] or [1]), s = max|x| / 127 (1 for an all-zero group).
void quantize_sym(const float* x, int64_t T, int C, int mode, int8_t* q, float* scale) {
  // mode 0: per tensor, 1: per row, 2: per column
  const int64_t ns = mode == 0 ? 1 : mode == 1 ? T : C;
  std::fill(scale, scale + ns, 0.0f);
  for (int64_t t = 0; t < T; ++t) {
    const float* r = x + t * C;
    if (mode == 2) {
      for (int c = 0; c < C; ++c) scale[c] = std::max(scale[c], std::fabs(r[c]));
    } else {
      float m = 0.0f;
      for (int c = 0; c < C; ++c) m = std::max(m, std::fabs(r[c]));
      float& s = scale[mode == 1 ? t : 0];
      s = std::max(s, m);
    }
  }
  for (int64_t i = 0; i < ns; ++i) scale[i] = scale[i] > 0.0f && std::isfinite(scale[i]) ? scale[i] / 127.0f : 1.0f;
  thread_local std::vector<float> inv;
  inv.resize(size_t(ns));
  for (int64_t i = 0; i < ns; ++i) inv[size_t(i)] = 1.0f / scale[i];
  for (int64_t t = 0; t < T; ++t) {
    const float* r = x + t * C;
    int8_t* o = q + t * C;
    if (mode == 2) {
      for (int c = 0; c < C; ++c) {
        const float u = std::clamp(r[c] * inv[size_t(c)], -127.0f, 127.0f);
        o[c] = static_cast<int8_t>(static_cast<int>((u + kMagic) - kMagic));
      }
    } else {
      const float iv = inv[size_t(mode == 1 ? t : 0)];
      for (int c = 0; c < C; ++c) {
        const float u = std::clamp(r[c] * iv, -127.0f, 127.0f);
        o[c] = static_cast<int8_t>(static_cast<int>((u + kMagic) - kMagic));
      }
    }
  }
}

}  // namespace

AttentionCore::Entry AttentionCore::make_int8(int64_t T, int C) const {
  memory::desc q_md({T, C}, ddt::s8, dtag::ab);
  memory::desc kt_md({C, T}, ddt::s8, dtag::ba);  // K codes stored [T, C], read transposed
  memory::desc s_md({T, T}, ddt::f32, dtag::ab);
  memory::desc e_md({T, T}, ddt::u8, dtag::ab);
  memory::desc v_md({T, C}, ddt::s8, dtag::ab);
  memory::desc o_md({T, C}, ddt::f32, dtag::ab);
  // No output scales in the primitives (oneDNN 2.6 runs int8 matmuls with run-time scales in its slow gemm:jit
  // instead of brgemm): the integer products come out as float and the scales are applied in the passes that
  // read them anyway (the exp over the scores, the normalisation of the output rows).
  dnnl::primitive_attr qk_attr = scratchpad_attr(), pv_attr = scratchpad_attr();
  dnnl::matmul::primitive_desc qk_pd(dnnl::matmul::desc(q_md, kt_md, s_md), qk_attr, cpu_engine());
  dnnl::matmul::primitive_desc pv_pd(dnnl::matmul::desc(e_md, v_md, o_md), pv_attr, cpu_engine());
  (void)v_md;  // same desc as q_md: [T, C] s8 row-major
  // The softmax primitive is unused here (made so the Entry keeps one shape); E's desc rides in v_md's place.
  dnnl::softmax_forward::primitive_desc sm_pd(dnnl::softmax_forward::desc(dnnl::prop_kind::forward_inference, s_md, 1),
                                              scratchpad_attr(), cpu_engine());
  return Entry{dnnl::matmul(qk_pd), dnnl::matmul(pv_pd), dnnl::softmax_forward(sm_pd), q_md, kt_md, s_md, e_md, o_md};
}

void AttentionCore::forward_int8(const Entry& e, const float* q, const float* k, const float* v, int64_t T, int C,
                                 float* out) const {
  thread_local std::vector<int8_t> qc, kc, vc;
  thread_local std::vector<uint8_t> ec;
  thread_local std::vector<float> sc, sq, sk, sv, kscale, rsum;
  const size_t n = size_t(T * C);
  qc.resize(n), kc.resize(n), vc.resize(n), ec.resize(size_t(T * T)), sc.resize(size_t(T * T));
  sq.resize(1), sk.resize(size_t(T)), sv.resize(size_t(C)), kscale.resize(size_t(T)), rsum.resize(size_t(T));
  sq.resize(size_t(T));
  quantize_sym(q, T, C, 1, qc.data(), sq.data());
  quantize_sym(k, T, C, 1, kc.data(), sk.data());
  if (v_scale_.empty()) {
    quantize_sym(v, T, C, 2, vc.data(), sv.data());
  } else {  // the calibrated per-channel scales
    if (int64_t(v_scale_.size()) != C)
      throw Error("attention " + name_ + ": int8 V scales for " + std::to_string(v_scale_.size()) +
                  " channels, the input has " + std::to_string(C));
    std::copy(v_scale_.begin(), v_scale_.end(), sv.begin());
    thread_local std::vector<float> inv;
    inv.resize(size_t(C));
    for (int c = 0; c < C; ++c) inv[size_t(c)] = 1.0f / sv[size_t(c)];
    for (int64_t t = 0; t < T; ++t) {
      const float* r = v + t * C;
      int8_t* o = vc.data() + t * C;
      for (int c = 0; c < C; ++c) {
        const float u = std::clamp(r[c] * inv[size_t(c)], -127.0f, 127.0f);
        o[c] = static_cast<int8_t>(static_cast<int>((u + kMagic) - kMagic));
      }
    }
  }
  const float inv_sqrt = 1.0f / std::sqrt(static_cast<float>(C));
  for (int64_t j = 0; j < T; ++j) kscale[size_t(j)] = sk[size_t(j)] * inv_sqrt;
  run_primitive(e.qk, {{DNNL_ARG_SRC, memory(e.q_md, cpu_engine(), qc.data())},
                       {DNNL_ARG_WEIGHTS, memory(e.kt_md, cpu_engine(), kc.data())},
                       {DNNL_ARG_DST, memory(e.s_md, cpu_engine(), sc.data())}});
  const float* ks = kscale.data();
  for (int64_t t = 0; t < T; ++t) {
    float* row = sc.data() + t * T;  // the int32 dot products as float (exact below 2^24)
    uint8_t* er = ec.data() + t * T;
    int64_t lo = 0, hi = T;
    if (win_left_ >= 0) lo = std::max<int64_t>(0, t - win_left_), hi = std::min<int64_t>(T, t + win_right_ + 1);
    const float qs = sq[size_t(t)];
    for (int64_t j = lo; j < hi; ++j) row[j] *= qs * ks[j];  // the score s_q[t] s_k[j] acc / sqrt(C)
    float m = row[lo];
    for (int64_t j = lo + 1; j < hi; ++j) m = std::max(m, row[j]);
    std::fill(er, er + lo, uint8_t(0));
    std::fill(er + hi, er + T, uint8_t(0));
    int32_t sum = 0;
    for (int64_t j = lo; j < hi; ++j) {
      const float u = (exp_nonpositive(row[j] - m) * 255.0f + kMagic) - kMagic;
      const int32_t c = static_cast<int32_t>(u);
      er[j] = static_cast<uint8_t>(c);
      sum += c;
    }
    rsum[size_t(t)] = 1.0f / float(sum);  // >= 255: the maximum's code
  }
  if (t_observer && !name_.empty()) {  // calibration sees the probabilities the codes stand for
    for (int64_t t = 0; t < T; ++t)
      for (int64_t j = 0; j < T; ++j) sc[size_t(t * T + j)] = float(ec[size_t(t * T + j)]) * rsum[size_t(t)];
    (*t_observer)(name_, sc.data(), T, int(T), true, {});
  }
  // (the int8 Entry keeps the codes' desc E [T, T] u8 in v_md's place and V's s8 desc in q_md's shape)
  run_primitive(e.pv, {{DNNL_ARG_SRC, memory(e.v_md, cpu_engine(), ec.data())},
                       {DNNL_ARG_WEIGHTS, memory(e.q_md, cpu_engine(), vc.data())},
                       {DNNL_ARG_DST, wrap(e.o_md, out)}});
  const float* vs = sv.data();
  for (int64_t t = 0; t < T; ++t) {  // out = (E V)[t, c] s_v[c] / sum_j e[t, j]
    float* o = out + t * C;
    const float r = rsum[size_t(t)];
    for (int c = 0; c < C; ++c) o[c] = o[c] * vs[c] * r;
  }
}

void AttentionCore::set_int8(bool on, std::vector<float> v_scale) {
  for (float x : v_scale)
    if (!(x > 0) || !std::isfinite(x)) throw Error("attention " + name_ + ": int8 V scales must be positive");
  int8_ = on;
  v_scale_ = std::move(v_scale);
  cache_.clear();
}

void AttentionCore::forward(const float* q, const float* k, const float* v, int64_t T, int C, float* out,
                            Tensor& scratch) const {
  if (t_observer && !v_name_.empty()) (*t_observer)(v_name_, v, T, C, true, {});
  if (int8_ && !pq_) {
    auto e = cache_.get(T * 2 + 1, [&] { return make_int8(T, C); });
    return forward_int8(*e, q, k, v, T, C, out);
  }
  auto e = cache_.get(pkey(T) * 2, [&] { return make(T, C); });
  scratch.resize({T, T});
  memory sm = wrap(e->s_md, scratch.data());
  run_primitive(e->qk, {{DNNL_ARG_SRC, wrap(e->q_md, q)}, {DNNL_ARG_WEIGHTS, wrap(e->kt_md, k)}, {DNNL_ARG_DST, sm}});
  if (win_left_ >= 0) {
    // Keys outside the band get the lowest float: their weight after the softmax is exactly 0 (the row maximum
    // is finite, since the query's own key is always in the band).
    constexpr float kMasked = std::numeric_limits<float>::lowest();
    for (int64_t t = 0; t < T; ++t) {
      float* row = scratch.data() + t * T;
      const int64_t lo = std::max<int64_t>(0, t - win_left_), hi = std::min<int64_t>(T, t + win_right_ + 1);
      std::fill(row, row + lo, kMasked);
      std::fill(row + hi, row + T, kMasked);
    }
  }
  run_primitive(e->softmax, {{DNNL_ARG_SRC, sm}, {DNNL_ARG_DST, sm}});
  if (t_observer && !name_.empty()) (*t_observer)(name_, scratch.data(), T, int(T), true, {});
  if (pq_)
    quant::fake_quant(std::span<const float>(scratch.data(), size_t(T * T)),
                      std::span<float>(scratch.data(), size_t(T * T)), *pq_);
  run_primitive(e->pv, {{DNNL_ARG_SRC, sm}, {DNNL_ARG_WEIGHTS, wrap(e->v_md, v)}, {DNNL_ARG_DST, wrap(e->o_md, out)}});
}

}  // namespace wavtok
