#include "ptq/calibrate.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "core/error.h"
#include "models/models.h"
#include "models/quantized.h"
#include "nn/layers.h"
#include "quant/log_quant.h"
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

struct Quantized {
  std::vector<float> shift, smooth;  // empty when identity
  q::QParams act;
  std::vector<float> weight, bias;  // W' (fake-quantized below 8 bits), b'
  std::vector<float> weight_scale;
  double alpha = 0;
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
    q::fake_quant(u, u, act);
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

Quantized quantize_layer(const LayerStats& st, const LayerView& v, const Tensor& w, const Tensor& b,
                         const PtqRule& rule, int weight_bits) {
  Quantized r;
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
    std::vector<float> wt = taps_matrix(w, v), zb(size_t(v.cout) * v.k, 0.0f);
    const std::vector<double> alphas = {0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0};
    q::SmoothResult s =
        q::search_smooth_alpha(std::span<const float>(xs.data(), ns * C), ns, C, wt, zb, int64_t(v.cout) * v.k,
                               q::LayerQuantSpec{weight_bits, 8, false}, true, alphas);
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
    q::QParams per = rule.act_range == "minmax" ? q::params_from_ranges(st.lo, st.hi, std::vector<int64_t>{1, C}, pc)
                                                : q::calibrate(xs, std::vector<int64_t>{n, C}, pc);
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
  if (rule.transform != "repq" && !transposed) {
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
      r.act = q::calibrate(u, std::vector<int64_t>{n * C}, as);
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

// Int8 LSTM (LstmInt8Params in nn/layers.h): the layer-0 input is divided by its calibrated max |x| so that it
// shares the hidden state's range (-1, 1), and one u8 mapping (scale 127, shift 128) serves both, as oneDNN's int8
// RNN needs; the divisor is folded into weight_ih_l0. Weight scales: symmetric per gate row over every layer's
// W_ih and W_hh (oneDNN's RNN weight scales are shared across layers). Returns the relative error of the
// layer-0 gate pre-activations W_ih x on the sampled rows (a proxy: the recurrence is not replayed).
double quantize_lstm(WeightMap& out, const std::string& name, const LayerStats& st, const PtqRule& rule) {
  if (rule.transform != "none")
    throw Error("quantize: " + name + " is an LSTM; its int8 inputs take no transform, but the recipe asks for '" +
                rule.transform + "'");
  if (rule.weight_bits != 8) throw Error("quantize: " + name + " is an LSTM; only 8-bit weights are supported");
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
  out.set(name + ".weight_scale", Tensor({rows}, scale));
  out.set(name + ".act_quant", Tensor({2}, std::vector<float>{1.0f / 127.0f, 128.0f}));
  out.set(name + ".act_smooth", Tensor({1}, std::vector<float>{float(a)}));
  // error proxy: W_ih x against s8(W_ih a) u8(x / a) on up to 256 sampled rows
  const int64_t ns = std::min<int64_t>(n, 256);
  double num = 0, den = 0;
  std::vector<float> u(C);
  for (int64_t t = 0; t < ns; ++t) {
    const float* x = st.rows.data() + t * C;
    for (int c = 0; c < C; ++c)
      u[c] = (std::clamp(std::nearbyint(float(x[c] / a) * 127.0f + 128.0f), 0.0f, 255.0f) - 128.0f) / 127.0f;
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
      p.percentile = opt<double>(n, "percentile", 99.99);
      p.transform = opt<std::string>(n, "transform", "none");
      p.repq_shared = opt<std::string>(n, "repq_shared", "median");
      if (p.weight_bits < 2 || p.weight_bits > 8) throw Error(origin + ": weight_bits must be 2..8");
      check_one_of(p.weight_range, {"minmax", "mse", "omse"}, "weight_range", origin);
      check_one_of(p.act_range, {"minmax", "percentile", "mse"}, "act_range", origin);
      check_one_of(p.transform, {"none", "repq", "sqb"}, "transform", origin);
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
  if (!f) throw Error(path + ": cannot open recipe");
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_recipe(ss.str(), path);
}

CalibStats calibrate(const Model& model, const std::vector<std::vector<float>>& clips, int bandwidth_id,
                     int64_t max_rows) {
  CalibStats stats;
  std::mt19937_64 rng(12345);
  // Transposed convs draw their reservoir from their own generator, so observing them leaves every other
  // layer's sample (and so its calibration) exactly what it was before they were calibrated.
  std::mt19937_64 rng_tr(54321);
  ActObserver obs = [&](const std::string& name, const float* x, int64_t rows, int cols, bool channels_last) {
    if (!channels_last) return;  // only the decoder's channels-last layers are calibrated
    int64_t cap = max_rows;
    if (is_softmax_stat(name)) {  // a [T, T] probability map: a sample of values for the log quantizers
      rows *= cols;
      cols = 1;
      cap = std::max<int64_t>(max_rows * 32, kSoftmaxSamples);
    }
    std::mt19937_64& gen = is_transposed_conv_layer(name) ? rng_tr : rng;
    LayerStats& s = stats[name];
    if (s.cin == 0) {
      s.cin = cols;
      s.lo.assign(cols, 0.0f);  // ranges always include 0 (padding)
      s.hi.assign(cols, 0.0f);
    }
    if (s.cin != cols) throw Error("calibration: layer " + name + " changed width");
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

WeightMap apply_recipe(const Model& model, const PtqRecipe& recipe, const CalibStats& stats,
                       std::vector<PtqLayerReport>* report) {
  WeightMap out = model.weights();
  const WeightMap& in = model.weights();
  for (const auto& [k, v] : in.all())
    if ((k.size() > 10 && k.compare(k.size() - 10, 10, ".act_quant") == 0) ||
        (k.size() > 14 && k.compare(k.size() - 14, 14, ".softmax_quant") == 0) ||
        (k.size() > 10 && k.compare(k.size() - 10, 10, ".attn_int8") == 0))
      throw Error(in.origin() + ": model is already quantized");
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
    if (is_lstm_layer(name)) {
      if (st.sampled() == 0) throw Error("quantize: no calibration rows for " + name);
      const double err = quantize_lstm(out, name, st, *rule);
      if (report) {
        int64_t nw = 0;
        for (const auto& [k, t] : out.all())
          if (k.rfind(name + ".weight_", 0) == 0 && k != name + ".weight_scale") nw += t.numel();
        report->push_back({name, 8, "lstm", 0, err, nw});
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
    LayerView v{name, w.shape(), int(w.dim(0)), int(w.dim(1)), w.ndim() == 3 ? int(w.dim(2)) : 1};
    if (v.cin != st.cin) throw Error("quantize: layer " + name + " input width differs from its weight");
    if (st.sampled() == 0) throw Error("quantize: no calibration rows for " + name);
    jobs.push_back({v, rule, &st});
  }
  std::vector<int> bits(jobs.size());
  for (size_t i = 0; i < jobs.size(); ++i) bits[i] = jobs[i].rule->weight_bits;
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
    Quantized r = quantize_layer(*j.st, j.v, w, b, rule, bits[i]);
    if (report)
      report->push_back({j.v.name, bits[i], rule.transform, r.alpha, layer_rel_mse(*j.st, j.v, w, r), w.numel()});
    out.set(j.v.name + ".weight", Tensor(j.v.wshape, r.weight));
    out.set(j.v.name + ".bias", Tensor({j.v.cout}, r.bias));
    out.set(j.v.name + ".weight_scale", Tensor({j.v.cout}, r.weight_scale));
    out.set(j.v.name + ".act_quant", Tensor({2}, std::vector<float>{r.act.scale[0], float(r.act.zero_point[0])}));
    if (!r.shift.empty()) {
      out.set(j.v.name + ".act_shift", Tensor({j.v.cin}, r.shift));
      out.set(j.v.name + ".act_smooth", Tensor({j.v.cin}, r.smooth));
    }
  }
  if (recipe.vq_search == "int8") out.set(kVqSearchTensor, Tensor({1}, std::vector<float>{2.0f}));
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

}  // namespace wavtok
