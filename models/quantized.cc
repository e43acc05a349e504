#include "models/quantized.h"

#include <cmath>
#include <functional>
#include <map>

#include "core/error.h"
#include "core/util.h"

namespace wavtok {
namespace {

std::vector<float> vec(const Tensor& t) { return std::vector<float>(t.data(), t.data() + t.numel()); }

}  // namespace

std::optional<Int8Params> stored_int8_params(const WeightMap& w, const std::string& name, int cin, int cout) {
  if (!w.has(name + ".act_quant")) return std::nullopt;
  const Tensor& a = w.get(name + ".act_quant", {2});
  Int8Params p;
  p.act_scale = a[0];
  p.act_zero = static_cast<int32_t>(a[1]);
  if (float(p.act_zero) != a[1] || p.act_zero < 0 || p.act_zero > 255 || !(p.act_scale > 0))
    throw Error(w.origin() + ": " + name + ".act_quant holds a bad scale or zero point");
  p.weight_scale = vec(w.get(name + ".weight_scale", {cout}));
  if (w.has(name + ".act_shift")) p.in_shift = vec(w.get(name + ".act_shift", {cin}));
  if (w.has(name + ".act_smooth")) p.in_scale = vec(w.get(name + ".act_smooth", {cin}));
  if (w.has(name + kActDynamicSuffix)) {
    const Tensor& d = w.get(name + kActDynamicSuffix);
    if (d.ndim() != 1 || d.numel() != 1 || d[0] != 1.0f)
      throw Error(w.origin() + ": " + name + kActDynamicSuffix + " must be [1] holding 1 (per-token activations), got " +
                  shape_str(d.shape()) + (d.numel() == 1 ? " holding " + std::to_string(d[0]) : std::string()));
    if (a[0] != 1.0f || a[1] != 0.0f || !p.in_shift.empty() || !p.in_scale.empty())
      throw Error(w.origin() + ": " + name +
                  " has per-token activations (act_dynamic); its act_quant must be [1, 0] and it takes no "
                  "act_shift / act_smooth");
    p.dynamic = true;
  }
  if (w.has(name + kActGroupSuffix)) {
    const Tensor& g = w.get(name + kActGroupSuffix);
    if (!p.dynamic)
      throw Error(w.origin() + ": " + name + kActGroupSuffix + " needs per-token activations (" + name +
                  kActDynamicSuffix + ")");
    if (g.ndim() != 1 || g.numel() != 1 || !(g[0] >= 1.0f && g[0] <= float(cin)) || g[0] != std::floor(g[0]) ||
        cin % int(g[0]) != 0)
      throw Error(w.origin() + ": " + name + kActGroupSuffix + " must be [1] holding a group size that divides the " +
                  std::to_string(cin) + " input channels, got " + shape_str(g.shape()) +
                  (g.numel() == 1 ? " holding " + std::to_string(g[0]) : std::string()));
    p.act_group = int(g[0]);
  }
  return p;
}

std::string quantization_summary(const WeightMap& w) {
  int64_t int8 = 0, token = 0, lowbit = 0, adapters = 0, attention = 0;
  std::map<int, int64_t> groups;  // act_group N -> layers
  for (const auto& [k, t] : w.all()) {
    if (ends_with(k, ".act_quant")) ++int8;
    if (ends_with(k, kActDynamicSuffix)) ++token;
    if (ends_with(k, kActGroupSuffix) && t.numel() == 1) ++groups[int(t[0])];
    if (ends_with(k, ".weight_group_size")) ++lowbit;
    if (ends_with(k, ".lora_a")) ++adapters;
    if (ends_with(k, ".attn_int8")) ++attention;
  }
  auto count = [](int64_t n, const char* one, const char* many) {
    return std::to_string(n) + " " + (n == 1 ? one : many);
  };
  std::string s;
  if (int8 > 0) {
    s = "int8 in " + count(int8, "layer", "layers");
    if (token > 0) {
      s += " (" + count(token, "conv", "convs") + " with per-token activation ranges";
      std::string per;
      for (const auto& [n, c] : groups)
        per += (per.empty() ? "" : ", ") + std::to_string(c) + " per step and group of " +
               count(n, "channel", "channels");
      if (!per.empty()) s += ", of which " + per;
      s += ")";
    }
  }
  auto add = [&s](const std::string& part) { s += (s.empty() ? "" : "; ") + part; };
  if (lowbit > 0) add(count(lowbit, "layer", "layers") + " with packed low-bit weights");
  if (attention > 0) add(count(attention, "int8 attention block", "int8 attention blocks"));
  if (adapters > 0) add(count(adapters, "low-rank adapter", "low-rank adapters"));
  return s;
}

void check_act_dynamic_used(const WeightMap& w, const std::function<bool(const std::string&)>& is_conv) {
  const std::string suf = kActDynamicSuffix, gsuf = kActGroupSuffix;
  for (const auto& [k, v] : w.all()) {
    if (ends_with(k, gsuf) && !w.has(k.substr(0, k.size() - gsuf.size()) + suf))
      throw Error(w.origin() + ": " + k + " sets per-group activation ranges on a layer without " + suf);
    if (!(k.size() > suf.size() && k.compare(k.size() - suf.size(), suf.size(), suf) == 0)) continue;
    const std::string layer = k.substr(0, k.size() - suf.size());
    if (!w.has(layer + ".act_quant"))
      throw Error(w.origin() + ": " + k + " marks per-token activations, but " + layer + " has no act_quant");
    if (!is_conv(layer))
      throw Error(w.origin() + ": " + k + " marks per-token activations on '" + layer +
                  "', which is not a channels-last Conv1d of this model (per-token int8 runs there only)");
  }
}

namespace {

// NAME.lora_a / NAME.lora_b onto a Linear or Conv1d (both or neither; the layer checks shapes, rank and values).
template <class Layer>
void setup_adapter(Layer& layer, const WeightMap& w, const std::string& name) {
  const bool ha = w.has(name + ".lora_a"), hb = w.has(name + ".lora_b");
  if (ha != hb)
    throw Error(w.origin() + ": " + name + " has " + (ha ? ".lora_a without .lora_b" : ".lora_b without .lora_a"));
  if (!ha) return;
  try {
    layer.set_lowrank(w.get(name + ".lora_a"), w.get(name + ".lora_b"));
  } catch (const Error& e) {
    throw Error(w.origin() + ": " + e.what());
  }
}

}  // namespace

namespace {

// set_int8 with the layer's complaint (e.g. per-token activations where they cannot run) naming the file.
template <class Layer>
void set_int8_from(Layer& layer, Int8Params p, const WeightMap& w, const std::string& name) {
  try {
    layer.set_int8(std::move(p));
  } catch (const Error& e) {
    throw Error(w.origin() + ": " + name + ": " + e.what());
  }
}

}  // namespace

void setup_layer(Linear& layer, const WeightMap& w, const std::string& name) {
  layer.set_name(name);
  if (auto p = stored_int8_params(w, name, layer.in_features(), layer.out_features()))
    set_int8_from(layer, std::move(*p), w, name);
  setup_adapter(layer, w, name);
}

int64_t check_adapters_used(const WeightMap& w, const std::function<bool(const std::string&)>& is_linear) {
  int64_t n = 0;
  for (const auto& [k, v] : w.all()) {
    if (!(k.size() > 7 && (k.compare(k.size() - 7, 7, ".lora_a") == 0 || k.compare(k.size() - 7, 7, ".lora_b") == 0)))
      continue;
    const std::string layer = k.substr(0, k.size() - 7);
    if (!is_linear(layer))
      throw Error(w.origin() + ": " + k + " is an adapter on '" + layer +
                  "', which is not a layer of this model that takes adapters (the decoder's Linear layers, "
                  "backbone.embed and the pos_net convs)");
    ++n;
  }
  return n / 2;
}

void setup_layer(Conv1d& layer, const WeightMap& w, const std::string& name) {
  layer.set_name(name);
  if (auto p = stored_int8_params(w, name, layer.in_channels(), layer.out_channels()))
    set_int8_from(layer, std::move(*p), w, name);
  setup_adapter(layer, w, name);
}

void setup_layer(ConvTranspose1d& layer, const WeightMap& w, const std::string& name) {
  layer.set_name(name);
  auto p = stored_int8_params(w, name, layer.in_channels(), layer.out_channels());
  if (!p) return;
  if (p->dynamic)
    throw Error(w.origin() + ": " + name + " is a transposed conv; per-token activations (act_dynamic) are for Conv1d");
  if (p->act_zero != 0 || !p->in_shift.empty() || !p->in_scale.empty())
    throw Error(w.origin() + ": " + name +
                " is a transposed conv: its int8 input must be symmetric (zero point 0, "
                "no act_shift/act_smooth)");
  layer.set_int8(std::move(*p));
}

void setup_layer(Lstm& layer, const WeightMap& w, const std::string& name) {
  layer.set_name(name);
  if (!w.has(name + ".act_quant")) return;
  if (w.has(name + kActDynamicSuffix))
    throw Error(w.origin() + ": " + name + " is an LSTM; per-token activations (act_dynamic) are for Conv1d");
  const Tensor& a = w.get(name + ".act_quant", {2});
  LstmInt8Params p;
  if (!(a[0] > 0) || !std::isfinite(a[0]) || !(a[1] >= 0 && a[1] <= 255))
    throw Error(w.origin() + ": " + name + ".act_quant holds a bad scale or zero point");
  p.data_scale = 1.0f / a[0];
  p.data_shift = a[1];
  if (w.has(name + ".act_smooth")) p.in_divisor = w.get(name + ".act_smooth", {1})[0];
  // One scale per gate row shared by the layers [4H], or one per row of each matrix [2 * layers * 4H].
  const Tensor& ws = w.get(name + ".weight_scale");
  const int64_t g4 = int64_t(4) * layer.hidden(), per_matrix = 2 * int64_t(layer.layers()) * g4;
  if (ws.ndim() != 1 || (ws.numel() != g4 && ws.numel() != per_matrix))
    throw Error(w.origin() + ": " + name + ".weight_scale has " + std::to_string(ws.numel()) + " values, want " +
                std::to_string(g4) + " (shared by the layers) or " + std::to_string(per_matrix) + " (per matrix)");
  p.weight_scale = vec(ws);
  try {
    layer.set_int8(std::move(p));
  } catch (const Error& e) {
    throw Error(w.origin() + ": " + name + ": " + e.what());
  }
}

bool is_lstm_layer(const std::string& name) {
  return name.size() >= 5 && name.compare(name.size() - 5, 5, ".lstm") == 0;
}

bool is_transposed_conv_layer(const std::string& name) {
  return name.size() >= 7 && name.compare(name.size() - 7, 7, ".convtr") == 0;
}

bool has_int8_layers(const WeightMap& w) {
  for (const auto& [k, v] : w.all())
    if (k.size() > 10 && k.compare(k.size() - 10, 10, ".act_quant") == 0) return true;
  return false;
}

void setup_vq_search(ResidualVQ& vq, const WeightMap& w) {
  if (!w.has(kVqSearchTensor)) return;
  const float v = w.get(kVqSearchTensor, {1})[0];
  if (v == 0.0f) vq.set_preferred_precision(VqPrecision::F32);
  else if (v == 2.0f) vq.set_preferred_precision(VqPrecision::INT8);
  else throw Error(w.origin() + ": " + kVqSearchTensor + " must be 0 (f32) or 2 (int8)");
}

std::shared_ptr<const quant::LogQParams> stored_softmax_quant(const WeightMap& w, const std::string& name) {
  const std::string t = name + ".softmax_quant";
  if (!w.has(t)) return nullptr;
  const Tensor& v = w.get(t, {9});
  auto bad = [&](const std::string& what) { return Error(w.origin() + ": " + t + " holds a bad " + what); };
  const float kind = v[0], bits = v[1], scale = v[2], zero = v[3], k = v[4], r = v[5], mant = v[6];
  const double a = v[7], m = v[8];
  if (!(bits >= 2 && bits <= 8) || bits != std::floor(bits)) throw bad("bit width");
  if (!(scale > 0) || !std::isfinite(scale)) throw bad("scale");
  if (zero != 0 && zero != 1) throw bad("zero_code flag");
  quant::LogQParams p;
  if (kind == 0) {
    p = quant::make_log_sqrt2(scale, int(bits), zero != 0);
  } else if (kind == 1) {
    if (!(k >= 1 && k <= 1024 && r >= 1 && r <= 1024) || k != std::floor(k) || r != std::floor(r))
      throw bad("AdaLog base");
    if (!(mant >= 1 && mant <= 23) || mant != std::floor(mant)) throw bad("AdaLog mantissa width");
    p = quant::make_adalog(scale, int(k), int(r), int(bits), zero != 0, int(mant));
  } else if (kind == 2) {
    if (!(m > 0 && m < 1 && a > 0 && a * std::max(m, 1 - m) < 1.5707963267948966)) throw bad("TanQ shape");
    p = quant::make_tanq(scale, a, m, int(bits));
  } else {
    throw bad("quantizer kind");
  }
  return std::make_shared<const quant::LogQParams>(std::move(p));
}

Tensor softmax_quant_tensor(const quant::LogQParams& p) {
  const float kind = p.kind == quant::LogKind::kLogSqrt2 ? 0.0f : p.kind == quant::LogKind::kAdaLog ? 1.0f : 2.0f;
  // LogQParams does not keep AdaLog's mantissa width; the recipe calibrates with LogQuantSpec's default, 8.
  return Tensor({9}, std::vector<float>{kind, float(p.bits), p.scale, p.zero_code ? 1.0f : 0.0f, float(p.k), float(p.r),
                                        8.0f, float(p.tan_a), float(p.tan_m)});
}

void setup_attention(AttentionCore& core, const WeightMap& w, const std::string& name) {
  core.set_name(name + ".softmax");
  core.set_prob_quant(stored_softmax_quant(w, name));
  core.set_v_name(name + ".attn_v");
  const std::string t = name + ".attn_int8";
  if (w.has(t)) {
    const Tensor& v = w.get(t, {1});
    if (v[0] != 1.0f) throw Error(w.origin() + ": " + t + " must be [1]");
    if (core.prob_quant())
      throw Error(w.origin() + ": " + name + " has both int8 attention and a post-softmax quantizer");
    const std::string vs = name + ".attn_v_scale";
    if (!w.has(vs)) throw Error(w.origin() + ": " + t + " without " + vs);
    const Tensor& s = w.get(vs);
    if (s.ndim() != 1) throw Error(w.origin() + ": " + vs + " must be one scale per channel");
    try {
      core.set_int8(true, std::vector<float>(s.data(), s.data() + s.numel()));
    } catch (const Error& e) {
      throw Error(w.origin() + ": " + vs + ": " + e.what());
    }
  }
}

}  // namespace wavtok
