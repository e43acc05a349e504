// Linear (inner product): float, bf16 and int8 paths.
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

namespace wavtok {

using dnnl::memory;

// ---------------------------------------------------------------- Linear

Linear::Linear(const Tensor& weight, const Tensor& bias, Act post)
    : w_(Tensor::share_or_copy(weight)), b_(Tensor::share_or_copy(bias)), post_(post) {
  if (weight.ndim() != 2) throw Error("Linear: weight must be [Cout, Cin], got " + shape_str(weight.shape()));
  cout_ = static_cast<int>(weight.dim(0));
  cin_ = static_cast<int>(weight.dim(1));
  if (b_.empty()) b_ = Tensor({cout_});
  if (b_.numel() != cout_) throw Error("Linear: bias size does not match weight");
}

Linear::Entry Linear::make(int64_t rows, bool accumulate) const {
  const bool bf16 = get_precision() == Precision::BF16;
  const ddt cdt = bf16 ? ddt::bf16 : ddt::f32;
  memory::desc src_md({rows, cin_}, cdt, dtag::nc);
  memory::desc dst_md({rows, cout_}, ddt::f32, dtag::nc);
  memory::desc bias_md({cout_}, ddt::f32, dtag::a);
  memory::desc w_user({cout_, cin_}, ddt::f32, dtag::oi);
  memory::desc w_any({cout_, cin_}, cdt, dtag::any);
  dnnl::inner_product_forward::desc d(dnnl::prop_kind::forward_inference, src_md, w_any, bias_md, dst_md);
  dnnl::inner_product_forward::primitive_desc pd(d, make_attr(post_, accumulate), cpu_engine());
  return Entry{dnnl::inner_product_forward(pd),
               wcache_.get(pd.weights_desc(), [&] { return reorder_weights(pd.weights_desc(), w_user, w_.data()); }),
               copy_to_memory(bias_md, b_.data()),
               src_md,
               dst_md,
               bf16};
}

void Linear::set_int8(Int8Params p) {
  q_ = make_int8_state(std::move(p), w_, b_, cin_, cout_, "Linear");
  cache_.clear();
  wcache_.clear();
}

Linear::Entry Linear::make_int8(int64_t rows, bool accumulate) const {
  memory::desc src_md({rows, cin_}, ddt::u8, dtag::nc);
  memory::desc dst_md({rows, cout_}, ddt::f32, dtag::nc);
  memory::desc bias_md({cout_}, ddt::f32, dtag::a);
  memory::desc w_user({cout_, cin_}, ddt::s8, dtag::oi);
  memory::desc w_any({cout_, cin_}, ddt::s8, dtag::any);
  dnnl::inner_product_forward::desc d(dnnl::prop_kind::forward_inference, src_md, w_any, bias_md, dst_md);
  dnnl::inner_product_forward::primitive_desc pd(d, int8_attr(*q_, post_, accumulate), cpu_engine());
  return Entry{
      dnnl::inner_product_forward(pd),
      wcache_.get(pd.weights_desc(), [&] { return reorder_s8_weights(pd.weights_desc(), w_user, q_->qw.data()); }),
      copy_to_memory(bias_md, q_->bias_acc.data()),
      src_md,
      dst_md,
      false};
}

struct Linear::LowRank {
  Linear a, b;  // x -> [rows, r] -> [rows, Cout], float (no bias, no post-op)
};

int Linear::lowrank_rank() const { return lr_ ? lr_->a.out_features() : 0; }

void Linear::set_lowrank(const Tensor& a, const Tensor& b) {
  const std::string who = "Linear" + (name_.empty() ? std::string() : " " + name_) + ": low-rank adapter ";
  if (a.ndim() != 2 || b.ndim() != 2 || a.dim(1) != cin_ || b.dim(0) != cout_ || b.dim(1) != a.dim(0))
    throw Error(who + "shapes " + shape_str(a.shape()) + " / " + shape_str(b.shape()) + " do not fit [r, " +
                std::to_string(cin_) + "] / [" + std::to_string(cout_) + ", r]");
  if (a.dim(0) < 1 || a.dim(0) > kMaxAdapterRank)
    throw Error(who + "rank " + std::to_string(a.dim(0)) + " is outside 1.." + std::to_string(kMaxAdapterRank));
  for (const Tensor* t : {&a, &b})
    for (int64_t i = 0; i < t->numel(); ++i)
      if (!std::isfinite((*t)[i])) throw Error(who + "holds a non-finite value");
  const int r = int(a.dim(0));
  auto lr = std::make_shared<LowRank>();
  lr->a = Linear(a, Tensor({r}));
  lr->b = Linear(b, Tensor({cout_}));
  lr_ = std::move(lr);
}

void Linear::forward(const float* x, int64_t rows, float* y, bool accumulate) const {
  if (rows == 0) return;
  if (t_observer && !name_.empty()) (*t_observer)(name_, x, rows, cin_, true);
  if (lr_) {
    // y <- (x A^T) B^T [+ y], then the main GEMM accumulates onto it before its post-op:
    // post(x W^T + b + delta [+ y]), the same sum-then-activation order as accumulate alone.
    thread_local std::vector<float> t;
    const size_t n = size_t(rows) * size_t(lr_->a.out_features());
    if (t.size() < n) t.resize(n);
    lr_->a.forward(x, rows, t.data());
    lr_->b.forward(t.data(), rows, y, accumulate);
    forward_main(x, rows, y, true);
    return;
  }
  forward_main(x, rows, y, accumulate);
}

void Linear::forward_main(const float* x, int64_t rows, float* y, bool accumulate) const {
  if (q_) {
    auto e = cache_.get(rows * 2 + (accumulate ? 1 : 0), [&] { return make_int8(rows, accumulate); });
    const uint8_t* src = quantize_act(*q_, x, rows, cin_, true);
    run_primitive(e->prim, {{DNNL_ARG_SRC, dnnl::memory(e->src_md, cpu_engine(), const_cast<uint8_t*>(src))},
                            {DNNL_ARG_WEIGHTS, e->weights},
                            {DNNL_ARG_BIAS, e->bias},
                            {DNNL_ARG_DST, wrap(e->dst_md, y)}});
    return;
  }
  auto e = cache_.get(pkey(rows * 2 + (accumulate ? 1 : 0)), [&] { return make(rows, accumulate); });
  const void* src = e->bf16 ? static_cast<const void*>(to_bf16_scratch(x, rows * cin_, 1)) : x;
  run_primitive(e->prim, {{DNNL_ARG_SRC, dnnl::memory(e->src_md, cpu_engine(), const_cast<void*>(src))},
                          {DNNL_ARG_WEIGHTS, e->weights},
                          {DNNL_ARG_BIAS, e->bias},
                          {DNNL_ARG_DST, wrap(e->dst_md, y)}});
}

}  // namespace wavtok
