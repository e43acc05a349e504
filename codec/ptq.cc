#include "codec/ptq.h"

#include "codec/error.h"

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
  return p;
}

void setup_layer(Linear& layer, const WeightMap& w, const std::string& name) {
  layer.set_name(name);
  if (auto p = stored_int8_params(w, name, layer.in_features(), layer.out_features())) layer.set_int8(std::move(*p));
}

void setup_layer(Conv1d& layer, const WeightMap& w, const std::string& name) {
  layer.set_name(name);
  if (auto p = stored_int8_params(w, name, layer.in_channels(), layer.out_channels())) layer.set_int8(std::move(*p));
}

bool has_int8_layers(const WeightMap& w) {
  for (const auto& [k, v] : w.all())
    if (k.size() > 10 && k.compare(k.size() - 10, 10, ".act_quant") == 0) return true;
  return false;
}

}  // namespace wavtok
