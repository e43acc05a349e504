// What every layer shares (nn/layer_support.h): oneDNN attributes and weight reorders, int8 support, the
// calibration observer, activations and bf16 conversion. The layers themselves: conv.cc, linear.cc, norm.cc, lstm.cc,
// attention.cc.
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
namespace {

using dnnl::memory;

dnnl::algorithm act_alg(Act a) {
  switch (a) {
    case Act::Elu:
      return dnnl::algorithm::eltwise_elu;
    case Act::Gelu:
      return dnnl::algorithm::eltwise_gelu_erf;
    case Act::Silu:
      return dnnl::algorithm::eltwise_swish;
    default:
      return dnnl::algorithm::undef;
  }
}

}  // namespace

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

// ---------------------------------------------------------------- int8 support

thread_local const ActObserver* t_observer = nullptr;

std::shared_ptr<const Int8State> make_int8_state(Int8Params p, const Tensor& w, const Tensor& b, int cin, int cout,
                                                 const char* who) {
  const int64_t per_out = w.numel() / cout;  // Cin * K
  const int64_t k = per_out / cin;
  if (int(p.weight_scale.size()) != cout) throw Error(std::string(who) + ": int8 weight_scale has the wrong size");
  if (!p.in_shift.empty() && int(p.in_shift.size()) != cin)
    throw Error(std::string(who) + ": int8 in_shift has the wrong size");
  if (!p.in_scale.empty() && int(p.in_scale.size()) != cin)
    throw Error(std::string(who) + ": int8 in_scale has the wrong size");
  if (!(p.act_scale > 0) || p.act_zero < 0 || p.act_zero > 255)
    throw Error(std::string(who) + ": bad int8 activation params");
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

void set_act_observer(const ActObserver* obs) { t_observer = obs; }
const ActObserver* act_observer() { return t_observer; }

WAVTOK_WIDE_VECTORS void apply_act(Act act, float* x, int64_t n) {
  if (act == Act::None || n == 0) return;
  // Tiny and called per layer: a plain loop avoids creating a primitive for every length.
  switch (act) {
    case Act::Elu:
      // expm1_nonpositive: vectorises (std::expm1 does not) and keeps small outputs accurate; NaN stays NaN.
      for (int64_t i = 0; i < n; ++i) {
        const float v = x[i];
        const float e = expm1_nonpositive(v);
        x[i] = (v > 0.0f || v != v) ? v : e;
      }
      break;
    case Act::Gelu:
      for (int64_t i = 0; i < n; ++i) x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.70710678118654752f));
      break;
    case Act::Silu:
      for (int64_t i = 0; i < n; ++i) x[i] = silu_value(x[i]);
      break;
    default:
      break;
  }
}

WAVTOK_WIDE_VECTORS void apply_act_copy(Act act, const float* x, float* y, int64_t n) {
  if (n <= 0) return;
  if (act == Act::Elu) {  // the loop of apply_act, reading x and writing y
    for (int64_t i = 0; i < n; ++i) {
      const float v = x[i];
      const float e = expm1_nonpositive(v);
      y[i] = (v > 0.0f || v != v) ? v : e;
    }
    return;
  }
  std::copy(x, x + n, y);
  apply_act(act, y, n);
}

const uint16_t* to_bf16_scratch(const float* x, int64_t n, int slot) {
  thread_local std::vector<uint16_t> buf[2];
  auto& b = buf[slot];
  if (b.size() < size_t(n)) b.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) b[i] = float_to_bf16(x[i]);
  return b.data();
}

}  // namespace wavtok
