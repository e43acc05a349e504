#include "ptq/calibrate.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <optional>
#include <random>
#include <regex>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "core/error.h"
#include "core/util.h"
#include "io/model_file.h"
#include "models/models.h"
#include "models/quantized.h"
#include "nn/layers.h"
#include "quant/log_quant.h"
#include "quant/lowbit.h"
#include "quant/mixed.h"
#include "quant/reparam.h"
#include "quant/smooth.h"
#include "quant/uniform.h"

namespace wavtok {
namespace {

namespace q = wavtok::quant;

constexpr int64_t kSoftmaxSamples = 1 << 17;  // probabilities kept for the log quantizers' searches

bool is_softmax_stat(const std::string& name) {
  return name.size() > 8 && name.compare(name.size() - 8, 8, ".softmax") == 0;
}

// V of an attention block (NAME.attn_v): the int8 attention's per-channel scales, not a layer.
bool is_attn_v_stat(const std::string& name) {
  return name.size() > 7 && name.compare(name.size() - 7, 7, ".attn_v") == 0;
}

// ---------------------------------------------------------------- recipe parsing

template <class T>
T opt(const YAML::Node& n, const char* key, T def) {
  return n[key] ? n[key].as<T>() : def;
}

void check_one_of(const std::string& v, std::initializer_list<const char*> ok, const std::string& what,
                  const std::string& origin) {
  for (const char* o : ok)
    if (v == o) return;
  std::string list;
  for (const char* o : ok) list += std::string(list.empty() ? "" : ", ") + o;
  throw Error(origin + ": " + what + " '" + v + "' is not one of " + list);
}

q::RangeMethod range_of(const std::string& s) {
  if (s == "percentile") return q::RangeMethod::kPercentile;
  if (s == "mse") return q::RangeMethod::kMse;
  if (s == "omse") return q::RangeMethod::kOmse;
  return q::RangeMethod::kMinMax;
}

// ---------------------------------------------------------------- one layer

struct LayerView {
  std::string name;
  std::vector<int64_t> wshape;  // [cout, cin] or [cout, cin, k]
  int cout = 0, cin = 0, k = 1;
};

// Transposed-tap view Wt[(o * k + j), c] of a [cout, cin, k] weight: each tap is one linear map of an input row.
std::vector<float> taps_matrix(const Tensor& w, const LayerView& v) {
  std::vector<float> t(size_t(v.cout) * v.k * v.cin);
  for (int o = 0; o < v.cout; ++o)
    for (int c = 0; c < v.cin; ++c)
      for (int j = 0; j < v.k; ++j) t[(size_t(o) * v.k + j) * v.cin + c] = w[(int64_t(o) * v.cin + c) * v.k + j];
  return t;
}

struct InputTransform {
  std::vector<float> shift, smooth;
};

struct Quantized {
  std::vector<float> shift, smooth;  // empty when identity
  q::QParams act;
  std::vector<float> weight, bias;  // W' (fake-quantized below 8 bits), b'
  std::vector<float> weight_scale;
  double alpha = 0;
  bool weight_only = false;  // activations stay float: `act` unused
  bool dynamic = false;      // act_range token: per-token ranges at run time, `act` unused
  int act_group = 0;         // with dynamic: a range per input step and group of this many channels
  bool lowbit = false;       // group-wise low-bit weights (quant/lowbit.h)
  q::LowBitWeights lb;       // when lowbit: widths, multipliers, codes
};

// Relative output error of the quantized layer against float on (up to) 256 sampled rows, treating each tap
// as a linear map of one input row (exact for Linear, a proxy for convolutions).
double layer_rel_mse(const LayerStats& st, const LayerView& v, const Tensor& w, const Quantized& r) {
  const int64_t n = std::min<int64_t>(st.sampled(), 256);
  if (n == 0) return 0;
  const std::vector<float> wt = taps_matrix(w, v);
  Tensor wq(v.wshape, r.weight);
  std::vector<float> wqt = taps_matrix(wq, v);
  for (int o = 0; o < v.cout; ++o) {  // W' on the s8 grid, as the layer will use it
    const float s = r.weight_scale[o];
    for (int64_t i = 0; i < int64_t(v.k) * v.cin; ++i) {
      float& x = wqt[o * int64_t(v.k) * v.cin + i];
      x = s * std::clamp(std::nearbyint(x / s), -127.0f, 127.0f);
    }
  }
  const int64_t R = int64_t(v.cout) * v.k;
  std::vector<float> u(v.cin);
  q::QParams act = r.act;  // per tensor: applies to one row as well
  act.shape = {v.cin};
  double num = 0, den = 0;
  for (int64_t t = 0; t < n; ++t) {
    const float* x = st.rows.data() + t * v.cin;
    for (int c = 0; c < v.cin; ++c) {
      const float sh = r.shift.empty() ? 0.0f : r.shift[c], sm = r.smooth.empty() ? 1.0f : r.smooth[c];
      u[c] = (x[c] - sh) / sm;
    }
    if (r.dynamic) {  // the row on its own range (a proxy: the layer takes the range over K input rows), or each group
      const int g = r.act_group > 0 ? r.act_group : v.cin;
      for (int c0 = 0; c0 < v.cin; c0 += g) {
        float lo = 0, hi = 0;
        for (int c = c0; c < c0 + g; ++c) lo = std::min(lo, u[c]), hi = std::max(hi, u[c]);
        const float s = std::max((hi - lo) / 255.0f, 1e-8f), inv = 1.0f / s;
        const float z = std::clamp(std::nearbyint(-lo * inv), 0.0f, 255.0f);
        for (int c = c0; c < c0 + g; ++c) u[c] = s * std::nearbyint(std::clamp(u[c] * inv, -z, 255.0f - z));
      }
    } else if (!r.weight_only) {
      q::fake_quant(u, u, act);
    }
    for (int64_t o = 0; o < R; ++o) {
      double yf = 0, yq = 0;
      const float* a = wt.data() + o * v.cin;
      const float* b = wqt.data() + o * v.cin;
      for (int c = 0; c < v.cin; ++c) {
        yf += double(a[c]) * x[c];
        yq += double(b[c]) * u[c] + (r.shift.empty() ? 0.0 : double(a[c]) * r.shift[c]);
      }
      num += (yf - yq) * (yf - yq);
      den += yf * yf;
    }
  }
  return den > 0 ? num / den : 0;
}

// Dual clipping (act_range: dualclip): the activation range starts from a per-side MSE search (q::kOmse: the lower
// and the upper clip searched independently; per input channel under repq, per tensor otherwise), then both
// sides are scaled by (clip_lo, clip_hi), which quantize_layer_searched picks on the layer's output error.
struct ClipMult {
  double lo = 1, hi = 1;
};

Quantized quantize_layer(const LayerStats& st, const LayerView& v, const Tensor& w, const Tensor& b,
                         const PtqRule& rule, int weight_bits, ClipMult clip = {}) {
  Quantized r;
  const bool dual = rule.act_range == "dualclip";
  const int64_t n = st.sampled();
  const int C = v.cin;
  std::vector<float> xs(st.rows.begin(), st.rows.end());
  const bool transposed = is_transposed_conv_layer(v.name);
  if (transposed && rule.transform != "none")
    throw Error("quantize: " + v.name +
                " is a transposed conv; its int8 input is symmetric with no transform, but the "
                "recipe asks for transform '" +
                rule.transform + "'");
  if (transposed) {  // symmetric s8 input, zero point 0 (nn/layers.h ConvTranspose1d)
    q::UniformSpec as;
    as.bits = 8;
    as.symmetric = true;
    as.range = range_of(rule.act_range);
    as.percentile = rule.percentile;
    if (dual)
      throw Error("quantize: " + v.name +
                  " is a transposed conv (symmetric input); act_range dualclip needs an "
                  "asymmetric input");
    if (rule.act_range == "minmax") {
      float lo = 0, hi = 0;
      for (int c = 0; c < C; ++c) {
        lo = std::min(lo, st.lo[c]);
        hi = std::max(hi, st.hi[c]);
      }
      r.act = q::params_from_ranges(std::vector<float>{lo}, std::vector<float>{hi}, std::vector<int64_t>{1}, as);
    } else {
      r.act = q::calibrate(xs, std::vector<int64_t>{n * C}, as);
    }
    if (!(r.act.scale[0] > 0) || !std::isfinite(r.act.scale[0])) r.act.scale[0] = 1.0f;  // an all-zero input
  } else if (rule.transform == "sqb") {
    const int64_t ns = std::min<int64_t>(n, 512);  // the alpha search costs one GEMM per grid point
    // low-bit rules: search alpha at their average width (per output channel: a proxy for the groups)
    const int search_bits = rule.avg_bits > 0 ? std::clamp(int(std::lround(rule.avg_bits)), 2, 8) : weight_bits;
    std::vector<float> wt = taps_matrix(w, v), zb(size_t(v.cout) * v.k, 0.0f);
    const std::vector<double> alphas = {0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0};
    q::SmoothResult s =
        q::search_smooth_alpha(std::span<const float>(xs.data(), ns * C), ns, C, wt, zb, int64_t(v.cout) * v.k,
                               q::LayerQuantSpec{search_bits, 8, false}, true, alphas);
    r.alpha = s.alpha;
    r.shift = s.shift;
    r.smooth = s.scale;
    for (auto& x : r.smooth)
      if (!(x > 0) || !std::isfinite(x)) x = 1.0f;
  } else if (rule.transform == "repq") {
    q::UniformSpec pc;
    pc.bits = 8;
    pc.gran = q::Granularity::kPerChannel;
    pc.axis = 1;
    pc.range = range_of(rule.act_range);
    pc.percentile = rule.percentile;
    if (dual) pc.range = q::RangeMethod::kOmse;
    q::QParams per = rule.act_range == "minmax" ? q::params_from_ranges(st.lo, st.hi, std::vector<int64_t>{1, C}, pc)
                                                : q::calibrate(xs, std::vector<int64_t>{n, C}, pc);
    if (dual) {  // per channel [lo_c, hi_c] = [-s z, s (255 - z)], each side scaled by its multiplier
      std::vector<float> lo(C), hi(C);
      for (int c = 0; c < C; ++c) {
        lo[c] = float(-double(per.scale[c]) * per.zero_point[c] * clip.lo);
        hi[c] = float(double(per.scale[c]) * (255 - per.zero_point[c]) * clip.hi);
      }
      per = q::params_from_ranges(lo, hi, std::vector<int64_t>{1, C}, pc);
    }
    per.shape = {n, C};
    for (auto& s : per.scale) s = std::max(s, 1e-8f);
    std::vector<float> ones(C, 1.0f), zeros(C, 0.0f), wt = taps_matrix(w, v), zb(size_t(v.cout) * v.k, 0.0f);
    q::LnReparam rp =
        q::reparam_layernorm(per, ones, zeros, wt, zb, int64_t(v.cout) * v.k,
                             rule.repq_shared == "mean" ? q::SharedScale::kMean : q::SharedScale::kMedian);
    r.shift.resize(C);
    r.smooth.resize(C);
    for (int c = 0; c < C; ++c) {  // X' = (X + s r2) / r1 = (X - shift) / smooth
      r.smooth[c] = float(rp.r1[c]);
      r.shift[c] = -per.scale[c] * float(rp.r2[c]);
    }
    r.act = rp.act;
  }
  r.weight_only = rule.weight_only;
  r.dynamic = rule.act_range == "token";
  if (r.dynamic && rule.act_group > 0) {
    r.act_group = std::min(rule.act_group, v.cin);
    if (v.cin % r.act_group != 0)
      throw Error("quantize: " + v.name + ": act_group " + std::to_string(rule.act_group) + " does not divide its " +
                  std::to_string(v.cin) + " input channels");
  }
  if (r.dynamic) {  // no static range: act_quant is the placeholder [1, 0]
    r.act.scale = {1.0f};
    r.act.zero_point = {0};
  } else if (rule.transform != "repq" && !transposed && !r.weight_only) {
    q::UniformSpec as;
    as.bits = 8;
    as.range = range_of(rule.act_range);
    as.percentile = rule.percentile;
    if (rule.act_range == "minmax") {  // exact range over every frame seen, through the transform
      float lo = 0, hi = 0;
      for (int c = 0; c < C; ++c) {
        const float sh = r.shift.empty() ? 0.0f : r.shift[c], sm = r.smooth.empty() ? 1.0f : r.smooth[c];
        lo = std::min(lo, (st.lo[c] - sh) / sm);
        hi = std::max(hi, (st.hi[c] - sh) / sm);
      }
      r.act = q::params_from_ranges(std::vector<float>{lo}, std::vector<float>{hi}, std::vector<int64_t>{1}, as);
    } else {
      std::vector<float> u = xs;
      if (!r.shift.empty())
        for (int64_t i = 0; i < n * C; ++i) u[i] = (u[i] - r.shift[i % C]) / r.smooth[i % C];
      if (dual) as.range = q::RangeMethod::kOmse;
      r.act = q::calibrate(u, std::vector<int64_t>{n * C}, as);
      if (dual) {
        const double s = r.act.scale[0], z = r.act.zero_point[0];
        r.act = q::params_from_ranges(std::vector<float>{float(-s * z * clip.lo)},
                                      std::vector<float>{float(s * (255 - z) * clip.hi)}, std::vector<int64_t>{1}, as);
      }
    }
  }
  // W' = W diag(smooth), b' = b + W shift
  r.weight.assign(w.data(), w.data() + w.numel());
  r.bias.assign(b.data(), b.data() + b.numel());
  if (!r.shift.empty())
    for (int o = 0; o < v.cout; ++o) {
      double acc = 0;
      for (int c = 0; c < C; ++c)
        for (int j = 0; j < v.k; ++j) {
          const int64_t i = (int64_t(o) * C + c) * v.k + j;
          acc += double(w[i]) * r.shift[c];
          r.weight[i] = w[i] * r.smooth[c];
        }
      r.bias[o] = float(double(b[o]) + acc);
    }
  if (rule.group_size > 0 || rule.weight_only) {  // group-wise low-bit weights on an s8 grid (quant/lowbit.h)
    const int64_t cols = int64_t(C) * v.k;
    std::vector<double> xsq(C, 0.0);  // E[u_c^2] of the layer's (transformed) input on the sample
    for (int64_t t = 0; t < n; ++t)
      for (int c = 0; c < C; ++c) {
        const float sh = r.shift.empty() ? 0.0f : r.shift[c], sm = r.smooth.empty() ? 1.0f : r.smooth[c];
        const double u = (xs[t * C + c] - sh) / sm;
        xsq[c] += u * u;
      }
    std::vector<float> h(static_cast<size_t>(cols));
    for (int c = 0; c < C; ++c)
      for (int j = 0; j < v.k; ++j) h[size_t(c) * v.k + j] = float(xsq[c] / double(std::max<int64_t>(n, 1)));
    q::LowBitSpec spec;
    spec.group = rule.group_size > 0 ? std::min<int64_t>(rule.group_size, cols) : cols;
    spec.avg_bits = rule.avg_bits > 0 ? rule.avg_bits : weight_bits;
    spec.widths = rule.avg_bits > 0 ? rule.widths : std::vector<int>{weight_bits};
    spec.sqc = rule.sqc;
    r.lb = q::quantize_lowbit(r.weight, v.cout, cols, h, spec);
    r.weight = r.lb.dequantize();
    r.weight_scale = r.lb.row_scale;
    r.lowbit = true;
    return r;
  }
  q::UniformSpec ws;
  ws.bits = weight_bits;
  ws.symmetric = true;
  ws.gran = q::Granularity::kPerChannel;
  ws.axis = 0;
  ws.range = range_of(rule.weight_range);
  q::QParams wp = q::calibrate(r.weight, v.wshape, ws);
  if (weight_bits < 8) q::fake_quant(r.weight, r.weight, wp);
  r.weight_scale = wp.scale;
  for (auto& s : r.weight_scale)
    if (!(s > 0)) s = 1.0f;  // an all-zero row: any scale gives code 0
  return r;
}

// A depthwise conv (weight [C, 1, K], rule transform: channel): output channel c reads only input channel c, so a
// symmetric range r_c per input channel (codes clamp(rint(127 x / r_c)) + 128: act_smooth r_c, act_quant
// [1/127, 128]) folds exactly into that channel's weights, W'_c = W_c r_c, bias unchanged, at no cost at run time.
// The conv's zero padding lands on code 128 exactly. r_c is the channel's largest |x| (minmax) or its percentile of
// |x| over the sampled rows; int8 weights per output channel.
Quantized quantize_depthwise(const LayerStats& st, const Tensor& w, const Tensor& b, const PtqRule& rule) {
  const int C = st.cin;
  const int64_t K = w.dim(2), n = st.sampled();
  Quantized r;
  r.smooth.assign(size_t(C), 1.0f);
  std::vector<float> col;
  for (int c = 0; c < C; ++c) {
    float m = std::max(std::fabs(st.lo[size_t(c)]), std::fabs(st.hi[size_t(c)]));
    if (rule.act_range == "percentile" && n > 0) {
      col.resize(size_t(n));
      for (int64_t t = 0; t < n; ++t) col[size_t(t)] = std::fabs(st.rows[size_t(t * C + c)]);
      const auto at = std::min<int64_t>(n - 1, int64_t(std::ceil(rule.percentile / 100.0 * double(n))) - 1);
      std::nth_element(col.begin(), col.begin() + std::max<int64_t>(at, 0), col.end());
      m = col[size_t(std::max<int64_t>(at, 0))];
    }
    r.smooth[size_t(c)] = m > 0 && std::isfinite(m) ? m : 1.0f;  // an all-zero channel: any range gives code 128
  }
  r.act.scale = {1.0f / 127.0f};
  r.act.zero_point = {128};
  r.weight.resize(size_t(w.numel()));
  r.weight_scale.resize(size_t(C));
  for (int c = 0; c < C; ++c) {
    float mx = 0;
    for (int64_t k = 0; k < K; ++k) {
      const float v = w[c * K + k] * r.smooth[size_t(c)];
      r.weight[size_t(c * K + k)] = v;
      mx = std::max(mx, std::fabs(v));
    }
    r.weight_scale[size_t(c)] = mx > 0 ? mx / 127.0f : 1.0f;
  }
  r.bias.assign(b.data(), b.data() + b.numel());
  return r;
}

// The depthwise layer's relative output error on the calibration sample, each tap taken as its own product
// w_ck x_c (the sampled rows are not consecutive frames): a proxy, like layer_rel_mse for the dense convs.
double depthwise_rel_mse(const LayerStats& st, const Tensor& w, const Quantized& r) {
  const int C = st.cin;
  const int64_t K = w.dim(2), n = std::min<int64_t>(st.sampled(), 256);
  double num = 0, den = 0;
  for (int64_t t = 0; t < n; ++t)
    for (int c = 0; c < C; ++c) {
      const float x = st.rows[size_t(t * C + c)];
      const double u = std::clamp(std::nearbyint(double(x) * 127.0 / r.smooth[size_t(c)]), -128.0, 127.0);
      for (int64_t k = 0; k < K; ++k) {
        const double wq = std::nearbyint(r.weight[size_t(c * K + k)] / r.weight_scale[size_t(c)]);
        const double yf = double(w[c * K + k]) * x, yq = wq * r.weight_scale[size_t(c)] * u / 127.0;
        num += (yf - yq) * (yf - yq);
        den += yf * yf;
      }
    }
  return den > 0 ? num / den : 0;
}

// act_range dualclip: the clip multipliers (one per side, 1.0 .. 0.5 in steps of 0.05) searched on the layer's output
// error over the calibration sample (layer_rel_mse), min-max ranges as a candidate too, so the result is never
// worse than min-max on that objective.
Quantized quantize_layer_searched(const LayerStats& st, const LayerView& v, const Tensor& w, const Tensor& b,
                                  const PtqRule& rule, int weight_bits) {
  if (rule.act_range != "dualclip") return quantize_layer(st, v, w, b, rule, weight_bits);
  PtqRule mm = rule;
  mm.act_range = "minmax";
  Quantized best = quantize_layer(st, v, w, b, mm, weight_bits);
  double best_e = layer_rel_mse(st, v, w, best);
  // Each side scanned with the other at 1, then both sides at their best values together; the best of all.
  ClipMult one, both;
  Quantized cur_q = quantize_layer(st, v, w, b, rule, weight_bits, one);
  double cur_e = layer_rel_mse(st, v, w, cur_q);
  for (int side = 0; side < 2; ++side) {
    double side_e = cur_e;
    for (int k = 19; k >= 10; --k) {
      ClipMult t = one;
      (side == 0 ? t.lo : t.hi) = k / 20.0;
      Quantized r = quantize_layer(st, v, w, b, rule, weight_bits, t);
      const double e = layer_rel_mse(st, v, w, r);
      if (e < side_e) side_e = e, (side == 0 ? both.lo : both.hi) = k / 20.0;
      if (e < cur_e) cur_e = e, cur_q = std::move(r);
    }
  }
  if (both.lo < 1 && both.hi < 1) {
    Quantized r = quantize_layer(st, v, w, b, rule, weight_bits, both);
    const double e = layer_rel_mse(st, v, w, r);
    if (e < cur_e) cur_e = e, cur_q = std::move(r);
  }
  if (cur_e < best_e) best = std::move(cur_q);
  return best;
}

// Int8 LSTM (LstmInt8Params in nn/layers.h): the layer-0 input is divided by its calibrated max |x| so that it
// shares the hidden state's range (-1, 1), and one u8 mapping (scale 127, shift 128) serves both, as oneDNN's int8
// RNN needs; the divisor is folded into weight_ih_l0. Weight scales: symmetric per row of each matrix (recipe key
// lstm_scales: per_matrix, the default), or per gate row over every layer's W_ih and W_hh (shared: oneDNN's RNN
// weight scales span layers; low-bit and weight-only LSTMs always share). Returns the relative error of the
// layer-0 gate pre-activations W_ih x on the sampled rows (a proxy: the recurrence is not replayed).
double quantize_lstm(WeightMap& out, const std::string& name, const LayerStats& st, const PtqRule& rule,
                     double* avg_bits_out = nullptr) {
  if (rule.transform != "none")
    throw Error("quantize: " + name + " is an LSTM; its int8 inputs take no transform, but the recipe asks for '" +
                rule.transform + "'");
  const bool lowbit = rule.group_size > 0;
  if (rule.weight_bits != 8 && !lowbit)
    throw Error("quantize: " + name + " is an LSTM; its weights are 8-bit unless group_size sets low-bit groups");
  const int64_t n = st.sampled();
  const int C = st.cin;
  double a = 0;
  if (rule.act_range == "percentile") {
    std::vector<float> mags(st.rows.size());
    for (size_t i = 0; i < mags.size(); ++i) mags[i] = std::fabs(st.rows[i]);
    const size_t k = std::min(mags.size() - 1, size_t(double(mags.size() - 1) * rule.percentile / 100.0));
    std::nth_element(mags.begin(), mags.begin() + k, mags.end());
    a = mags[k];
  } else {
    if (rule.act_range != "minmax")
      throw Error("quantize: " + name + " is an LSTM; act_range must be minmax or percentile");
    for (int c = 0; c < C; ++c) a = std::max({a, double(std::fabs(st.lo[c])), double(std::fabs(st.hi[c]))});
  }
  if (!(a > 0) || !std::isfinite(a)) a = 1.0;
  if (rule.weight_only) a = 1.0;  // float LSTM on the quantized weights: no divisor folded into W_ih_l0
  std::vector<std::string> mats;
  for (int l = 0; out.has(name + ".weight_ih_l" + std::to_string(l)); ++l) {
    mats.push_back(name + ".weight_ih_l" + std::to_string(l));
    mats.push_back(name + ".weight_hh_l" + std::to_string(l));
  }
  if (mats.empty()) throw Error("quantize: " + name + " has no weight_ih_l0");
  const Tensor w0 = out.get(mats[0]);  // float W_ih of layer 0, for the error estimate
  Tensor wf = out.get(mats[0]);
  for (int64_t i = 0; i < wf.numel(); ++i) wf[i] = float(wf[i] * a);
  out.set(mats[0], wf);
  const int64_t rows = wf.dim(0);
  std::vector<float> scale(size_t(rows), 0.0f);
  for (const auto& m : mats) {
    const Tensor& t = out.get(m);
    if (t.ndim() != 2 || t.dim(0) != rows) throw Error("quantize: " + m + " is not [4H, in]");
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < t.dim(1); ++j) scale[r] = std::max(scale[r], std::fabs(t[r * t.dim(1) + j]) / 127.0f);
  }
  for (auto& x : scale)
    if (!(x > 0)) x = 1.0f;
  // Per matrix: each W_ih / W_hh row gets its own max|row| / 127 instead of the largest over all 2L matrices.
  std::vector<float> stored_scale = scale;
  if (!lowbit && !rule.weight_only && rule.lstm_scales == "per_matrix") {
    stored_scale.assign(mats.size() * size_t(rows), 0.0f);
    for (size_t k = 0; k < mats.size(); ++k) {
      const Tensor& t = out.get(mats[k]);
      for (int64_t r = 0; r < rows; ++r) {
        float& s = stored_scale[k * size_t(rows) + size_t(r)];
        for (int64_t j = 0; j < t.dim(1); ++j) s = std::max(s, std::fabs(t[r * t.dim(1) + j]) / 127.0f);
        if (!(s > 0)) s = 1.0f;
      }
    }
    scale.assign(stored_scale.begin(), stored_scale.begin() + rows);  // W_ih_l0's, for the error estimate below
  }
  if (lowbit) {
    // Group-wise low-bit codes under the shared per-gate-row scale (quant/lowbit.h): the rows of all matrices side
    // by side, [W_ih_l0 | W_hh_l0 | W_ih_l1 | ...], one row scale max|row| / 127 (the scale above), groups within
    // each matrix. Salience E[v^2] of each column's input: the layer-0 input divided by the divisor, from the
    // calibration sample; the hidden states are not observed, E[h^2] is taken as 0.25 (they lie in (-1, 1)).
    std::vector<int64_t> cols_of;
    int64_t cols = 0;
    for (const auto& m : mats) {
      const int64_t c = out.get(m).dim(1);
      if (c % rule.group_size != 0)
        throw Error("quantize: " + m + ": group_size " + std::to_string(rule.group_size) + " does not divide its " +
                    std::to_string(c) + " columns (LSTM groups may not straddle matrices)");
      cols_of.push_back(c);
      cols += c;
    }
    std::vector<float> wcat(size_t(rows * cols)), h(static_cast<size_t>(cols), 0.25f);
    for (int c = 0; c < C; ++c) {
      double e = 0;
      for (int64_t t = 0; t < n; ++t) e += double(st.rows[t * C + c] / a) * (st.rows[t * C + c] / a);
      h[size_t(c)] = float(e / double(std::max<int64_t>(n, 1)));
    }
    for (int64_t r = 0, c0 = 0; r < rows; ++r, c0 = 0)
      for (size_t k = 0; k < mats.size(); c0 += cols_of[k], ++k) {
        const Tensor& t = out.get(mats[k]);
        for (int64_t j = 0; j < cols_of[k]; ++j) wcat[r * cols + c0 + j] = t[r * cols_of[k] + j];
      }
    q::LowBitSpec spec;
    spec.group = rule.group_size;
    spec.avg_bits = rule.avg_bits > 0 ? rule.avg_bits : rule.weight_bits;
    spec.widths = rule.avg_bits > 0 ? rule.widths : std::vector<int>{rule.weight_bits};
    spec.sqc = rule.sqc;
    const q::LowBitWeights lb = q::quantize_lowbit(wcat, rows, cols, h, spec);
    const int64_t G = lb.groups_per_row();
    for (size_t k = 0, c0 = 0; k < mats.size(); c0 += size_t(cols_of[k]), ++k) {
      Tensor t({rows, cols_of[k]}), g({rows, cols_of[k] / rule.group_size, 2});
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t j = 0; j < cols_of[k]; ++j)
          t[r * cols_of[k] + j] = float(lb.codes[r * cols + c0 + j]) * lb.row_scale[r];
        for (int64_t gg = 0; gg < cols_of[k] / rule.group_size; ++gg) {
          const int64_t src = r * G + int64_t(c0) / rule.group_size + gg;
          g[(r * g.dim(1) + gg) * 2] = float(lb.bits[src]);
          g[(r * g.dim(1) + gg) * 2 + 1] = float(lb.mult[src]);
        }
      }
      out.set(mats[k], std::move(t));
      out.set(mats[k] + "_groups", std::move(g));
      out.set(mats[k] + "_group_size", Tensor({1}, std::vector<float>{float(rule.group_size)}));
    }
    scale = lb.row_scale;
    stored_scale = scale;
    wf = out.get(mats[0]);  // for the error estimate below
    if (avg_bits_out) *avg_bits_out = lb.avg_bits();
  }
  out.set(name + ".weight_scale", Tensor({int64_t(stored_scale.size())}, stored_scale));
  if (!rule.weight_only) {
    out.set(name + ".act_quant", Tensor({2}, std::vector<float>{1.0f / 127.0f, 128.0f}));
    out.set(name + ".act_smooth", Tensor({1}, std::vector<float>{float(a)}));
  }
  // error proxy: W_ih x against s8(W_ih a) u8(x / a) on up to 256 sampled rows
  const int64_t ns = std::min<int64_t>(n, 256);
  double num = 0, den = 0;
  std::vector<float> u(C);
  for (int64_t t = 0; t < ns; ++t) {
    const float* x = st.rows.data() + t * C;
    for (int c = 0; c < C; ++c)  // a weight-only LSTM sees x itself (a = 1)
      u[c] = rule.weight_only
                 ? x[c]
                 : (std::clamp(std::nearbyint(float(x[c] / a) * 127.0f + 128.0f), 0.0f, 255.0f) - 128.0f) / 127.0f;
    for (int64_t r = 0; r < rows; ++r) {
      double yf = 0, yq = 0;
      for (int c = 0; c < C; ++c) {
        yf += double(w0[r * C + c]) * x[c];
        yq += double(scale[r] * std::clamp(std::nearbyint(wf[r * C + c] / scale[r]), -127.0f, 127.0f)) * u[c];
      }
      num += (yf - yq) * (yf - yq);
      den += yf * yf;
    }
  }
  return den > 0 ? num / den : 0;
}

// The (Ada)LayerNorm whose affine output feeds exactly the layer `name`, and every layer it feeds.
struct NormSite {
  std::string norm;
  std::vector<std::string> consumers;
};

std::optional<NormSite> norm_feeding(const std::string& name) {
  std::smatch m;
  static const std::regex pw1(R"(^(.*convnext\.\d+)\.pwconv1$)"), qkv(R"(^(.*pos_net\.\d+)\.(q|k|v)$)");
  if (std::regex_match(name, m, pw1)) return NormSite{m[1].str() + ".norm", {name}};
  if (std::regex_match(name, m, qkv)) {
    const std::string b = m[1].str();
    return NormSite{b + ".norm", {b + ".q", b + ".k", b + ".v"}};
  }
  if (name == "head.out") return NormSite{"backbone.final_layer_norm", {name}};
  return std::nullopt;
}

// RepQ-ViT's fold as published: the per-channel input transform u = (x - shift) / smooth of the layers after a
// LayerNorm goes into the norm's affine, gamma' = gamma / smooth, beta' = (beta - shift) / smooth, for every row
// of an AdaLayerNorm (one per bandwidth id). W' = W diag(smooth), b' = b + W shift are already in the layers.
void fold_into_norms(WeightMap& out, const std::map<std::string, InputTransform>& folds, bool wavtokenizer) {
  std::map<std::string, std::string> done;  // norm -> the layer whose transform it took
  for (const auto& [name, tr] : folds) {
    const auto site = wavtokenizer ? norm_feeding(name) : std::nullopt;
    if (!site)
      throw Error("quantize: ln_fold on " + name +
                  ": no LayerNorm feeds it alone (foldable: convnext.N.pwconv1, pos_net.N.q/k/v together, head.out)");
    for (const auto& c : site->consumers) {
      auto it = folds.find(c);
      if (it == folds.end())
        throw Error("quantize: ln_fold on " + name + " changes " + site->norm + ", which also feeds " + c +
                    "; that layer must be quantized with ln_fold too");
      if (it->second.shift != tr.shift || it->second.smooth != tr.smooth)
        throw Error("quantize: ln_fold: " + c + " and " + name + " share " + site->norm +
                    " but their input transforms differ (use the same rule for both)");
    }
    if (done.count(site->norm)) continue;
    done[site->norm] = name;
    const bool ada = out.has(site->norm + ".scale.weight");
    const std::string gk = site->norm + (ada ? ".scale.weight" : ".weight"),
                      bk = site->norm + (ada ? ".shift.weight" : ".bias");
    Tensor g = out.get(gk), b = out.get(bk);
    const int64_t C = int64_t(tr.shift.size());
    if (g.numel() != b.numel() || C == 0 || g.numel() % C != 0 || g.dim(g.ndim() - 1) != C)
      throw Error("quantize: ln_fold: " + gk + " does not match the " + std::to_string(C) + " inputs of " + name);
    for (int64_t i = 0; i < g.numel(); ++i) {
      const int64_t c = i % C;
      g[i] = float(double(g[i]) / tr.smooth[c]);
      b[i] = float((double(b[i]) - tr.shift[c]) / tr.smooth[c]);
    }
    out.set(gk, std::move(g));
    out.set(bk, std::move(b));
  }
}

// `encoder_convs: bf16`: the flag the encoder reads, and the weights of the convs that will run in bf16 rounded to
// bf16 in the file (the conversion at load is then exact, and a CPU without bf16 runs the same weights in float32).
void bf16_encoder_convs(WeightMap& out, Arch arch) {
  const std::string prefix = encoder_weight_prefix(arch);
  int64_t n = 0;
  std::vector<std::string> names;
  for (const auto& [name, t] : out.all())
    if (name.rfind(prefix, 0) == 0 && name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0 &&
        t.ndim() == 3 && Conv1d::bf16_pays(int(t.dim(1)), 1) &&
        !out.has(name.substr(0, name.size() - 7) + ".act_quant"))
      names.push_back(name);
  for (const auto& name : names) {
    Tensor w = out.get(name);
    for (int64_t i = 0; i < w.numel(); ++i) w[i] = bf16_to_float(float_to_bf16(w[i]));
    out.set(name, std::move(w));
    ++n;
  }
  if (n == 0)
    throw Error("quantize: encoder_convs: bf16, but the model has no float encoder convolution with >= 16 inputs");
  out.set(prefix + kEncoderConvBf16, Tensor({1}, std::vector<float>{1.0f}));
}

}  // namespace

PtqRecipe parse_recipe(const std::string& text, const std::string& origin) {
  YAML::Node y;
  try {
    y = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw Error(origin + ": recipe is not valid YAML: " + e.what());
  }
  if (!y.IsMap()) throw Error(origin + ": recipe must be a YAML mapping");
  PtqRecipe r;
  try {
    r.name = opt<std::string>(y, "name", "");
    r.description = opt<std::string>(y, "description", "");
    r.bandwidth_id = opt<int>(y, "bandwidth_id", 0);
    r.max_rows = opt<int64_t>(y, "max_rows", 4096);
    r.mixed_avg_bits = opt<double>(y, "mixed_avg_bits", 0.0);
    r.softmax = opt<std::string>(y, "softmax", "none");
    r.softmax_bits = opt<int>(y, "softmax_bits", 8);
    check_one_of(r.softmax, {"none", "log2", "adalog", "tanq"}, "softmax", origin);
    if (r.softmax_bits < 2 || r.softmax_bits > 8) throw Error(origin + ": softmax_bits must be 2..8");
    r.vq_search = opt<std::string>(y, "vq_search", "f32");
    check_one_of(r.vq_search, {"f32", "int8"}, "vq_search", origin);
    r.attention = opt<std::string>(y, "attention", "float");
    check_one_of(r.attention, {"float", "int8"}, "attention", origin);
    r.encoder_convs = opt<std::string>(y, "encoder_convs", "f32");
    check_one_of(r.encoder_convs, {"f32", "bf16"}, "encoder_convs", origin);
    if (r.attention == "int8" && r.softmax != "none")
      throw Error(origin + ": attention: int8 quantizes the probabilities itself; it excludes a softmax quantizer");
    if (!y["rules"] || !y["rules"].IsSequence()) throw Error(origin + ": recipe needs a 'rules' list");
    for (const auto& n : y["rules"]) {
      PtqRule p;
      p.match = opt<std::string>(n, "match", "");
      if (p.match.empty()) throw Error(origin + ": every rule needs 'match' (a regex on layer names)");
      p.quantize = opt<bool>(n, "quantize", true);
      p.weight_bits = opt<int>(n, "weight_bits", 8);
      p.weight_range = opt<std::string>(n, "weight_range", "minmax");
      p.act_range = opt<std::string>(n, "act_range", "minmax");
      p.act_group = opt<int>(n, "act_group", 0);
      if (p.act_group < 0 || p.act_group > 4096) throw Error(origin + ": act_group must lie in [0, 4096]");
      if (p.act_group > 0 && p.act_range != "token")
        throw Error(origin + ": act_group (ranges per step and channel group) needs act_range: token");
      p.percentile = opt<double>(n, "percentile", 99.99);
      p.transform = opt<std::string>(n, "transform", "none");
      p.repq_shared = opt<std::string>(n, "repq_shared", "median");
      p.group_size = opt<int64_t>(n, "group_size", 0);
      p.avg_bits = opt<double>(n, "avg_bits", 0.0);
      if (n["widths"]) p.widths = n["widths"].as<std::vector<int>>();
      p.sqc = opt<bool>(n, "sqc", true);
      p.lstm_scales = opt<std::string>(n, "lstm_scales", "per_matrix");
      if (p.lstm_scales != "per_matrix" && p.lstm_scales != "shared")
        throw Error(origin + ": lstm_scales must be per_matrix or shared, not '" + p.lstm_scales + "'");
      p.weight_only = opt<bool>(n, "weight_only", false);
      p.ln_fold = opt<bool>(n, "ln_fold", false);
      p.hadamard = opt<bool>(n, "hadamard", false);
      p.weight_rounding = opt<std::string>(n, "weight_rounding", "nearest");
      check_one_of(p.weight_rounding, {"nearest", "gptq"}, "weight_rounding", origin);
      if (p.weight_rounding == "gptq" && (p.hadamard || p.transform == "channel"))
        throw Error(origin + ": weight_rounding gptq takes no hadamard rotation and no depthwise (channel) transform");
      if (p.weight_bits < 2 || p.weight_bits > 8) throw Error(origin + ": weight_bits must be 2..8");
      if (p.group_size < 0 || p.group_size > (int64_t(1) << 20)) throw Error(origin + ": group_size must be 0..2^20");
      if (p.widths.empty()) throw Error(origin + ": widths must list at least one width");
      for (int b : p.widths)
        if (b < 2 || b > 8) throw Error(origin + ": widths must lie in 2..8");
      if (p.avg_bits != 0) {
        const auto [lo, hi] = std::minmax_element(p.widths.begin(), p.widths.end());
        if (!(p.avg_bits >= *lo && p.avg_bits <= *hi))
          throw Error(origin + ": avg_bits must lie between the smallest and largest of widths");
        if (p.group_size == 0 && !p.weight_only) throw Error(origin + ": avg_bits needs group_size");
      }
      if (p.weight_only && p.transform != "none")
        throw Error(origin + ": weight_only layers keep float inputs; transform must be none");
      if (p.ln_fold && p.transform == "none") throw Error(origin + ": ln_fold needs transform repq or sqb");
      check_one_of(p.weight_range, {"minmax", "mse", "omse"}, "weight_range", origin);
      check_one_of(p.act_range, {"minmax", "percentile", "mse", "dualclip", "token"}, "act_range", origin);
      check_one_of(p.transform, {"none", "repq", "sqb", "channel"}, "transform", origin);
      if (p.transform == "channel" && (p.weight_bits != 8 || p.group_size > 0 || p.weight_only || p.ln_fold ||
                                       p.hadamard || (p.act_range != "minmax" && p.act_range != "percentile")))
        throw Error(origin +
                    ": transform channel (a depthwise conv's per-channel input ranges) takes 8-bit weights "
                    "and act_range minmax or percentile, nothing else");
      check_one_of(p.repq_shared, {"mean", "median"}, "repq_shared", origin);
      try {
        std::regex re(p.match);
      } catch (const std::regex_error&) {
        throw Error(origin + ": bad regex '" + p.match + "'");
      }
      r.rules.push_back(p);
    }
  } catch (const YAML::Exception& e) {
    throw Error(origin + ": bad recipe value: " + e.what());
  }
  if (r.max_rows < 16) throw Error(origin + ": max_rows must be at least 16");
  return r;
}

PtqRecipe load_recipe(const std::string& path) {
  std::ifstream f(path);
  if (!f) {
    const bool yaml = path.size() > 5 && path.compare(path.size() - 5, 5, ".yaml") == 0;
    const std::string name = yaml ? path.substr(0, path.size() - 5) : path;
    std::string names;
    for (const auto& r : builtin_recipes()) {
      if (name == r.name) return parse_recipe(r.text, "built-in recipe " + name);
      names += (names.empty() ? "" : ", ") + std::string(r.name);
    }
    throw Error(path + ": cannot open recipe (no such file, and no built-in recipe of that name; built in: " + names +
                ")");
  }
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_recipe(ss.str(), path);
}

std::function<bool(const std::string&)> moment_layers(const PtqRecipe& recipe) {
  std::vector<std::pair<std::regex, bool>> rules;  // first match wins, as in apply_recipe
  for (const auto& r : recipe.rules) rules.emplace_back(std::regex(r.match), r.quantize && r.weight_rounding == "gptq");
  bool any = false;
  for (const auto& r : rules) any = any || r.second;
  if (!any) return {};
  return [rules](const std::string& name) {
    for (const auto& [re, gptq] : rules)
      if (std::regex_search(name, re)) return gptq;
    return false;
  };
}

namespace {
// At most this many output steps per observed call feed a layer's second moment (evenly spaced): enough for
// moments of a few thousand inputs, while the first convs' 24 kHz inputs stay cheap.
constexpr int64_t kMomentStepsPerCall = 4096;

// The im2col columns of the output steps of a channels-last input x [tin, cin] (column (c, j) = x[t s + j d, c])
// added to st.moment.
void add_moment(LayerStats& st, const float* x, int64_t tin, int cin, const ObservedGeometry& g) {
  const int64_t k = g.kernel, n = int64_t(cin) * k;
  const int64_t tout = (tin - int64_t(g.dilation) * (k - 1) - 1) / g.stride + 1;
  if (tout < 1) return;
  if (st.moment.size() == 0) {
    st.moment = quant::SecondMoment(n);
    st.kernel = g.kernel, st.stride = g.stride, st.dilation = g.dilation;
  }
  if (st.moment.size() != n || st.kernel != g.kernel || st.stride != g.stride || st.dilation != g.dilation)
    throw Error("calibration: layer changed its geometry between calls");
  const int64_t every = (tout + kMomentStepsPerCall - 1) / kMomentStepsPerCall;
  const int64_t m = (tout + every - 1) / every;
  std::vector<float> cols(size_t(m * n));
  for (int64_t i = 0; i < m; ++i) {
    const int64_t t = i * every;
    float* v = cols.data() + i * n;
    for (int64_t j = 0; j < k; ++j) {
      const float* xr = x + (t * g.stride + j * g.dilation) * cin;
      for (int c = 0; c < cin; ++c) v[c * k + j] = xr[c];
    }
  }
  st.moment.add(cols, m);
}
}  // namespace

CalibStats calibrate(const Model& model, const std::vector<std::vector<float>>& clips, int bandwidth_id,
                     int64_t max_rows, const std::function<bool(const std::string&)>& moments) {
  CalibStats stats;
  std::mt19937_64 rng(12345);
  // Transposed convs and the ConvNeXt depthwise convs draw their reservoirs from their own generators, so
  // observing them leaves every other layer's sample (and so its calibration) exactly what it was before they were
  // calibrated.
  std::mt19937_64 rng_tr(54321), rng_dw(98765);
  ActObserver obs = [&](const std::string& name, const float* x, int64_t rows, int cols, bool channels_last,
                        const ObservedGeometry& geom) {
    if (!channels_last) return;  // only the decoder's channels-last layers are calibrated
    int64_t cap = max_rows;
    if (is_softmax_stat(name)) {  // a [T, T] probability map: a sample of values for the log quantizers
      rows *= cols;
      cols = 1;
      cap = std::max<int64_t>(max_rows * 32, kSoftmaxSamples);
    }
    const bool dw = name.size() > 7 && name.compare(name.size() - 7, 7, ".dwconv") == 0;
    std::mt19937_64& gen = is_transposed_conv_layer(name) ? rng_tr : dw ? rng_dw : rng;
    LayerStats& s = stats[name];
    if (s.cin == 0) {
      s.cin = cols;
      s.lo.assign(cols, 0.0f);  // ranges always include 0 (padding)
      s.hi.assign(cols, 0.0f);
    }
    if (s.cin != cols) throw Error("calibration: layer " + name + " changed width");
    if (moments && !is_softmax_stat(name) && moments(name)) add_moment(s, x, rows, cols, geom);
    for (int64_t t = 0; t < rows; ++t) {
      const float* r = x + t * cols;
      for (int c = 0; c < cols; ++c) {
        s.lo[c] = std::min(s.lo[c], r[c]);
        s.hi[c] = std::max(s.hi[c], r[c]);
      }
      // Reservoir sampling: every row seen has the same chance of being kept.
      const int64_t seen = s.seen++;
      if (s.sampled() < cap) {
        s.rows.insert(s.rows.end(), r, r + cols);
      } else {
        const int64_t j = int64_t(gen() % uint64_t(seen + 1));
        if (j < cap) std::copy(r, r + cols, s.rows.begin() + j * cols);
      }
    }
  };
  for (const auto& clip : clips) {
    if (clip.empty()) continue;
    set_act_observer(&obs);  // the encoder's SEANet convs, then the decoder's layers on the float tokens
    try {
      Tokens t = model.encode(clip.data(), int64_t(clip.size()), model.max_n_q());
      model.decode_latents(model.dequantize(t), bandwidth_id);
    } catch (...) {
      set_act_observer(nullptr);
      throw;
    }
    set_act_observer(nullptr);
  }
  if (stats.empty()) throw Error("calibration saw no quantizable layer");
  return stats;
}

namespace {
// weight_rounding gptq: r's codes (per output channel, or its low-bit groups) chosen again by GPTQ on the layer's
// input moment; the grid (scales, multipliers, widths) stays as quantize_layer chose it. w is the float weight W
// (the weight an input transform gives the layer, W diag(smooth), is formed here). Returns the relative output error
// under the moment of rounding to nearest on that grid, and of GPTQ.
std::pair<double, double> gptq_weights(Quantized& r, const LayerStats& st, const LayerView& v, const Tensor& w,
                                       int weight_bits) {
  const int64_t n = int64_t(v.cin) * v.k, rows = v.cout;
  if (st.moment.count() == 0)
    throw Error("quantize: " + v.name + ": weight_rounding gptq, but calibration gathered no input moment for it");
  if (st.moment.size() != n || st.kernel != v.k)
    throw Error("quantize: " + v.name + ": the input moment gathered in calibration does not fit its weight");
  // The layer quantizes u = (x - shift) / smooth per input channel (transform repq / sqb; identity without one) and
  // multiplies it by W' = W diag(smooth): the moment and the weight GPTQ works on are those of u and W'.
  std::vector<double> shift(size_t(n), 0.0), scale(size_t(n), 1.0);
  if (!r.shift.empty())
    for (int64_t i = 0; i < n; ++i) {
      shift[size_t(i)] = r.shift[size_t(i / v.k)];
      scale[size_t(i)] = r.smooth[size_t(i / v.k)];
    }
  const std::vector<double> h = st.moment.mean(shift, scale);
  std::vector<float> wt(w.data(), w.data() + w.numel());
  for (int64_t i = 0; i < int64_t(wt.size()); ++i) wt[size_t(i)] = float(double(wt[size_t(i)]) * scale[size_t(i % n)]);
  std::vector<float> step(size_t(rows * n));
  std::vector<int32_t> qmax(step.size());
  const int64_t G = r.lowbit ? r.lb.groups_per_row() : 0;
  for (int64_t o = 0; o < rows; ++o)
    for (int64_t j = 0; j < n; ++j) {
      const size_t i = size_t(o * n + j);
      if (r.lowbit) {
        const size_t g = size_t(o * G + j / r.lb.group);
        step[i] = r.lb.row_scale[size_t(o)] * float(r.lb.mult[g]);
        qmax[i] = (1 << (r.lb.bits[g] - 1)) - 1;
      } else {
        step[i] = r.weight_scale[size_t(o)];
        qmax[i] = (1 << (weight_bits - 1)) - 1;
      }
    }
  const std::span<const float> wf(wt);
  std::vector<float> nearest(step.size());
  for (size_t i = 0; i < step.size(); ++i)
    nearest[i] = std::clamp(std::nearbyint(wf[i] / step[i]), -float(qmax[i]), float(qmax[i])) * step[i];
  const std::vector<int32_t> codes = quant::gptq_round(wf, rows, n, step, qmax, h);
  for (size_t i = 0; i < codes.size(); ++i) {
    if (r.lowbit) {
      const size_t g = size_t(int64_t(i) / n * G + int64_t(i) % n / r.lb.group);
      r.lb.codes[i] = int8_t(codes[i] * int32_t(r.lb.mult[g]));
    } else {
      r.weight[i] = float(codes[i]) * step[i];
    }
  }
  if (r.lowbit) r.weight = r.lb.dequantize();
  return {quant::relative_output_error(wf, nearest, rows, n, h),
          quant::relative_output_error(wf, r.weight, rows, n, h)};
}
}  // namespace

WeightMap apply_recipe(const Model& model, const PtqRecipe& recipe, const CalibStats& stats,
                       std::vector<PtqLayerReport>* report) {
  WeightMap out = model.weights();
  const WeightMap& in = model.weights();
  for (const auto& [k, v] : in.all())
    if ((k.size() > 10 && k.compare(k.size() - 10, 10, ".act_quant") == 0) ||
        (k.size() > 12 && k.compare(k.size() - 12, 12, ".act_dynamic") == 0) ||
        (k.size() > 7 && k.compare(k.size() - 7, 7, "_groups") == 0 && k.find(".weight") != std::string::npos) ||
        (k.size() > 14 && k.compare(k.size() - 14, 14, ".softmax_quant") == 0) ||
        (k.size() > 10 && k.compare(k.size() - 10, 10, ".attn_int8") == 0))
      throw Error(in.origin() + ": model is already quantized");
    else if (k.size() > 7 && (k.compare(k.size() - 7, 7, ".lora_a") == 0 || k.compare(k.size() - 7, 7, ".lora_b") == 0))
      throw Error(in.origin() + ": model has low-rank adapters (" + k + "); quantize the float model without them");
  // Fold the ConvNeXt layer scale into pwconv2 (what VocosBackbone does at load), so the stored pwconv2 is the
  // weight the int8 layer quantizes.
  const VocosConfig& vc = model.config().vocos;
  const int convnext_layers = model.config().arch == Arch::WavTokenizer ? vc.num_layers : 0;
  for (int i = 0; i < convnext_layers; ++i) {
    const std::string n = "backbone.convnext." + std::to_string(i);
    if (!out.has(n + ".gamma")) continue;
    const Tensor g = out.get(n + ".gamma");
    Tensor w2 = out.get(n + ".pwconv2.weight"), b2 = out.get(n + ".pwconv2.bias");
    const int64_t I = w2.dim(1);
    for (int64_t o = 0; o < w2.dim(0); ++o) {
      for (int64_t j = 0; j < I; ++j) w2[o * I + j] *= g[o];
      b2[o] *= g[o];
    }
    out.set(n + ".pwconv2.weight", std::move(w2));
    out.set(n + ".pwconv2.bias", std::move(b2));
    out.all().erase(n + ".gamma");
  }
  struct Job {
    LayerView v;
    const PtqRule* rule;
    const LayerStats* st;
  };
  std::vector<Job> jobs;
  for (const auto& [name, st] : stats) {
    if (is_softmax_stat(name) || is_attn_v_stat(name)) continue;  // below
    const PtqRule* rule = nullptr;
    for (const auto& r : recipe.rules)
      if (std::regex_search(name, std::regex(r.match))) {
        rule = &r;
        break;
      }
    if (!rule || !rule->quantize) continue;
    if (rule->weight_rounding == "gptq" && (is_lstm_layer(name) || is_transposed_conv_layer(name)))
      throw Error("quantize: " + name +
                  " is an LSTM or transposed conv; weight_rounding gptq applies to Conv1d/Linear "
                  "layers only");
    if ((rule->ln_fold || rule->hadamard) && (is_lstm_layer(name) || is_transposed_conv_layer(name)))
      throw Error("quantize: " + name +
                  " is an LSTM or transposed conv; ln_fold and hadamard apply to Conv1d/Linear layers only");
    if (rule->weight_only && is_transposed_conv_layer(name))
      throw Error("quantize: " + name + " is a transposed conv; weight_only is not supported there");
    if (rule->weight_only && is_lstm_layer(name) && rule->group_size == 0)
      throw Error("quantize: " + name + ": a weight-only LSTM needs group_size (its weights are stored packed)");
    if (rule->group_size > 0 && is_transposed_conv_layer(name))
      throw Error("quantize: " + name + " is a transposed conv; group_size (low-bit weights) is not supported there");
    if (rule->act_range == "token") {  // per-token activations: a Conv1d's own input, int8 weights (nn/layers.h)
      const std::string why =
          is_lstm_layer(name)               ? "it is an LSTM"
          : is_transposed_conv_layer(name)  ? "it is a transposed conv"
          : rule->transform != "none"       ? "the rule asks for transform '" + rule->transform + "' (must be none)"
          : rule->weight_only               ? "the rule is weight_only"
          : rule->ln_fold || rule->hadamard ? "the rule asks for ln_fold / hadamard"
          : !out.has(name + ".weight") || out.get(name + ".weight").ndim() != 3 ? "it is not a convolution"
                                                                                : "";
      if (!why.empty())
        throw Error("quantize: " + name +
                    ": act_range token (per-token activations) is for Conv1d layers only with "
                    "no transform, and " +
                    why);
    }
    if (rule->hadamard && !out.has(name + ".input_rotation"))
      throw Error("quantize: the recipe rotates the input of " + name +
                  " (hadamard: true), but the model was not prepared by fold_hadamard, or the layer has no "
                  "previous layer the rotation folds into (foldable: an attention block's proj_out)");
    if (is_lstm_layer(name)) {
      if (st.sampled() == 0) throw Error("quantize: no calibration rows for " + name);
      double avg = 0;
      const double err = quantize_lstm(out, name, st, *rule, &avg);
      if (report) {
        int64_t nw = 0;
        for (const auto& [k, t] : out.all())
          if (k.rfind(name + ".weight_", 0) == 0 && k != name + ".weight_scale" &&
              k.find("_group") == std::string::npos)
            nw += t.numel();
        PtqLayerReport e{name, 8, "lstm", 0, err, nw};
        if (rule->group_size > 0) e.avg_bits = avg, e.group_size = rule->group_size;
        report->push_back(e);
      }
      continue;
    }
    if (is_transposed_conv_layer(name)) {  // PyTorch [Cin, Cout, K] -> output-major [Cout, Cin, K] (models/quantized.h)
      const Tensor& wt = out.get(name + ".weight");
      if (wt.ndim() != 3) throw Error("quantize: transposed conv " + name + " weight is not [Cin, Cout, K]");
      const int64_t ci = wt.dim(0), co = wt.dim(1), kk = wt.dim(2);
      Tensor wo({co, ci, kk});
      for (int64_t o = 0; o < co; ++o)
        for (int64_t i = 0; i < ci; ++i)
          for (int64_t j = 0; j < kk; ++j) wo[(o * ci + i) * kk + j] = wt[(i * co + o) * kk + j];
      out.set(name + ".weight", std::move(wo));
    }
    const Tensor& w = out.get(name + ".weight");
    const bool depthwise = w.ndim() == 3 && w.dim(1) == 1 && w.dim(0) == st.cin && st.cin > 1;
    if (depthwise != (rule->transform == "channel"))
      throw Error("quantize: " + name +
                  (depthwise ? " is a depthwise conv; its rule needs transform: channel (per-channel input ranges)"
                             : " is not a depthwise conv; transform channel is for depthwise convs only"));
    if (depthwise) {  // on its own: the dense machinery (transforms, low-bit, mixed bits) does not apply
      if (st.sampled() == 0) throw Error("quantize: no calibration rows for " + name);
      const Tensor b = out.has(name + ".bias") ? out.get(name + ".bias") : Tensor({w.dim(0)});
      const Quantized r = quantize_depthwise(st, w, b, *rule);
      if (report) report->push_back({name, 8, "channel", 0, depthwise_rel_mse(st, w, r), w.numel()});
      out.set(name + ".weight", Tensor(w.shape(), r.weight));
      out.set(name + ".bias", Tensor({w.dim(0)}, r.bias));
      out.set(name + ".weight_scale", Tensor({w.dim(0)}, r.weight_scale));
      out.set(name + ".act_quant", Tensor({2}, std::vector<float>{r.act.scale[0], float(r.act.zero_point[0])}));
      out.set(name + ".act_smooth", Tensor({int64_t(st.cin)}, r.smooth));
      continue;
    }
    LayerView v{name, w.shape(), int(w.dim(0)), int(w.dim(1)), w.ndim() == 3 ? int(w.dim(2)) : 1};
    if (v.cin != st.cin) throw Error("quantize: layer " + name + " input width differs from its weight");
    if (st.sampled() == 0) throw Error("quantize: no calibration rows for " + name);
    jobs.push_back({v, rule, &st});
  }
  std::vector<int> bits(jobs.size());
  for (size_t i = 0; i < jobs.size(); ++i) bits[i] = jobs[i].rule->weight_bits;
  std::map<std::string, InputTransform> folds;  // ln_fold layers: the transform their norm takes over
  if (recipe.mixed_avg_bits > 0)
    for (const auto& j : jobs)
      if (j.rule->group_size > 0 || j.rule->weight_only)
        throw Error(
            "quantize: mixed_avg_bits (per-layer W4/W8) cannot be combined with group-wise low-bit "
            "rules (" +
            j.v.name + "); use avg_bits on the rule");
  if (recipe.mixed_avg_bits > 0 && !jobs.empty()) {
    std::vector<int64_t> sizes;
    for (const auto& j : jobs) sizes.push_back(int64_t(j.v.cout) * j.v.cin * j.v.k);
    double total = 0;
    for (auto s : sizes) total += double(s);
    const std::vector<int> cands = {4, 8};
    bits = q::greedy_bit_allocation(
        sizes, cands,
        [&](size_t l, int b) {
          const Job& j = jobs[l];
          const Tensor& w = out.get(j.v.name + ".weight");
          const Tensor& bb = out.get(j.v.name + ".bias");
          PtqRule r = *j.rule;
          r.weight_range = b < 8 ? "omse" : r.weight_range;
          return layer_rel_mse(*j.st, j.v, w, quantize_layer(*j.st, j.v, w, bb, r, b)) * double(sizes[l]);
        },
        recipe.mixed_avg_bits * total);
  }
  for (size_t i = 0; i < jobs.size(); ++i) {
    const Job& j = jobs[i];
    const Tensor w = out.get(j.v.name + ".weight");
    const Tensor b = out.has(j.v.name + ".bias") ? out.get(j.v.name + ".bias") : Tensor({j.v.cout});
    PtqRule rule = *j.rule;
    if (bits[i] < 8 && rule.weight_range == "minmax" && recipe.mixed_avg_bits > 0) rule.weight_range = "omse";
    Quantized r = quantize_layer_searched(*j.st, j.v, w, b, rule, bits[i]);
    std::pair<double, double> gptq_err{0.0, 0.0};
    if (rule.weight_rounding == "gptq") gptq_err = gptq_weights(r, *j.st, j.v, w, bits[i]);
    if (report) {
      PtqLayerReport e{j.v.name, bits[i], rule.transform, r.alpha, layer_rel_mse(*j.st, j.v, w, r), w.numel()};
      e.gptq_error_nearest = gptq_err.first;
      e.gptq_error = gptq_err.second;
      if (r.lowbit) {
        e.weight_bits = *std::max_element(r.lb.bits.begin(), r.lb.bits.end());
        e.avg_bits = r.lb.avg_bits();
        e.group_size = r.lb.group;
        if (r.weight_only) e.transform = "w-only";
      }
      if (r.dynamic) e.transform = r.act_group > 0 ? "group" + std::to_string(r.act_group) : "token";
      report->push_back(e);
    }
    out.set(j.v.name + ".weight", Tensor(j.v.wshape, r.weight));
    out.set(j.v.name + ".bias", Tensor({j.v.cout}, r.bias));
    out.set(j.v.name + ".weight_scale", Tensor({j.v.cout}, r.weight_scale));
    // Per-token convs run s8 codes only: their low-bit groups are stored as the s8 codes m q themselves (one byte
    // per weight, what the loader rounds weight / weight_scale back to), not packed.
    if (r.lowbit && !r.dynamic) {
      const int64_t G = r.lb.groups_per_row();
      Tensor g({int64_t(j.v.cout), G, 2});
      for (int64_t k = 0; k < int64_t(j.v.cout) * G; ++k) {
        g[2 * k] = float(r.lb.bits[k]);
        g[2 * k + 1] = float(r.lb.mult[k]);
      }
      out.set(j.v.name + ".weight_groups", std::move(g));
      out.set(j.v.name + ".weight_group_size", Tensor({1}, std::vector<float>{float(r.lb.group)}));
    }
    if (!r.weight_only)
      out.set(j.v.name + ".act_quant", Tensor({2}, std::vector<float>{r.act.scale[0], float(r.act.zero_point[0])}));
    if (r.dynamic) out.set(j.v.name + kActDynamicSuffix, Tensor({1}, std::vector<float>{1.0f}));
    if (r.act_group > 0) out.set(j.v.name + kActGroupSuffix, Tensor({1}, std::vector<float>{float(r.act_group)}));
    if (!r.shift.empty() && rule.ln_fold) {
      folds[j.v.name] = {r.shift, r.smooth};
    } else if (!r.shift.empty()) {
      out.set(j.v.name + ".act_shift", Tensor({j.v.cin}, r.shift));
      out.set(j.v.name + ".act_smooth", Tensor({j.v.cin}, r.smooth));
    }
  }
  fold_into_norms(out, folds, model.config().arch == Arch::WavTokenizer);
  if (recipe.vq_search == "int8") out.set(kVqSearchTensor, Tensor({1}, std::vector<float>{2.0f}));
  if (recipe.encoder_convs == "bf16") bf16_encoder_convs(out, model.config().arch);
  if (recipe.attention == "int8")
    for (const auto& [name, st] : stats) {
      if (!is_attn_v_stat(name)) continue;
      const std::string block = name.substr(0, name.size() - 7);
      std::vector<float> scale(size_t(st.cin));
      for (int c = 0; c < st.cin; ++c) {  // symmetric min-max over every frame seen
        const float m = std::max(std::fabs(st.lo[size_t(c)]), std::fabs(st.hi[size_t(c)])) / 127.0f;
        scale[size_t(c)] = m > 0 && std::isfinite(m) ? m : 1.0f;
      }
      out.set(block + ".attn_int8", Tensor({1}, std::vector<float>{1.0f}));
      out.set(block + ".attn_v_scale", Tensor({st.cin}, scale));
    }
  if (recipe.softmax != "none")
    for (const auto& [name, st] : stats) {
      if (!is_softmax_stat(name)) continue;
      if (st.sampled() == 0) throw Error("quantize: no calibration probabilities for " + name);
      q::LogQuantSpec spec;
      spec.bits = recipe.softmax_bits;
      const std::span<const float> x(st.rows.data(), st.rows.size());
      const q::LogQParams p = recipe.softmax == "log2"     ? q::calibrate_log_sqrt2(x, spec)
                              : recipe.softmax == "adalog" ? q::calibrate_adalog(x, spec)
                                                           : q::calibrate_tanq(x, spec);
      const std::string layer = name.substr(0, name.size() - 8);  // minus ".softmax"
      out.set(layer + ".softmax_quant", softmax_quant_tensor(p));
      if (report) {
        double pw = 0;
        for (float v : x) pw += double(v) * v;
        pw /= double(x.size());
        report->push_back(
            {name, recipe.softmax_bits, "softmax-" + recipe.softmax, 0, pw > 0 ? q::quant_mse(x, p) / pw : 0, 0});
      }
    }
  return out;
}

WeightMap fold_hadamard(const Model& model, const PtqRecipe& recipe, std::vector<std::string>* rotated) {
  WeightMap out = model.weights();
  bool any_rule = false;
  for (const auto& r : recipe.rules) any_rule |= r.hadamard;
  if (!any_rule) return out;
  int n_rotated = 0;
  std::vector<std::string> names;
  for (const auto& [k, t] : out.all())
    if (k.size() > 16 && k.compare(k.size() - 16, 16, ".proj_out.weight") == 0)
      names.push_back(k.substr(0, k.size() - 7));
  for (const std::string& name : names) {
    const PtqRule* rule = nullptr;
    for (const auto& r : recipe.rules)
      if (std::regex_search(name, std::regex(r.match))) {
        rule = &r;
        break;
      }
    if (!rule || !rule->quantize || !rule->hadamard) continue;
    if (out.has(name + ".input_rotation")) throw Error(out.origin() + ": " + name + " is already rotated");
    const std::string v = name.substr(0, name.size() - 8) + "v";  // "X.proj_out" -> "X.v"
    Tensor wo = out.get(name + ".weight"), wv = out.get(v + ".weight"), bv = out.get(v + ".bias");
    const int64_t D = wo.dim(0) ? wo.numel() / wo.dim(0) : 0;  // proj_out input width (kernel 1)
    if (wv.dim(0) != D || bv.numel() != D || (wo.ndim() == 3 && wo.dim(2) != 1))
      throw Error(out.origin() + ": " + v + " does not feed " + name + " channel for channel");
    const int64_t block = q::hadamard_block(D);
    // proj_out(P (X Wv^T + bv)) = proj_out' (P (X Wv'^T + bv')) with Wv' = R Wv, bv' = R bv, Wo' = Wo R (R = R^T,
    // R R = I): the attention mixes rows (time), the rotation mixes channels, so they commute.
    q::rotate_columns(std::span<float>(wo.data(), wo.numel()), wo.dim(0), D, block);
    q::rotate_rows(std::span<float>(wv.data(), wv.numel()), D, wv.numel() / D, block);
    q::rotate_rows(std::span<float>(bv.data(), bv.numel()), D, 1, block);
    out.set(name + ".weight", std::move(wo));
    out.set(v + ".weight", std::move(wv));
    out.set(v + ".bias", std::move(bv));
    out.set(name + ".input_rotation", Tensor({1}, std::vector<float>{float(block)}));
    if (rotated) rotated->push_back(name);
    ++n_rotated;
  }
  if (n_rotated == 0)
    throw Error(
        "quantize: the recipe asks for a Hadamard rotation, but no layer it matches has a previous layer "
        "the rotation folds into (foldable: an attention block's proj_out)");
  return out;
}

std::shared_ptr<const Model> prepare_for_recipe(std::shared_ptr<const Model> model, const PtqRecipe& recipe) {
  bool any = false;
  for (const auto& r : recipe.rules) any |= r.hadamard;
  if (!any) return model;
  return Model::from_weights(model->config(), fold_hadamard(*model, recipe));
}

}  // namespace wavtok
