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
  if (p.dynamic) throw Error("Linear " + name_ + ": per-token (dynamic) int8 activations are for Conv1d only");
  q_ = make_int8_state(std::move(p), w_, b_, cin_, cout_, "Linear");
  rq_.reset();
  cache_.clear();
  wcache_.clear();
}

Linear::Entry Linear::make_int8(int64_t rows, bool accumulate, bool codes_out) const {
  memory::desc src_md({rows, cin_}, ddt::u8, dtag::nc);
  memory::desc dst_md({rows, cout_}, codes_out ? ddt::u8 : ddt::f32, dtag::nc);
  memory::desc bias_md({cout_}, ddt::f32, dtag::a);
  memory::desc w_user({cout_, cin_}, ddt::s8, dtag::oi);
  memory::desc w_any({cout_, cin_}, ddt::s8, dtag::any);
  dnnl::inner_product_forward::desc d(dnnl::prop_kind::forward_inference, src_md, w_any, bias_md, dst_md);
  dnnl::primitive_attr attr = int8_attr(*q_, post_, accumulate);
  if (codes_out) {
    // The requantization into next's u8 codes after the output scales and the activation: per channel
    // y * mul + add (binary post-ops) or one eltwise_linear; the u8 dst rounds to nearest even and saturates.
    dnnl::post_ops ops = attr.get_post_ops();
    if (rq_->per_channel) {
      ops.append_binary(dnnl::algorithm::binary_mul, rq_->mul.get_desc());
      ops.append_binary(dnnl::algorithm::binary_add, rq_->add.get_desc());
    } else {
      ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_linear, rq_->mul0, rq_->add0);
    }
    attr.set_post_ops(ops);
  }
  dnnl::inner_product_forward::primitive_desc pd(d, attr, cpu_engine());
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

void check_adapter_values(const std::string& who, const Tensor& a, const Tensor& b, int max_rank) {
  if (a.dim(0) < 1 || a.dim(0) > max_rank)
    throw Error(who + "rank " + std::to_string(a.dim(0)) + " is outside 1.." + std::to_string(max_rank));
  for (const Tensor* t : {&a, &b})
    for (int64_t i = 0; i < t->numel(); ++i)
      if (!std::isfinite((*t)[i])) throw Error(who + "holds a non-finite value");
}

int Linear::lowrank_rank() const { return lr_ ? lr_->a.out_features() : 0; }

void Linear::set_lowrank(const Tensor& a, const Tensor& b) {
  const std::string who = "Linear" + (name_.empty() ? std::string() : " " + name_) + ": low-rank adapter ";
  if (a.ndim() != 2 || b.ndim() != 2 || a.dim(1) != cin_ || b.dim(0) != cout_ || b.dim(1) != a.dim(0))
    throw Error(who + "shapes " + shape_str(a.shape()) + " / " + shape_str(b.shape()) + " do not fit [r, " +
                std::to_string(cin_) + "] / [" + std::to_string(cout_) + ", r]");
  check_adapter_values(who, a, b, kMaxAdapterRank);
  const int r = int(a.dim(0));
  auto lr = std::make_shared<LowRank>();
  lr->a = Linear(a, Tensor({r}));
  lr->b = Linear(b, Tensor({cout_}));
  lr_ = std::move(lr);
}

void Linear::chain_to(const Linear& next) {
  if (!q_ || !next.q_) throw Error("Linear " + name_ + ": int8 chaining needs both layers in int8");
  if (next.cin_ != cout_) throw Error("Linear " + name_ + ": chained layer " + next.name_ + " has another width");
  const Int8State& n = *next.q_;
  auto r = std::make_shared<Requant>();
  r->per_channel = !n.p.in_shift.empty() || !n.p.in_scale.empty();
  const float z = float(n.p.act_zero);
  if (r->per_channel) {
    memory::desc md({1, cout_}, ddt::f32, dtag::ab);
    std::vector<float> mul(static_cast<size_t>(cout_)), add(static_cast<size_t>(cout_));
    for (int c = 0; c < cout_; ++c) {
      mul[size_t(c)] = n.inv[size_t(c)];
      add[size_t(c)] = z - n.shift[size_t(c)] * n.inv[size_t(c)];
    }
    r->mul = copy_to_memory(md, mul.data());
    r->add = copy_to_memory(md, add.data());
  } else {
    r->mul0 = n.inv[0];
    r->add0 = z;
  }
  rq_ = std::move(r);
}

void Linear::run_int8(const uint8_t* q, int64_t rows, void* y, bool accumulate, bool codes_out) const {
  auto e = cache_.get(rows * 4 + (accumulate ? 1 : 0) + (codes_out ? 2 : 0),
                      [&] { return make_int8(rows, accumulate, codes_out); });
  const memory src(e->src_md, cpu_engine(), const_cast<uint8_t*>(q));
  const memory dst(e->dst_md, cpu_engine(), y);
  if (codes_out && rq_->per_channel) {
    const int base = (accumulate ? 1 : 0) + (post_ != Act::None ? 1 : 0);  // the binary post-ops' indices
    run_primitive(e->prim, {{DNNL_ARG_SRC, src},
                            {DNNL_ARG_WEIGHTS, e->weights},
                            {DNNL_ARG_BIAS, e->bias},
                            {DNNL_ARG_DST, dst},
                            {DNNL_ARG_ATTR_MULTIPLE_POST_OP(base) | DNNL_ARG_SRC_1, rq_->mul},
                            {DNNL_ARG_ATTR_MULTIPLE_POST_OP(base + 1) | DNNL_ARG_SRC_1, rq_->add}});
    return;
  }
  run_primitive(e->prim,
                {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, e->weights}, {DNNL_ARG_BIAS, e->bias}, {DNNL_ARG_DST, dst}});
}

void Linear::forward_codes(const uint8_t* q, int64_t rows, float* y, bool accumulate) const {
  if (!q_) throw Error("Linear " + name_ + ": forward_codes needs an int8 layer");
  if (rows == 0) return;
  run_int8(q, rows, y, accumulate, false);
}

void Linear::forward_to_codes(const float* x, int64_t rows, uint8_t* codes_out) const {
  if (!rq_) throw Error("Linear " + name_ + ": forward_to_codes needs chain_to()");
  if (rows == 0) return;
  if (t_observer && !name_.empty()) (*t_observer)(name_, x, rows, cin_, true, {});
  run_int8(quantize_act(*q_, x, rows, cin_, true), rows, codes_out, false, true);
}

void Linear::forward_codes_to_codes(const uint8_t* q, int64_t rows, uint8_t* codes_out) const {
  if (!rq_) throw Error("Linear " + name_ + ": forward_codes_to_codes needs chain_to()");
  if (rows == 0) return;
  run_int8(q, rows, codes_out, false, true);
}

void Linear::forward(const float* x, int64_t rows, float* y, bool accumulate) const {
  if (rows == 0) return;
  if (t_observer && !name_.empty()) (*t_observer)(name_, x, rows, cin_, true, {});
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
  if (q_) return run_int8(quantize_act(*q_, x, rows, cin_, true), rows, y, accumulate, false);
  auto e = cache_.get(pkey(rows * 2 + (accumulate ? 1 : 0)), [&] { return make(rows, accumulate); });
  const void* src = e->bf16 ? static_cast<const void*>(to_bf16_scratch(x, rows * cin_, 1)) : x;
  run_primitive(e->prim, {{DNNL_ARG_SRC, dnnl::memory(e->src_md, cpu_engine(), const_cast<void*>(src))},
                          {DNNL_ARG_WEIGHTS, e->weights},
                          {DNNL_ARG_BIAS, e->bias},
                          {DNNL_ARG_DST, wrap(e->dst_md, y)}});
}

}  // namespace wavtok
