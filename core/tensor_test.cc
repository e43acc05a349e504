// Tensor value semantics, and the read-only sharing that lets a Model's layers alias its weight buffers.
#include "core/tensor.h"

#include <stdexcept>

#include <gtest/gtest.h>

namespace wavtok {
namespace {

Tensor iota_tensor(int64_t n) {
  Tensor t({n});
  for (int64_t i = 0; i < n; ++i) t[i] = float(i);
  return t;
}

TEST(Tensor, CopiesAreIndependent) {
  Tensor a = iota_tensor(8);
  Tensor b = a;
  EXPECT_NE(a.data(), b.data());
  b[0] = 42;
  EXPECT_EQ(a[0], 0.0f);
  Tensor c({3});
  c = a;  // copy-assignment into a smaller buffer
  EXPECT_EQ(c.numel(), 8);
  EXPECT_EQ(c[7], 7.0f);
}

TEST(Tensor, OnlyReadOnlyTensorsShare) {
  Tensor a = iota_tensor(16);
  EXPECT_THROW(a.share(), std::logic_error);
  Tensor copy = Tensor::share_or_copy(a);
  EXPECT_NE(copy.data(), a.data());
  a.make_read_only();
  Tensor s = a.share();
  EXPECT_EQ(s.data(), a.data());
  EXPECT_EQ(s.shape(), a.shape());
  EXPECT_TRUE(s.read_only());
  EXPECT_EQ(Tensor::share_or_copy(a).data(), a.data());
  // A copy of a read-only tensor is an ordinary, writable tensor with its own buffer.
  Tensor c = a;
  EXPECT_FALSE(c.read_only());
  EXPECT_NE(c.data(), a.data());
  c[1] = -1;
  EXPECT_EQ(a[1], 1.0f);
}

TEST(Tensor, ReusingASharedTensorNeverWritesTheSharedBuffer) {
  Tensor a = iota_tensor(16);
  a.make_read_only();
  Tensor s = a.share();
  s.resize({4});  // smaller: an unshared tensor would reuse its buffer, a shared one must not
  EXPECT_NE(s.data(), a.data());
  EXPECT_FALSE(s.read_only());
  s[0] = 99;
  Tensor t = a.share();
  t = iota_tensor(16);  // copy... from a temporary: moved, the shared buffer is let go
  t[2] = 99;
  Tensor u = a.share();
  const Tensor src = iota_tensor(4);
  u = src;  // copy-assignment
  u[3] = 99;
  EXPECT_NE(u.data(), a.data());
  for (int64_t i = 0; i < 16; ++i) EXPECT_EQ(a[i], float(i));
  // The buffer outlives the tensor it came from.
  Tensor kept = a.share();
  const float* p = kept.data();
  a = Tensor();
  EXPECT_EQ(kept.data(), p);
  EXPECT_EQ(kept[15], 15.0f);
}

}  // namespace
}  // namespace wavtok
