// Named float weights of a model, whatever file they came from.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace wavtok {

class WeightMap {
 public:
  WeightMap() = default;
  explicit WeightMap(std::string origin) : origin_(std::move(origin)) {}

  void set(const std::string& name, Tensor t) { map_[name] = std::move(t); }
  bool has(const std::string& name) const { return map_.count(name) != 0; }
  // Throws "<origin>: missing tensor NAME" / "... has shape X, expected Y" (empty expected = any).
  const Tensor& get(const std::string& name, const std::vector<int64_t>& expected = {}) const;
  const std::map<std::string, Tensor>& all() const { return map_; }
  std::map<std::string, Tensor>& all() { return map_; }
  const std::string& origin() const { return origin_; }
  int64_t parameter_count() const;
  // Marks every tensor read-only, so layers built from this map share its buffers (Tensor::share) instead of
  // copying them. A loaded Model does this: its weights are never written afterwards.
  void make_read_only() {
    for (auto& [name, t] : map_) t.make_read_only();
  }

  // Folds PyTorch weight norm: NAME.weight_g + NAME.weight_v -> NAME.weight = g * v / ||v|| (norm over all
  // dims but the first, PyTorch's default dim=0).
  void fold_weight_norm();
  // Keeps only names starting with `prefix`, removing it.
  WeightMap with_prefix(const std::string& prefix) const;

 private:
  std::string origin_;
  std::map<std::string, Tensor> map_;
};

// Loads every floating-point tensor of a PyTorch checkpoint's state dict (Lightning or plain).
WeightMap load_checkpoint_weights(const std::string& path);

}  // namespace wavtok
