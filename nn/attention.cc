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

void AttentionCore::forward(const float* q, const float* k, const float* v, int64_t T, int C, float* out,
                            Tensor& scratch) const {
  auto e = cache_.get(pkey(T), [&] { return make(T, C); });
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
  if (t_observer && !name_.empty()) (*t_observer)(name_, scratch.data(), T, int(T), true);
  if (pq_)
    quant::fake_quant(std::span<const float>(scratch.data(), size_t(T * T)),
                      std::span<float>(scratch.data(), size_t(T * T)), *pq_);
  run_primitive(e->pv, {{DNNL_ARG_SRC, sm}, {DNNL_ARG_WEIGHTS, wrap(e->v_md, v)}, {DNNL_ARG_DST, wrap(e->o_md, out)}});
}

}  // namespace wavtok
