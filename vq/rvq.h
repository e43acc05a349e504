// Residual vector quantization: a stack of codebooks, each coding what the previous ones left.
// The single-codebook WavTokenizer quantizer is the n_q = 1 case.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/dnnl_util.h"
#include "core/tensor.h"

namespace wavtok {

// Arithmetic of the codebook search (process-wide, like set_precision). Every precision returns the same codes:
// the nearest codeword by the exact score x.e - |e|^2/2 (float64 dot products of the float32 residual and codebook,
// lowest index on a tie). The fast scores below only shortlist: each comes with a rigorous per-frame error bound B,
// and every code whose fast score is within 2B of the frame's best is rescored exactly (vq/rvq.cc explains the
// bounds). So the precision is a speed choice that changes no token.
//  - F32: scores by a float32 oneDNN matmul (the near-ties it cannot separate are rescored exactly).
//  - BF16: the matmul's inputs in bfloat16, float32 accumulation. Throws on a CPU without native bf16
//    (bf16_supported()).
//  - INT8: residual and codebook quantized to int8 with one scale per row (per frame, per codeword), an s8 x s8 -> s32
//    oneDNN matmul (VNNI where the CPU has it), scores rescaled in float32.
enum class VqPrecision { F32, BF16, INT8 };
void set_vq_precision(VqPrecision p);
VqPrecision get_vq_precision();
// "f32" | "bf16" | "int8" (the CLI's --vq-precision); throws on anything else.
VqPrecision parse_vq_precision(const std::string& name);
const char* vq_precision_name(VqPrecision p);

// Statistics of the exact rescoring, summed over all searches of this thread since the last reset: lets tests and
// benchmarks see how many candidates the bounds leave (a search that rescored nothing checks nothing).
struct VqRerankStats {
  int64_t frames = 0;      // (frame, codebook) searches
  int64_t rescored = 0;    // of those, searches with more than one candidate left
  int64_t candidates = 0;  // candidates rescored in total
  int64_t max_candidates = 0;
};
VqRerankStats vq_rerank_stats();
void reset_vq_rerank_stats();

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
  // The search precision this quantizer uses while the process-wide one is the default F32 (a quantized model file
  // asks for INT8 this way, models/quantized.h); F32 or INT8 only (INT8 runs on every CPU). An explicit bf16/int8
  // process-wide precision still wins. Codes are the same at every precision: this only picks the speed.
  void set_preferred_precision(VqPrecision p);
  VqPrecision preferred_precision() const { return preferred_; }
  // Sum of codewords for codes [nq, F] into out [dim, F]; throws on out-of-range codes.
  void decode(const int32_t* codes, int64_t frames, int nq, float* out) const;

 private:
  VqPrecision preferred_ = VqPrecision::F32;
  static constexpr int64_t kSearchBlock = 512;  // frames searched at once (the scores matrix is [block, bins])
  struct Scratch;
  // One block: residual [dim, frames] (consumed), codes [nq, frames], quantized [dim, frames] or nullptr.
  void search(Tensor& residual, int64_t frames, int nq, int32_t* codes, float* quantized, Scratch& s) const;
  struct Entry {
    dnnl::matmul prim;
    dnnl::memory::desc src_md, dst_md;
    dnnl::memory weights;  // the codebook in the layout the primitive wants (int8: reordered once per book)
  };
  struct Book {
    dnnl::memory weights;     // [dim, bins] view of the codebook
    dnnl::memory bias;        // -0.5 * |e|^2 in float32, shape [1, bins]
    ShapeCache<Entry> cache;  // key: frames * 4 + precision
    WeightCache int8_weights;
    double max_norm = 0;              // max_j |e_j|
    double max_half_norm = 0;         // max_j |e_j|^2 / 2
    std::vector<double> half_norm64;  // -0.5 * |e_j|^2 in float64: the exact score's bias
    std::once_flag bf16_once;
    std::vector<uint16_t> bf16;          // the codebook in bfloat16, made on first bf16 use
    double bf16_err = 0, bf16_norm = 0;  // max_j |e_j - bf16(e_j)|, max_j |bf16(e_j)|
    std::once_flag int8_once;
    std::vector<int8_t> q8;          // [bins, dim] round(e / scale)
    std::vector<float> q8_scale;     // [bins] max|e_j| / 127
    double q8_err = 0, q8_norm = 0;  // max_j |e_j - scale_j q8_j|, max_j |scale_j q8_j|
  };
  void prepare_bf16(int q) const;
  void prepare_int8(int q) const;
  std::vector<Tensor> books_;
  std::vector<Tensor> half_norms_;
  std::vector<std::unique_ptr<Book>> prims_;
  int dim_ = 0;
};

}  // namespace wavtok
