// Dense float tensors and views used throughout the engine.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

namespace wavtok {

// 64-byte aligned float buffer (oneDNN and AVX-512 like aligned data).
struct AlignedFree {
  void operator()(float* p) const noexcept { std::free(p); }
};
using AlignedPtr = std::unique_ptr<float[], AlignedFree>;

// Tensor buffers allocated so far by this process (all threads): lets tests check that hot paths reuse buffers.
uint64_t tensor_buffer_allocations();
void count_tensor_buffer_allocation();

inline AlignedPtr aligned_floats(size_t n) {
  count_tensor_buffer_allocation();
  size_t bytes = ((n * sizeof(float) + 63) / 64) * 64;
  if (bytes == 0) bytes = 64;
  auto* p = static_cast<float*>(std::aligned_alloc(64, bytes));
  if (!p) throw std::bad_alloc();
  return AlignedPtr(p);
}

// Non-owning view over contiguous row-major float data.
struct TensorView {
  float* data = nullptr;
  std::vector<int64_t> shape;
  int64_t numel() const { return std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<>()); }
  int64_t dim(int i) const { return shape.at(i < 0 ? shape.size() + i : i); }
};

// Owning contiguous row-major float tensor.
class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::vector<int64_t> shape) : shape_(std::move(shape)) {
    for (auto d : shape_)
      if (d < 0) throw std::invalid_argument("Tensor: negative dimension");
    capacity_ = static_cast<size_t>(numel());
    data_ = aligned_floats(capacity_);
    std::fill(data_.get(), data_.get() + capacity_, 0.0f);
  }
  Tensor(std::vector<int64_t> shape, const std::vector<float>& values) : Tensor(std::move(shape)) {
    if (values.size() != static_cast<size_t>(numel()))
      throw std::invalid_argument("Tensor: value count does not match shape");
    std::copy(values.begin(), values.end(), data_.get());
  }
  Tensor(const Tensor& o) : shape_(o.shape_), capacity_(static_cast<size_t>(o.numel())) {
    data_ = aligned_floats(capacity_);  // no zero fill: overwritten right away
    if (o.data_) std::copy(o.data(), o.data() + numel(), data());
  }
  Tensor& operator=(const Tensor& o) {  // reuses this tensor's buffer when it is large enough (and its own)
    if (this != &o) {
      read_only_ = false;
      resize(o.shape_);
      if (o.data_) std::copy(o.data(), o.data() + numel(), data());
    }
    return *this;
  }
  Tensor(Tensor&&) noexcept = default;
  Tensor& operator=(Tensor&&) noexcept = default;

  // Changes the shape, reusing the buffer (and the shape's own storage) when it is large enough: no allocation
  // on hot paths once a tensor has seen its largest shape.
  void resize(std::initializer_list<int64_t> shape) { reshape(shape.begin(), shape.end()); }
  void resize(const std::vector<int64_t>& shape) { reshape(shape.begin(), shape.end()); }

  float* data() { return data_.get(); }
  const float* data() const { return data_.get(); }
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t dim(int i) const { return shape_.at(i < 0 ? shape_.size() + i : i); }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t numel() const { return std::accumulate(shape_.begin(), shape_.end(), int64_t{1}, std::multiplies<>()); }
  float& operator[](int64_t i) { return data_[i]; }
  float operator[](int64_t i) const { return data_[i]; }
  TensorView view() { return TensorView{data(), shape_}; }
  bool empty() const { return numel() == 0 || !data_; }
  size_t capacity() const { return capacity_; }  // floats the buffer holds

  // Read-only sharing, for weights: a loaded Model marks its weight map read-only, and the layers built from it
  // then alias those buffers (share()) instead of holding a second copy of every weight. Nothing may write to a
  // read-only tensor or to a share of it (they are only reachable as const). Copies are ordinary tensors again.
  void make_read_only() { read_only_ = true; }
  bool read_only() const { return read_only_; }
  Tensor share() const {
    if (!read_only_) throw std::logic_error("Tensor::share: only read-only tensors can be shared");
    Tensor t;
    t.shape_ = shape_;
    t.data_ = data_;
    t.capacity_ = capacity_;
    t.read_only_ = true;
    return t;
  }
  // What a layer keeps of a weight it is given: a share of a read-only tensor, a copy of any other.
  static Tensor share_or_copy(const Tensor& t) { return t.read_only() ? t.share() : Tensor(t); }

 private:
  template <class It>
  void reshape(It first, It last) {
    const int64_t n = std::accumulate(first, last, int64_t{1}, std::multiplies<>());
    // A shared buffer is never reused for a new shape: the resized tensor is about to be written.
    if (static_cast<size_t>(n) > capacity_ || (data_ && data_.use_count() > 1)) {
      data_ = aligned_floats(static_cast<size_t>(n));
      capacity_ = static_cast<size_t>(n);
      read_only_ = false;
    }
    shape_.assign(first, last);
  }

  std::vector<int64_t> shape_;
  std::shared_ptr<float[]> data_;  // shared only between read-only tensors (share())
  size_t capacity_ = 0;
  bool read_only_ = false;
};

std::string shape_str(const std::vector<int64_t>& shape);

// Scratch tensors owned by the calling thread and reused across calls (keyed by the module using them), so
// steady-state inference neither allocates nor page-faults fresh memory. Sized by the largest call so far.
Tensor& scratch_tensor(const void* owner, int slot);

}  // namespace wavtok
