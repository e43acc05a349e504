// Conv1d and ConvTranspose1d: float, bf16 and int8 paths.
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

// ---------------------------------------------------------------- Conv1d

Conv1d::Conv1d(const Tensor& weight, const Tensor& bias, int stride, int dilation, int groups, bool channels_last,
               Act post)
    : w_(Tensor::share_or_copy(weight)),
      b_(Tensor::share_or_copy(bias)),
      stride_(stride),
      dilation_(dilation),
      groups_(groups),
      channels_last_(channels_last),
      post_(post) {
  if (weight.ndim() != 3) throw Error("Conv1d: weight must be [Cout, Cin/groups, K], got " + shape_str(weight.shape()));
  cout_ = static_cast<int>(weight.dim(0));
  cin_ = static_cast<int>(weight.dim(1)) * groups;
  kernel_ = static_cast<int>(weight.dim(2));
  if (bias.numel() != cout_ || bias.empty()) {
    b_ = Tensor({cout_});
    if (!bias.empty() && bias.numel() != cout_) throw Error("Conv1d: bias size does not match weight");
  }
  if (stride < 1 || dilation < 1 || groups < 1 || cout_ % groups) throw Error("Conv1d: bad stride/dilation/groups");
}

Conv1d::Entry Conv1d::make(int64_t tin, bool accumulate) const {
  const int64_t tout = out_len(tin);
  if (tout < 1) throw Error("Conv1d: input of " + std::to_string(tin) + " samples is shorter than the kernel");
  const dtag act_tag = channels_last_ ? dtag::nwc : dtag::ncw;
  const bool bf16 =
      bf16_pays() && ((bf16_ok_ && get_precision() == Precision::BF16) || (bf16_forced_ && bf16_supported()));
  const ddt cdt = bf16 ? ddt::bf16 : ddt::f32;
  memory::desc src_md({1, cin_, tin}, cdt, act_tag);
  memory::desc dst_md({1, cout_, tout}, ddt::f32, act_tag);
  memory::desc bias_md({cout_}, ddt::f32, dtag::a);
  memory::dims wdims = groups_ == 1 ? memory::dims{cout_, cin_, kernel_}
                                    : memory::dims{groups_, cout_ / groups_, cin_ / groups_, kernel_};
  memory::desc w_user(wdims, ddt::f32, groups_ == 1 ? dtag::oiw : dtag::goiw);
  memory::desc w_any(wdims, cdt, dtag::any);
  dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src_md,
                                    w_any, bias_md, dst_md, {stride_}, {dilation_ - 1}, {0}, {0});
  dnnl::convolution_forward::primitive_desc pd(d, make_attr(post_, accumulate), cpu_engine());
  Entry e{dnnl::convolution_forward(pd),
          wcache_.get(pd.weights_desc(), [&] { return reorder_weights(pd.weights_desc(), w_user, w_.data()); }),
          copy_to_memory(bias_md, b_.data()),
          src_md,
          dst_md,
          bf16};
  return e;
}

void Conv1d::set_int8(Int8Params p) {
  const bool dynamic = p.dynamic;
  if (dynamic && groups_ != 1)
    throw Error("Conv1d " + name_ + ": per-token int8 activations need a dense conv (groups == 1), this one has " +
                std::to_string(groups_) + " groups");
  auto q = make_int8_state(std::move(p), w_, b_, cin_, cout_, "Conv1d");
  if (q->p.act_group < 0 || (q->p.act_group > 0 && !dynamic))
    throw Error("Conv1d " + name_ + ": act_group " + std::to_string(q->p.act_group) +
                " needs per-token (dynamic) activations and a positive group size");
  tok_.reset();
  grp_.reset();
  tcache_.clear();
  // both check and gather the codes; q_ still answers is_int8()
  if (dynamic && q->p.act_group > 0) set_group_int8(*q);
  else if (dynamic) set_token_int8(*q);
  q_ = std::move(q);
  cache_.clear();
  wcache_.clear();
}

Conv1d::Entry Conv1d::make_int8(int64_t tin, bool accumulate) const {
  const int64_t tout = out_len(tin);
  if (tout < 1) throw Error("Conv1d: input of " + std::to_string(tin) + " samples is shorter than the kernel");
  const dtag act_tag = channels_last_ ? dtag::nwc : dtag::ncw;
  memory::desc src_md({1, cin_, tin}, ddt::u8, act_tag);
  memory::desc dst_md({1, cout_, tout}, ddt::f32, act_tag);
  memory::desc bias_md({cout_}, ddt::f32, dtag::a);
  // Grouped (the ConvNeXt depthwise conv): the codes [Cout, Cin/G, K] are the goiw layout as they stand.
  const memory::dims wdims = groups_ == 1 ? memory::dims{cout_, cin_, kernel_}
                                          : memory::dims{groups_, cout_ / groups_, cin_ / groups_, kernel_};
  memory::desc w_user(wdims, ddt::s8, groups_ == 1 ? dtag::oiw : dtag::goiw);
  memory::desc w_any(wdims, ddt::s8, dtag::any);
  dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src_md,
                                    w_any, bias_md, dst_md, {stride_}, {dilation_ - 1}, {0}, {0});
  dnnl::convolution_forward::primitive_desc pd(d, int8_attr(*q_, post_, accumulate), cpu_engine());
  return Entry{
      dnnl::convolution_forward(pd),
      wcache_.get(pd.weights_desc(), [&] { return reorder_s8_weights(pd.weights_desc(), w_user, q_->qw.data()); }),
      copy_to_memory(bias_md, q_->bias_acc.data()),
      src_md,
      dst_md,
      false};
}

// The adapter's two float convolutions: x -> A * x [r, Tout] (the layer's stride and dilation), then the 1x1 mix
// B [Cout, r] written (or added) into the output, before the main primitive accumulates onto it.
struct Conv1d::LowRank {
  Conv1d a, b;
};

int Conv1d::lowrank_rank() const { return lr_ ? lr_->a.out_channels() : 0; }

void Conv1d::set_lowrank(const Tensor& a, const Tensor& b) {
  const std::string who = "Conv1d" + (name_.empty() ? std::string() : " " + name_) + ": low-rank adapter ";
  if (groups_ != 1) throw Error(who + "needs a dense conv (groups == 1), this one has " + std::to_string(groups_));
  if (a.ndim() != 3 || b.ndim() != 2 || a.dim(1) != cin_ || a.dim(2) != kernel_ || b.dim(0) != cout_ ||
      b.dim(1) != a.dim(0))
    throw Error(who + "shapes " + shape_str(a.shape()) + " / " + shape_str(b.shape()) + " do not fit [r, " +
                std::to_string(cin_) + ", " + std::to_string(kernel_) + "] / [" + std::to_string(cout_) + ", r]");
  check_adapter_values(who, a, b, kMaxAdapterRank);
  const int r = int(a.dim(0));
  Tensor b1({cout_, r, 1});  // the 1x1 conv's weight [Cout, r, 1]: the same numbers as B
  std::copy_n(b.data(), b.numel(), b1.data());
  auto lr = std::make_shared<LowRank>();
  lr->a = Conv1d(a, Tensor({r}), stride_, dilation_, 1, channels_last_);
  lr->b = Conv1d(b1, Tensor({cout_}), 1, 1, 1, channels_last_);
  lr->a.allow_bf16(false);  // float32 adapters at every precision, as fitted
  lr->b.allow_bf16(false);
  lr_ = std::move(lr);
}

namespace {

// Output frames per primitive call for layers whose primitives are costly to create (see Conv1d::forward): ~8M
// MACs a call, so that the ~5 us a call costs outside the kernel stays under 1%, between 128 frames (their speed
// per frame is flat from there up) and 4096.
int64_t conv_tile(int64_t macs_per_output) {
  int64_t t = 128;
  while (t < 4096 && t * macs_per_output < (int64_t(1) << 23)) t *= 2;
  return t;
}

}  // namespace

bool Conv1d::cheap_shapes() const { return kernel_ == 1; }

void Conv1d::allow_f64(bool on) {
  if (on && groups_ == 1 && channels_last_) w64_ = std::make_shared<F64Weights>();
  else w64_.reset();
}

void Conv1d::forward_f64(const float* x, int64_t tin, float* y, bool accumulate) const {
  const int64_t tout = out_len(tin);
  std::call_once(w64_->once, [&] {
    w64_->w.resize(size_t(kernel_) * cin_ * cout_);
    for (int o = 0; o < cout_; ++o)
      for (int i = 0; i < cin_; ++i)
        for (int k = 0; k < kernel_; ++k)
          w64_->w[(size_t(k) * cin_ + i) * cout_ + o] = w_[(int64_t(o) * cin_ + i) * kernel_ + k];
  });
  thread_local std::vector<double> acc;  // one output frame; the loop over Cout vectorises
  acc.resize(size_t(cout_));
  const double* w = w64_->w.data();
  for (int64_t t = 0; t < tout; ++t) {
    for (int o = 0; o < cout_; ++o) acc[size_t(o)] = b_.empty() ? 0.0 : double(b_[o]);
    for (int k = 0; k < kernel_; ++k) {
      const float* xr = x + (t * stride_ + int64_t(k) * dilation_) * cin_;
      for (int i = 0; i < cin_; ++i) {
        const double xv = xr[i];
        const double* wr = w + (size_t(k) * cin_ + i) * cout_;
        for (int o = 0; o < cout_; ++o) acc[size_t(o)] += xv * wr[o];
      }
    }
    float* yr = y + t * cout_;
    for (int o = 0; o < cout_; ++o) {
      double v = acc[size_t(o)] + (accumulate ? double(yr[o]) : 0.0);  // post(conv + y), as the primitives
      if (post_ == Act::Elu) v = v < 0 ? std::expm1(v) : v;
      yr[o] = float(v);
    }
  }
}

void Conv1d::forward(const float* x, int64_t tin, float* y, bool accumulate) const {
  const int64_t tout = out_len(tin);
  if (tout < 1) throw Error("Conv1d: input of " + std::to_string(tin) + " samples is shorter than the kernel");
  if (t_observer && !name_.empty()) (*t_observer)(name_, x, tin, cin_, channels_last_, {kernel_, stride_, dilation_});
  if (w64_ && !q_ && get_precision() == Precision::F64 && (post_ == Act::None || post_ == Act::Elu)) {
    if (!lr_) return forward_f64(x, tin, y, accumulate);
    thread_local std::vector<float> t;  // A * x, [Tout, r]
    const size_t n = size_t(tout) * size_t(lr_->a.out_channels());
    if (t.size() < n) t.resize(n);
    lr_->a.forward(x, tin, t.data());
    lr_->b.forward(t.data(), tout, y, accumulate);
    return forward_f64(x, tin, y, true);  // post(conv + delta [+ y])
  }
  const int64_t span = int64_t(dilation_) * (kernel_ - 1) + 1;
  auto part = [&](int64_t a, int64_t n, float* out, bool acc) {
    run(x + a * stride_ * cin_, (n - 1) * stride_ + span, out, acc);
  };
  if (!channels_last_) return run(x, tin, y, accumulate);
  if (cheap_shapes() || q_) {
    // 1x1 kernels (brgconv_1x1) and int8 primitives are cheap to create: tiles of 4096 frames keep long inputs
    // in cache, and the last, shorter tile gets its own primitive.
    constexpr int64_t kTile = 4096;
    for (int64_t a = 0; a < tout; a += kTile) part(a, std::min(kTile, tout - a), y + a * cout_, accumulate);
    return;
  }
  // oneDNN 2.6's brgconv takes ~6-35 us per output frame to create a primitive (linear in the length, next to
  // no constant), so a primitive per input length made each new length pay up to ~25% of the call again. Inputs
  // longer than a tile run as whole tiles, the last one shifted back to end at the last frame (its overlap
  // recomputes frames already written, with the same values): one shape per layer, whatever the length. Shorter
  // inputs (a stream's pushes, which recur) get their own primitive.
  const int64_t tile = conv_tile(macs_per_output());
  if (tout <= tile) return run(x, tin, y, accumulate);
  int64_t a = 0;
  for (; a + tile <= tout; a += tile) part(a, tile, y + a * cout_, accumulate);
  if (a == tout) return;
  const int64_t b = tout - tile;  // the last tile, overlapping the one before
  if (!accumulate) return part(b, tile, y + b * cout_, false);
  if (post_ != Act::None) return part(a, tout - a, y + a * cout_, true);  // post(conv + y): an exact call
  // y += conv: the overlap must not be added twice, so compute the last tile aside and add its new frames.
  thread_local std::vector<float> last;
  last.resize(static_cast<size_t>(tile * cout_));
  part(b, tile, last.data(), false);
  const float* src = last.data() + (a - b) * cout_;
  float* dst = y + a * cout_;
  for (int64_t i = 0, n = (tout - a) * cout_; i < n; ++i) dst[i] += src[i];
}

void Conv1d::run(const float* x, int64_t tin, float* y, bool accumulate) const {
  if (!lr_) return run_main(x, tin, y, accumulate);
  // y <- B (A * x) [+ y] on this piece, then the main primitive accumulates onto it before its post-op:
  // post(conv(x) + b + delta [+ y]), the same sum-then-activation order as accumulate alone. Every call of a
  // given piece shape runs the same three primitives, so overlapping tiles recompute the same values.
  thread_local std::vector<float> t;  // A * x of the piece, [r, Tout] or [Tout, r]
  const int64_t tout = out_len(tin);
  const size_t n = size_t(tout) * size_t(lr_->a.out_channels());
  if (t.size() < n) t.resize(n);
  lr_->a.run_main(x, tin, t.data(), false);
  lr_->b.run_main(t.data(), tout, y, accumulate);
  run_main(x, tin, y, true);
}

void Conv1d::run_main(const float* x, int64_t tin, float* y, bool accumulate) const {
  if (grp_) return run_group(x, tin, y, accumulate);
  if (tok_) return run_token(x, tin, y, accumulate);
  if (q_) {
    auto e = cache_.get(tin * 2 + (accumulate ? 1 : 0), [&] { return make_int8(tin, accumulate); });
    const uint8_t* src = quantize_act(*q_, x, tin, cin_, channels_last_);
    run_primitive(e->prim, {{DNNL_ARG_SRC, dnnl::memory(e->src_md, cpu_engine(), const_cast<uint8_t*>(src))},
                            {DNNL_ARG_WEIGHTS, e->weights},
                            {DNNL_ARG_BIAS, e->bias},
                            {DNNL_ARG_DST, wrap(e->dst_md, y)}});
    return;
  }
  auto e = cache_.get(pkey(tin * 2 + (accumulate ? 1 : 0)), [&] { return make(tin, accumulate); });
  const void* src = e->bf16 ? static_cast<const void*>(to_bf16_scratch(x, tin * cin_, 0)) : x;
  run_primitive(e->prim, {{DNNL_ARG_SRC, dnnl::memory(e->src_md, cpu_engine(), const_cast<void*>(src))},
                          {DNNL_ARG_WEIGHTS, e->weights},
                          {DNNL_ARG_BIAS, e->bias},
                          {DNNL_ARG_DST, wrap(e->dst_md, y)}});
}

// ---------------------------------------------------------------- ConvTranspose1d

ConvTranspose1d::ConvTranspose1d(const Tensor& weight, const Tensor& bias, int stride, bool channels_last)
    : b_(bias), stride_(stride), channels_last_(channels_last) {
  if (weight.ndim() != 3) throw Error("ConvTranspose1d: weight must be [Cin, Cout, K]");
  cin_ = static_cast<int>(weight.dim(0));
  cout_ = static_cast<int>(weight.dim(1));
  kernel_ = static_cast<int>(weight.dim(2));
  w_ = Tensor({cout_, cin_, kernel_});
  for (int i = 0; i < cin_; ++i)
    for (int o = 0; o < cout_; ++o)
      for (int k = 0; k < kernel_; ++k)
        w_[(int64_t(o) * cin_ + i) * kernel_ + k] = weight[(int64_t(i) * cout_ + o) * kernel_ + k];
  if (b_.empty()) b_ = Tensor({cout_});
  if (b_.numel() != cout_) throw Error("ConvTranspose1d: bias size does not match weight");
}

// One primitive per input length: float32, or int8 once set_int8 ran (s8 input and weights, f32 output).
ConvTranspose1d::Entry ConvTranspose1d::make(int64_t tin) const {
  const int64_t tout = out_len(tin);
  const dtag act_tag = channels_last_ ? dtag::nwc : dtag::ncw;
  const ddt in_t = q_ ? ddt::s8 : ddt::f32;
  memory::desc src_md({1, cin_, tin}, in_t, act_tag);
  memory::desc dst_md({1, cout_, tout}, ddt::f32, act_tag);
  memory::desc bias_md({cout_}, ddt::f32, dtag::a);
  memory::desc w_user({cout_, cin_, kernel_}, in_t, dtag::oiw);
  memory::desc w_any({cout_, cin_, kernel_}, in_t, dtag::any);
  dnnl::deconvolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::deconvolution_direct, src_md,
                                      w_any, bias_md, dst_md, {stride_}, {0}, {0});
  if (!q_) {
    dnnl::deconvolution_forward::primitive_desc pd(d, make_attr(Act::None, false), cpu_engine());
    return Entry{dnnl::deconvolution_forward(pd),
                 wcache_.get(pd.weights_desc(), [&] { return reorder_weights(pd.weights_desc(), w_user, w_.data()); }),
                 copy_to_memory(bias_md, b_.data()), src_md, dst_md};
  }
  // oneDNN 2.x int8: dst = output_scale[o] * (acc + bias), so bias_acc = b / (s_a s_w[o]) (zero point 0).
  dnnl::deconvolution_forward::primitive_desc pd(d, int8_attr(*q_, Act::None, false), cpu_engine());
  return Entry{
      dnnl::deconvolution_forward(pd),
      wcache_.get(pd.weights_desc(), [&] { return reorder_s8_weights(pd.weights_desc(), w_user, q_->qw.data()); }),
      copy_to_memory(bias_md, q_->bias_acc.data()), src_md, dst_md};
}

void ConvTranspose1d::set_int8(Int8Params p) {
  if (p.dynamic) throw Error("ConvTranspose1d " + name_ + ": per-token (dynamic) int8 activations are for Conv1d only");
  if (p.act_zero != 0 || !p.in_shift.empty() || !p.in_scale.empty())
    throw Error("ConvTranspose1d " + name_ + ": int8 needs symmetric activations (zero point 0, no shift/smooth)");
  q_ = make_int8_state(std::move(p), w_, b_, cin_, cout_, "ConvTranspose1d");
  cache_.clear();
  wcache_.clear();
}

void ConvTranspose1d::forward(const float* x, int64_t tin, float* y) const {
  if (t_observer && !name_.empty()) (*t_observer)(name_, x, tin, cin_, channels_last_, {});
  auto e = cache_.get(pkey(tin), [&] { return make(tin); });
  const dnnl::memory src =
      q_ ? dnnl::memory(e->src_md, cpu_engine(), const_cast<int8_t*>(quantize_act_s8(q_->inv[0], x, tin * cin_)))
         : wrap(e->src_md, x);
  run_primitive(e->prim, {{DNNL_ARG_SRC, src},
                          {DNNL_ARG_WEIGHTS, e->weights},
                          {DNNL_ARG_BIAS, e->bias},
                          {DNNL_ARG_DST, wrap(e->dst_md, y)}});
}

}  // namespace wavtok
