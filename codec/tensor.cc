#include "codec/tensor.h"

#include <map>
#include <utility>

namespace wavtok {

Tensor& scratch_tensor(const void* owner, int slot) {
  thread_local std::map<std::pair<const void*, int>, Tensor> pool;
  return pool[{owner, slot}];
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + ")";
}

}  // namespace wavtok
