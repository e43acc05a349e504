#include "io/weights.h"

#include <cmath>

#include "core/error.h"
#include "io/torch_checkpoint.h"

namespace wavtok {

const Tensor& WeightMap::get(const std::string& name, const std::vector<int64_t>& expected) const {
  auto it = map_.find(name);
  if (it == map_.end()) throw Error(origin_ + ": missing tensor '" + name + "'");
  if (!expected.empty() && it->second.shape() != expected)
    throw Error(origin_ + ": tensor '" + name + "' has shape " + shape_str(it->second.shape()) +
                ", but the config implies " + shape_str(expected));
  return it->second;
}

int64_t WeightMap::parameter_count() const {
  int64_t n = 0;
  for (const auto& [k, v] : map_) n += v.numel();
  return n;
}

void WeightMap::fold_weight_norm() {
  std::vector<std::string> gs;
  for (const auto& [k, v] : map_)
    if (k.size() > 9 && k.compare(k.size() - 9, 9, ".weight_g") == 0) gs.push_back(k);
  for (const auto& gname : gs) {
    const std::string base = gname.substr(0, gname.size() - 9);
    auto vit = map_.find(base + ".weight_v");
    if (vit == map_.end()) throw Error(origin_ + ": '" + gname + "' has no matching weight_v");
    const Tensor& g = map_.at(gname);
    const Tensor& v = vit->second;
    if (v.ndim() < 1 || g.numel() != v.dim(0))
      throw Error(origin_ + ": weight norm pair '" + base + "' has inconsistent shapes " + shape_str(g.shape()) +
                  " / " + shape_str(v.shape()));
    Tensor w(v.shape());
    const int64_t rows = v.dim(0), cols = v.numel() / std::max<int64_t>(rows, 1);
    for (int64_t r = 0; r < rows; ++r) {
      double ss = 0;
      for (int64_t c = 0; c < cols; ++c) ss += double(v[r * cols + c]) * v[r * cols + c];
      const double scale = ss > 0 ? g[r] / std::sqrt(ss) : 0.0;
      for (int64_t c = 0; c < cols; ++c) w[r * cols + c] = static_cast<float>(v[r * cols + c] * scale);
    }
    map_.erase(gname);
    map_.erase(vit);
    map_[base + ".weight"] = std::move(w);
  }
}

WeightMap WeightMap::with_prefix(const std::string& prefix) const {
  WeightMap out(origin_);
  for (const auto& [k, v] : map_)
    if (k.compare(0, prefix.size(), prefix) == 0) out.map_[k.substr(prefix.size())] = v;
  return out;
}

WeightMap load_checkpoint_weights(const std::string& path) {
  TorchCheckpoint ckpt = load_torch_checkpoint(path);
  WeightMap w(path);
  for (auto& [name, raw] : ckpt.take_state_dict()) {  // moved out: no second copy of big checkpoints
    if (raw.dtype == DType::I64 || raw.dtype == DType::I32 || raw.dtype == DType::Bool || raw.dtype == DType::U8 ||
        raw.dtype == DType::I8 || raw.dtype == DType::I16)
      continue;  // counters and flags (e.g. num_batches_tracked); not weights
    std::vector<float> vals = raw.to_float();
    for (size_t i = 0; i < vals.size(); ++i)
      if (!std::isfinite(vals[i])) throw Error(path + ": tensor '" + name + "' contains NaN/Inf");
    w.set(name, Tensor(raw.shape, vals));
  }
  return w;
}

}  // namespace wavtok
