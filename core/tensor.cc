#include "core/tensor.h"

#include <atomic>
#include <map>
#include <utility>

namespace wavtok {

namespace {
std::atomic<uint64_t> g_tensor_buffers{0};
}  // namespace

uint64_t tensor_buffer_allocations() { return g_tensor_buffers.load(std::memory_order_relaxed); }
void count_tensor_buffer_allocation() { g_tensor_buffers.fetch_add(1, std::memory_order_relaxed); }

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
