#include "codec/layers.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <stdexcept>
#include <utility>

#include "codec/error.h"
#include "codec/quant/log_quant.h"

namespace wavtok {
namespace {

using dnnl::memory;

dnnl::algorithm act_alg(Act a) {
  switch (a) {
    case Act::Elu: return dnnl::algorithm::eltwise_elu;
    case Act::Gelu: return dnnl::algorithm::eltwise_gelu_erf;
    case Act::Silu: return dnnl::algorithm::eltwise_swish;
    default: return dnnl::algorithm::undef;
  }
}

dnnl::primitive_attr make_attr(Act post, bool accumulate) {
  dnnl::post_ops ops;
  if (accumulate) ops.append_sum(1.0f);
  if (post != Act::None) ops.append_eltwise(1.0f, act_alg(post), 1.0f, 0.0f);
  dnnl::primitive_attr attr = scratchpad_attr();
  attr.set_post_ops(ops);
  if (get_precision() == Precision::BF16) attr.set_fpmath_mode(dnnl::fpmath_mode::bf16);
  return attr;
}

// Cache key that also tells the precision apart, so switching precision never reuses a primitive.
int64_t pkey(int64_t k) { return k * 2 + (get_precision() == Precision::BF16 ? 1 : 0); }

// Reorders user weights into the layout a primitive asked for (done once per primitive).
memory reorder_weights(const memory::desc& want, const memory::desc& have, const float* data) {
  memory src = wrap(have, data);
  if (want == have) {
    memory dst(want, cpu_engine());
    std::copy(data, data + have.get_size() / sizeof(float), static_cast<float*>(dst.get_data_handle()));
    return dst;
  }
  memory dst(want, cpu_engine());
  dnnl::stream s(cpu_engine());
  dnnl::reorder(src, dst).execute(s, src, dst);
  return dst;
}

memory copy_to_memory(const memory::desc& md, const float* data) {
  memory m(md, cpu_engine());
  std::copy(data, data + md.get_size() / sizeof(float), static_cast<float*>(m.get_data_handle()));
  return m;
}

}  // namespace

// ---------------------------------------------------------------- int8 support

struct Int8State {
  Int8Params p;
  std::vector<int8_t> qw;        // weight codes in the user layout (oi / oiw)
  std::vector<float> shift, inv;  // per input channel: u / act_scale = (x - shift) * inv
  std::vector<float> bias_acc;    // bias in accumulator units, zero-point compensation included
  std::vector<float> out_scale;   // act_scale * weight_scale[o]
};

namespace {

thread_local const ActObserver* t_observer = nullptr;

}  // namespace

std::vector<int8_t> int8_weight_codes(const float* w, int64_t numel, const std::vector<float>& scale) {
  const int64_t cout = int64_t(scale.size());
  if (cout == 0 || numel % cout) throw Error("int8 weights: " + std::to_string(numel) + " values do not split into " +
                                             std::to_string(cout) + " output channels");
  const int64_t per_out = numel / cout;
  std::vector<int8_t> q(static_cast<size_t>(numel));
  for (int64_t o = 0; o < cout; ++o)
    for (int64_t i = 0; i < per_out; ++i)
      q[o * per_out + i] = static_cast<int8_t>(std::clamp(std::nearbyint(w[o * per_out + i] / scale[o]), -127.0f, 127.0f));
  return q;
}

namespace {

std::shared_ptr<const Int8State> make_int8_state(Int8Params p, const Tensor& w, const Tensor& b, int cin, int cout,
                                                 const char* who) {
  const int64_t per_out = w.numel() / cout;  // Cin * K
  const int64_t k = per_out / cin;
  if (int(p.weight_scale.size()) != cout) throw Error(std::string(who) + ": int8 weight_scale has the wrong size");
  if (!p.in_shift.empty() && int(p.in_shift.size()) != cin) throw Error(std::string(who) + ": int8 in_shift has the wrong size");
  if (!p.in_scale.empty() && int(p.in_scale.size()) != cin) throw Error(std::string(who) + ": int8 in_scale has the wrong size");
  if (!(p.act_scale > 0) || p.act_zero < 0 || p.act_zero > 255) throw Error(std::string(who) + ": bad int8 activation params");
  auto s = std::make_shared<Int8State>();
  s->bias_acc.resize(cout);
  s->out_scale.resize(cout);
  for (int o = 0; o < cout; ++o)
    if (!(p.weight_scale[o] > 0))
      throw Error(std::string(who) + ": int8 weight scale of channel " + std::to_string(o) + " is not positive");
  s->qw = int8_weight_codes(w.data(), w.numel(), p.weight_scale);
  for (int o = 0; o < cout; ++o) {
    const float ws = p.weight_scale[o];
    int64_t sum = 0;
    for (int64_t i = 0; i < per_out; ++i) sum += s->qw[o * per_out + i];
    s->out_scale[o] = p.act_scale * ws;
    // oneDNN 2.x int8: dst = output_scale * (acc + bias), so the bias is given in accumulator units. The codes
    // carry the zero point: sum_i (q_i - z) w_i = acc - z sum_i w_i.
    s->bias_acc[o] = static_cast<float>(double(b[o]) / (double(p.act_scale) * ws) - double(p.act_zero) * double(sum));
  }
  s->shift.assign(cin, 0.0f);
  s->inv.assign(cin, 1.0f / p.act_scale);
  for (int c = 0; c < cin; ++c) {
    if (!p.in_shift.empty()) s->shift[c] = p.in_shift[c];
    if (!p.in_scale.empty()) {
      if (!(p.in_scale[c] > 0)) throw Error(std::string(who) + ": int8 in_scale must be positive");
      s->inv[c] = 1.0f / (p.in_scale[c] * p.act_scale);
    }
  }
  (void)k;
  s->p = std::move(p);
  return s;
}

// Activation codes into a per-thread buffer. Clamping before rounding is the same as after (the bounds are
// integers); the 1.5 * 2^23 trick rounds half to even like rint in the default rounding mode.
const uint8_t* quantize_act(const Int8State& s, const float* x, int64_t rows, int cin, bool channels_last) {
  thread_local std::vector<uint8_t> buf;
  const int64_t n = rows * cin;
  if (buf.size() < size_t(n)) buf.resize(size_t(n));
  const float lo = -float(s.p.act_zero), hi = 255.0f - float(s.p.act_zero), z = float(s.p.act_zero);
  constexpr float kMagic = 12582912.0f;
  const float* sh = s.shift.data();
  const float* inv = s.inv.data();
  uint8_t* out = buf.data();
  if (channels_last) {
    for (int64_t r = 0; r < rows; ++r) {
      const float* xr = x + r * cin;
      uint8_t* orow = out + r * cin;
      for (int c = 0; c < cin; ++c) {
        float v = std::clamp((xr[c] - sh[c]) * inv[c], lo, hi);
        v = (v + kMagic) - kMagic;
        orow[c] = static_cast<uint8_t>(static_cast<int>(v + z));
      }
    }
  } else {
    for (int c = 0; c < cin; ++c)
      for (int64_t t = 0; t < rows; ++t) {
        float v = std::clamp((x[c * rows + t] - sh[c]) * inv[c], lo, hi);
        v = (v + kMagic) - kMagic;
        out[c * rows + t] = static_cast<uint8_t>(static_cast<int>(v + z));
      }
  }
  return out;
}

// Symmetric s8 codes clamp(rint(x * inv), -127, 127), inv = 1 / act_scale (ConvTranspose1d), per-thread buffer.
const int8_t* quantize_act_s8(float inv, const float* x, int64_t n) {
  thread_local std::vector<int8_t> buf;
  if (buf.size() < size_t(n)) buf.resize(size_t(n));
  constexpr float kMagic = 12582912.0f;
  int8_t* out = buf.data();
  for (int64_t i = 0; i < n; ++i) {
    float v = std::clamp(x[i] * inv, -127.0f, 127.0f);
    v = (v + kMagic) - kMagic;
    out[i] = static_cast<int8_t>(static_cast<int>(v));
  }
  return out;
}

dnnl::primitive_attr int8_attr(const Int8State& s, Act post, bool accumulate) {
  dnnl::post_ops ops;
  if (accumulate) ops.append_sum(1.0f);
  if (post != Act::None) ops.append_eltwise(1.0f, act_alg(post), 1.0f, 0.0f);
  dnnl::primitive_attr attr = scratchpad_attr();
  attr.set_output_scales(1 << 1, s.out_scale);  // per output channel (dim 1 of the dst)
  attr.set_post_ops(ops);
  return attr;
}

memory reorder_s8_weights(const memory::desc& want, const memory::desc& have, const int8_t* data) {
  memory src(have, cpu_engine(), const_cast<int8_t*>(data));
  memory dst(want, cpu_engine());
  dnnl::stream s(cpu_engine());
  dnnl::reorder(src, dst).execute(s, src, dst);
  s.wait();
  return dst;
}

}  // namespace

void set_act_observer(const ActObserver* obs) { t_observer = obs; }
const ActObserver* act_observer() { return t_observer; }

namespace {
// exp(x) for x <= 0 without a libm call, so that loops over it vectorise (std::expm1 does not, and the SEANet
// encoder applies ELU to every activation): x = n ln2 + r, |r| <= ln2/2, exp(r) by Cephes' degree-6 polynomial
// (relative error ~1e-7), times 2^n built in the exponent bits. Inputs below -87 give exp(-87) ~ 1.6e-38.
inline float exp_nonpositive(float x) {
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
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

// v * sigmoid(v) with e = exp(-|v|) <= 1, so that no libm call keeps the loops from vectorising; NaN stays NaN.
inline float silu_value(float v) {
  const float e = exp_nonpositive(v > 0.0f ? -v : v);
  const float sig = v > 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
  return v * sig;
}
}  // namespace

void apply_act(Act act, float* x, int64_t n) {
  if (act == Act::None || n == 0) return;
  // Tiny and called per layer: a plain loop avoids creating a primitive for every length.
  switch (act) {
    case Act::Elu:
      // exp(x) - 1 instead of expm1: absolute error ~1e-7 near 0, where ELU(x) ~ x; NaN stays NaN.
      for (int64_t i = 0; i < n; ++i) {
        const float v = x[i];
        const float e = exp_nonpositive(v) - 1.0f;
        x[i] = (v > 0.0f || v != v) ? v : e;
      }
      break;
    case Act::Gelu:
      for (int64_t i = 0; i < n; ++i) x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.70710678118654752f));
      break;
    case Act::Silu:
      for (int64_t i = 0; i < n; ++i) x[i] = silu_value(x[i]);
      break;
    default: break;
  }
}

// ---------------------------------------------------------------- Conv1d

Conv1d::Conv1d(const Tensor& weight, const Tensor& bias, int stride, int dilation, int groups,
               bool channels_last, Act post)
    : w_(Tensor::share_or_copy(weight)), b_(Tensor::share_or_copy(bias)), stride_(stride), dilation_(dilation), groups_(groups),
      channels_last_(channels_last), post_(post) {
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
  // bf16 only where it pays: dense convs with enough input channels (the depthwise and 1-channel ones are
  // memory bound).
  const bool bf16 = bf16_ok_ && get_precision() == Precision::BF16 && groups_ == 1 && cin_ >= 16;
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
          copy_to_memory(bias_md, b_.data()), src_md, dst_md, bf16};
  return e;
}

void Conv1d::set_int8(Int8Params p) {
  if (groups_ != 1) throw Error("Conv1d " + name_ + ": int8 needs groups == 1");
  q_ = make_int8_state(std::move(p), w_, b_, cin_, cout_, "Conv1d");
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
  memory::desc w_user({cout_, cin_, kernel_}, ddt::s8, dtag::oiw);
  memory::desc w_any({cout_, cin_, kernel_}, ddt::s8, dtag::any);
  dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src_md,
                                    w_any, bias_md, dst_md, {stride_}, {dilation_ - 1}, {0}, {0});
  dnnl::convolution_forward::primitive_desc pd(d, int8_attr(*q_, post_, accumulate), cpu_engine());
  return Entry{dnnl::convolution_forward(pd),
               wcache_.get(pd.weights_desc(),
                           [&] { return reorder_s8_weights(pd.weights_desc(), w_user, q_->qw.data()); }),
               copy_to_memory(bias_md, q_->bias_acc.data()), src_md, dst_md, false};
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

void Conv1d::forward(const float* x, int64_t tin, float* y, bool accumulate) const {
  const int64_t tout = out_len(tin);
  if (tout < 1) throw Error("Conv1d: input of " + std::to_string(tin) + " samples is shorter than the kernel");
  if (t_observer && !name_.empty()) (*t_observer)(name_, x, tin, cin_, channels_last_);
  const int64_t span = int64_t(dilation_) * (kernel_ - 1) + 1;
  auto part = [&](int64_t a, int64_t n, float* out, bool acc) { run(x + a * stride_ * cin_, (n - 1) * stride_ + span, out, acc); };
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
      for (int k = 0; k < kernel_; ++k) w_[(int64_t(o) * cin_ + i) * kernel_ + k] = weight[(int64_t(i) * cout_ + o) * kernel_ + k];
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
  dnnl::deconvolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::deconvolution_direct,
                                      src_md, w_any, bias_md, dst_md, {stride_}, {0}, {0});
  if (!q_) {
    dnnl::deconvolution_forward::primitive_desc pd(d, make_attr(Act::None, false), cpu_engine());
    return Entry{dnnl::deconvolution_forward(pd),
                 wcache_.get(pd.weights_desc(),
                             [&] { return reorder_weights(pd.weights_desc(), w_user, w_.data()); }),
                 copy_to_memory(bias_md, b_.data()), src_md, dst_md};
  }
  // oneDNN 2.x int8: dst = output_scale[o] * (acc + bias), so bias_acc = b / (s_a s_w[o]) (zero point 0).
  dnnl::deconvolution_forward::primitive_desc pd(d, int8_attr(*q_, Act::None, false), cpu_engine());
  return Entry{dnnl::deconvolution_forward(pd),
               wcache_.get(pd.weights_desc(),
                           [&] { return reorder_s8_weights(pd.weights_desc(), w_user, q_->qw.data()); }),
               copy_to_memory(bias_md, q_->bias_acc.data()), src_md, dst_md};
}

void ConvTranspose1d::set_int8(Int8Params p) {
  if (p.act_zero != 0 || !p.in_shift.empty() || !p.in_scale.empty())
    throw Error("ConvTranspose1d " + name_ + ": int8 needs symmetric activations (zero point 0, no shift/smooth)");
  q_ = make_int8_state(std::move(p), w_, b_, cin_, cout_, "ConvTranspose1d");
  cache_.clear();
  wcache_.clear();
}

void ConvTranspose1d::forward(const float* x, int64_t tin, float* y) const {
  if (t_observer && !name_.empty()) (*t_observer)(name_, x, tin, cin_, channels_last_);
  auto e = cache_.get(pkey(tin), [&] { return make(tin); });
  const dnnl::memory src = q_ ? dnnl::memory(e->src_md, cpu_engine(),
                                             const_cast<int8_t*>(quantize_act_s8(q_->inv[0], x, tin * cin_)))
                              : wrap(e->src_md, x);
  run_primitive(e->prim, {{DNNL_ARG_SRC, src},
                      {DNNL_ARG_WEIGHTS, e->weights},
                      {DNNL_ARG_BIAS, e->bias},
                      {DNNL_ARG_DST, wrap(e->dst_md, y)}});
}

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
               copy_to_memory(bias_md, b_.data()), src_md, dst_md, bf16};
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
  return Entry{dnnl::inner_product_forward(pd),
               wcache_.get(pd.weights_desc(),
                           [&] { return reorder_s8_weights(pd.weights_desc(), w_user, q_->qw.data()); }),
               copy_to_memory(bias_md, q_->bias_acc.data()), src_md, dst_md, false};
}

void Linear::forward(const float* x, int64_t rows, float* y, bool accumulate) const {
  if (rows == 0) return;
  if (t_observer && !name_.empty()) (*t_observer)(name_, x, rows, cin_, true);
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

// ---------------------------------------------------------------- LayerNorm

LayerNorm::Entry LayerNorm::make(int64_t rows) const {
  memory::desc md({rows, c_}, ddt::f32, dtag::ab);
  memory::desc ss_md({c_}, ddt::f32, dtag::a);
  dnnl::layer_normalization_forward::desc d(dnnl::prop_kind::forward_inference, md, eps_,
                                            dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift);
  dnnl::layer_normalization_forward::primitive_desc pd(d, scratchpad_attr(), cpu_engine());
  return Entry{dnnl::layer_normalization_forward(pd), md, ss_md};
}

void LayerNorm::forward(const float* x, int64_t rows, float* y, const float* scale, const float* shift) const {
  if (rows == 0) return;
  auto e = cache_.get(rows, [&] { return make(rows); });
  run_primitive(e->prim, {{DNNL_ARG_SRC, wrap(e->md, x)},
                      {DNNL_ARG_DST, wrap(e->md, y)},
                      {DNNL_ARG_SCALE, wrap(e->ss_md, scale)},
                      {DNNL_ARG_SHIFT, wrap(e->ss_md, shift)}});
}

// ---------------------------------------------------------------- GroupNorm

void channel_affine_tc(const float* x, int64_t T, int C, const float* gamma, const float* beta, float* y, bool silu) {
  for (int64_t t = 0; t < T; ++t) {
    const float* xr = x + t * C;
    float* yr = y + t * C;
    if (silu) {
      for (int c = 0; c < C; ++c) yr[c] = silu_value(xr[c] * gamma[c] + beta[c]);
    } else {
      for (int c = 0; c < C; ++c) yr[c] = xr[c] * gamma[c] + beta[c];
    }
  }
}

void group_norm_tc(const float* x, int64_t T, int C, int groups, float eps, const float* gamma, const float* beta,
                   float* y, bool silu) {
  const int cg = C / groups;
  // Per-thread buffers: a streaming decoder normalises every window, and its steady state should not allocate.
  thread_local std::vector<double> sum, sq;
  thread_local std::vector<float> mean, inv;
  sum.assign(size_t(groups), 0.0);
  sq.assign(size_t(groups), 0.0);
  for (int64_t t = 0; t < T; ++t) {
    const float* row = x + t * C;
    for (int g = 0; g < groups; ++g) {
      double s = 0, q = 0;
      for (int c = g * cg; c < (g + 1) * cg; ++c) {
        s += row[c];
        q += double(row[c]) * row[c];
      }
      sum[g] += s;
      sq[g] += q;
    }
  }
  // The group statistics spread per channel, so that the normalising loop is a plain vectorisable one.
  mean.resize(size_t(C));
  inv.resize(size_t(C));
  const double n = double(T) * cg;
  for (int g = 0; g < groups; ++g) {
    const double m = sum[g] / n;
    const double var = std::max(0.0, sq[g] / n - m * m);
    std::fill_n(mean.begin() + g * cg, cg, static_cast<float>(m));
    std::fill_n(inv.begin() + g * cg, cg, static_cast<float>(1.0 / std::sqrt(var + eps)));
  }
  const float* mc = mean.data();
  const float* ic = inv.data();
  for (int64_t t = 0; t < T; ++t) {
    const float* row = x + t * C;
    float* out = y + t * C;
    if (silu) {
      for (int c = 0; c < C; ++c) out[c] = silu_value((row[c] - mc[c]) * ic[c] * gamma[c] + beta[c]);
    } else {
      for (int c = 0; c < C; ++c) out[c] = (row[c] - mc[c]) * ic[c] * gamma[c] + beta[c];
    }
  }
}

// ---------------------------------------------------------------- LSTM

Lstm::Lstm(const std::vector<Tensor>& w_ih, const std::vector<Tensor>& w_hh, const std::vector<Tensor>& b_ih,
           const std::vector<Tensor>& b_hh) {
  layers_ = static_cast<int>(w_ih.size());
  if (layers_ == 0 || w_hh.size() != w_ih.size() || b_ih.size() != w_ih.size() || b_hh.size() != w_ih.size())
    throw Error("Lstm: inconsistent layer weights");
  hidden_ = static_cast<int>(w_hh[0].dim(1));
  input_ = static_cast<int>(w_ih[0].dim(1));
  const int H = hidden_, G = 4;
  // oneDNN runs all layers in one primitive only when input width == hidden width (true for SLSTM).
  if (input_ != H) throw Error("Lstm: input width must equal hidden width");
  wl_ = Tensor({layers_, 1, input_, G, H});
  wi_ = Tensor({layers_, 1, H, G, H});
  bias_ = Tensor({layers_, 1, G, H});
  for (int l = 0; l < layers_; ++l) {
    if (w_ih[l].dim(0) != G * H || w_ih[l].dim(1) != input_ || w_hh[l].dim(0) != G * H || w_hh[l].dim(1) != H ||
        b_ih[l].numel() != G * H || b_hh[l].numel() != G * H)
      throw Error("Lstm: layer " + std::to_string(l) + " weights have unexpected shapes");
    for (int r = 0; r < G * H; ++r) {  // PyTorch row r = gate*H + h
      for (int i = 0; i < input_; ++i) wl_[((int64_t(l) * input_ + i) * G * H) + r] = w_ih[l][int64_t(r) * input_ + i];
      for (int i = 0; i < H; ++i) wi_[((int64_t(l) * H + i) * G * H) + r] = w_hh[l][int64_t(r) * H + i];
      bias_[int64_t(l) * G * H + r] = b_ih[l][r] + b_hh[l][r];
    }
  }
}

Lstm::State Lstm::initial_state() const {
  State s;
  s.h = Tensor({layers_, hidden_});
  s.c = Tensor({layers_, hidden_});
  return s;
}

void Lstm::set_int8(LstmInt8Params p) {
  if (p.weight_scale.size() != size_t(4) * hidden_)
    throw Error("Lstm: int8 weight_scale has " + std::to_string(p.weight_scale.size()) + " values, want " +
                std::to_string(4 * hidden_));
  for (float w : p.weight_scale)
    if (!(w > 0) || !std::isfinite(w)) throw Error("Lstm: int8 weight_scale holds a non-positive or non-finite value");
  if (!(p.data_scale > 0) || !std::isfinite(p.data_scale) || !std::isfinite(p.data_shift) || p.data_shift < 0 ||
      p.data_shift > 255 || !(p.in_divisor > 0) || !std::isfinite(p.in_divisor))
    throw Error("Lstm: bad int8 data scale, shift or input divisor");
  q_ = std::move(p);
  cache_.clear();
  wl_cache_.clear();
  wi_cache_.clear();
}

Lstm::Entry Lstm::make(int64_t T) const {
  const int64_t L = layers_, H = hidden_, G = 4;
  const bool i8 = q_.has_value();
  const ddt in_dt = i8 ? ddt::u8 : ddt::f32, w_dt = i8 ? ddt::s8 : ddt::f32;
  memory::desc src_md({T, 1, input_}, in_dt, dtag::tnc);
  memory::desc dst_md({T, 1, H}, ddt::f32, dtag::tnc);
  memory::desc src_iter_md({L, 1, 1, H}, in_dt, dtag::ldnc);
  memory::desc iter_md({L, 1, 1, H}, ddt::f32, dtag::ldnc);
  memory::desc wl_user({L, 1, input_, G, H}, ddt::f32, dtag::ldigo);
  memory::desc wi_user({L, 1, H, G, H}, ddt::f32, dtag::ldigo);
  memory::desc bias_md({L, 1, G, H}, ddt::f32, dtag::ldgo);
  memory::desc wl_any({L, 1, input_, G, H}, w_dt, dtag::any);
  memory::desc wi_any({L, 1, H, G, H}, w_dt, dtag::any);
  dnnl::primitive_attr attr = scratchpad_attr(), rattr;
  if (i8) {
    // oneDNN's RNN scales are multipliers: u8 = v * data_scale + shift, s8 = w * weights_scale.
    std::vector<float> ws(q_->weight_scale.size());
    for (size_t r = 0; r < ws.size(); ++r) ws[r] = 1.0f / q_->weight_scale[r];
    for (auto* a : {&attr, &rattr}) {
      a->set_rnn_data_qparams(q_->data_scale, q_->data_shift);
      a->set_rnn_weights_qparams((1 << 3) | (1 << 4), ws);  // per gate row (dims g, o of ldigo)
    }
  }
  dnnl::lstm_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::rnn_direction::unidirectional_left2right,
                             src_md, src_iter_md, iter_md, wl_any, wi_any, bias_md, dst_md, src_iter_md, iter_md);
  dnnl::lstm_forward::primitive_desc pd(d, attr, cpu_engine());  // int8: dst_iter must be u8 (oneDNN 2.6)
  auto weights = [&](const memory::desc& want, const memory::desc& have, const float* data) {
    if (!i8) return reorder_weights(want, have, data);
    // The int8 reorder quantizes with the scales above and adds the compensation of the u8 data shift.
    memory src = wrap(have, data), dst(want, cpu_engine());
    dnnl::stream s(cpu_engine());
    dnnl::reorder(dnnl::reorder::primitive_desc(cpu_engine(), have, cpu_engine(), want, rattr)).execute(s, src, dst);
    return dst;
  };
  const memory::desc wl_md = pd.weights_layer_desc(), wi_md = pd.weights_iter_desc();
  return Entry{dnnl::lstm_forward(pd), wl_cache_.get(wl_md, [&] { return weights(wl_md, wl_user, wl_.data()); }),
               wi_cache_.get(wi_md, [&] { return weights(wi_md, wi_user, wi_.data()); }), copy_to_memory(bias_md, bias_.data()),
               src_md, dst_md, iter_md, iter_md, src_iter_md};
}

void Lstm::forward(const float* x, int64_t T, float* y, State* state) const {
  if (T == 0) return;
  if (!q_ && t_observer && !name_.empty()) (*t_observer)(name_, x, T, input_, true);
  auto e = cache_.get(T, [&] { return make(T); });
  State local;
  if (!state) {
    local = initial_state();
    state = &local;
  }
  // oneDNN reads src_iter before writing dst_iter per cell, but keep them distinct to be safe.
  Tensor& h_out = state->h_next;
  Tensor& c_out = state->c_next;
  h_out.resize({layers_, hidden_});
  c_out.resize({layers_, hidden_});
  memory src, src_iter, dst_iter;
  thread_local std::vector<uint8_t> hq_out;
  if (q_) {
    // u8 inputs: the layer-0 input and the carried hidden state (f32 between chunks; requantizing it gives the
    // codes oneDNN would have used inside one longer call).
    thread_local std::vector<uint8_t> xq, hq;
    const int64_t n = T * input_, nh = int64_t(layers_) * hidden_;
    if (xq.size() < size_t(n)) xq.resize(size_t(n));
    if (hq.size() < size_t(nh)) hq.resize(size_t(nh));
    const float k = q_->data_scale / q_->in_divisor, s = q_->data_scale, z = q_->data_shift;
    for (int64_t i = 0; i < n; ++i) xq[i] = uint8_t(std::clamp(std::nearbyint(x[i] * k + z), 0.0f, 255.0f));
    const float* h = state->h.data();
    for (int64_t i = 0; i < nh; ++i) hq[i] = uint8_t(std::clamp(std::nearbyint(h[i] * s + z), 0.0f, 255.0f));
    src = memory(e->src_md, cpu_engine(), xq.data());
    src_iter = memory(e->src_iter_md, cpu_engine(), hq.data());
    if (hq_out.size() < size_t(nh)) hq_out.resize(size_t(nh));
    dst_iter = memory(e->src_iter_md, cpu_engine(), hq_out.data());
  } else {
    src = wrap(e->src_md, x);
    src_iter = wrap(e->src_iter_md, state->h.data());
    dst_iter = wrap(e->iter_md, h_out.data());
  }
  run_primitive(e->prim, {{DNNL_ARG_SRC_LAYER, src},
                      {DNNL_ARG_SRC_ITER, src_iter},
                      {DNNL_ARG_SRC_ITER_C, wrap(e->iter_c_md, state->c.data())},
                      {DNNL_ARG_WEIGHTS_LAYER, e->wl},
                      {DNNL_ARG_WEIGHTS_ITER, e->wi},
                      {DNNL_ARG_BIAS, e->bias},
                      {DNNL_ARG_DST_LAYER, wrap(e->dst_md, y)},
                      {DNNL_ARG_DST_ITER, dst_iter},
                      {DNNL_ARG_DST_ITER_C, wrap(e->iter_c_md, c_out.data())}});
  if (q_) {  // the u8 hidden state back to f32 (requantizing it next chunk gives these codes again)
    const float inv = 1.0f / q_->data_scale, z = q_->data_shift;
    for (int64_t i = 0; i < int64_t(layers_) * hidden_; ++i) h_out[i] = (float(hq_out[i]) - z) * inv;
  }
  std::swap(state->h, state->h_next);
  std::swap(state->c, state->c_next);
}

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
  dnnl::softmax_forward::primitive_desc sm_pd(
      dnnl::softmax_forward::desc(dnnl::prop_kind::forward_inference, s_md, 1), scratchpad_attr(), cpu_engine());
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
  if (pq_) quant::fake_quant(std::span<const float>(scratch.data(), size_t(T * T)), std::span<float>(scratch.data(), size_t(T * T)), *pq_);
  run_primitive(e->pv, {{DNNL_ARG_SRC, sm}, {DNNL_ARG_WEIGHTS, wrap(e->v_md, v)}, {DNNL_ARG_DST, wrap(e->o_md, out)}});
}

const uint16_t* to_bf16_scratch(const float* x, int64_t n, int slot) {
  thread_local std::vector<uint16_t> buf[2];
  auto& b = buf[slot];
  if (b.size() < size_t(n)) b.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, &x[i], 4);
    u += 0x7FFFu + ((u >> 16) & 1u);  // round to nearest even (finite inputs)
    b[i] = static_cast<uint16_t>(u >> 16);
  }
  return b.data();
}

}  // namespace wavtok
