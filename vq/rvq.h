// Residual vector quantization: a stack of codebooks, each coding what the previous ones left.
// The single-codebook WavTokenizer quantizer is the n_q = 1 case.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "core/dnnl_util.h"
#include "core/tensor.h"

namespace wavtok {

// Arithmetic of the codebook search (process-wide, like set_precision): F32, or BF16 = the scores x·e from
// bfloat16 inputs with float32 accumulation (the -|e|^2/2 term and the residual update stay float32), whose 4
// best candidates per frame are then rescored exactly. Separate from set_precision because bf16 can still flip
// near ties, i.e. change tokens. set_vq_precision(BF16) throws on a CPU without native bf16 (bf16_supported()).
enum class VqPrecision { F32, BF16 };
void set_vq_precision(VqPrecision p);
VqPrecision get_vq_precision();

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
  static constexpr int64_t kSearchBlock = 512;  // frames searched at once (the scores matrix is [block, bins])
  // One block: residual [dim, frames] (consumed), codes [nq, frames], quantized [dim, frames] or nullptr.
  void search(Tensor& residual, int64_t frames, int nq, int32_t* codes, float* quantized, Tensor& scores,
              std::vector<uint16_t>& res16) const;
  struct Entry {
    dnnl::matmul prim;
    dnnl::memory::desc src_md, dst_md;
  };
  struct Book {
    dnnl::memory weights;  // [dim, bins] view of the codebook
    dnnl::memory bias;     // -0.5 * |e|^2, shape [1, bins]
    ShapeCache<Entry> cache;  // key: frames * 2 + (bf16 ? 1 : 0)
    std::once_flag bf16_once;
    std::vector<uint16_t> bf16;  // the codebook in bfloat16, made on first bf16 use
  };
  std::vector<Tensor> books_;
  std::vector<Tensor> half_norms_;
  std::vector<std::unique_ptr<Book>> prims_;
  int dim_ = 0;
};

}  // namespace wavtok
