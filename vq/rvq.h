// Residual vector quantization: a stack of codebooks, each coding what the previous ones left.
// The single-codebook WavTokenizer quantizer is the n_q = 1 case.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "codec/dnnl_util.h"
#include "codec/tensor.h"

namespace wavtok {

class ResidualVQ {
 public:
  ResidualVQ() = default;
  // Each codebook is [bins, dim]; all share dim, bins may differ.
  explicit ResidualVQ(std::vector<Tensor> codebooks);

  int n_q() const { return static_cast<int>(books_.size()); }
  int dim() const { return dim_; }
  int bins(int q) const { return static_cast<int>(books_.at(q).dim(0)); }
  const Tensor& codebook(int q) const { return books_.at(q); }

  // latents: channels-first [dim, F]. Greedy residual search over the first nq codebooks.
  // codes: [nq, F] row-major. quantized (optional): [dim, F], the sum of chosen codewords.
  void encode(const float* latents, int64_t frames, int nq, int32_t* codes, float* quantized = nullptr) const;
  // Sum of codewords for codes [nq, F] into out [dim, F]; throws on out-of-range codes.
  void decode(const int32_t* codes, int64_t frames, int nq, float* out) const;

 private:
  struct Entry {
    dnnl::matmul prim;
    dnnl::memory::desc src_md, dst_md;
  };
  struct Book {
    dnnl::memory weights;  // [dim, bins] view of the codebook
    dnnl::memory bias;     // -0.5 * |e|^2, shape [1, bins]
    ShapeCache<Entry> cache;
  };
  std::vector<Tensor> books_;
  std::vector<Tensor> half_norms_;
  std::vector<std::unique_ptr<Book>> prims_;
  int dim_ = 0;
};

}  // namespace wavtok
