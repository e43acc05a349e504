#include "vq/rvq.h"

#include <algorithm>
#include <string>

#include "codec/error.h"

namespace wavtok {

using dnnl::memory;

ResidualVQ::ResidualVQ(std::vector<Tensor> codebooks) : books_(std::move(codebooks)) {
  if (books_.empty()) throw Error("ResidualVQ: no codebooks");
  dim_ = static_cast<int>(books_[0].dim(1));
  for (size_t q = 0; q < books_.size(); ++q) {
    const Tensor& b = books_[q];
    if (b.ndim() != 2 || b.dim(1) != dim_ || b.dim(0) < 1)
      throw Error("ResidualVQ: codebook " + std::to_string(q) + " has shape " + shape_str(b.shape()) +
                  ", expected [bins, " + std::to_string(dim_) + "]");
    const int64_t bins = b.dim(0);
    Tensor hn({1, bins});
    for (int64_t j = 0; j < bins; ++j) {
      double s = 0;
      for (int d = 0; d < dim_; ++d) s += double(b[j * dim_ + d]) * b[j * dim_ + d];
      hn[j] = static_cast<float>(-0.5 * s);
    }
    half_norms_.push_back(std::move(hn));
    auto book = std::make_unique<Book>();
    book->weights = wrap(memory::desc({dim_, bins}, ddt::f32, dtag::ba), books_[q].data());
    book->bias = wrap(memory::desc({1, bins}, ddt::f32, dtag::ab), half_norms_.back().data());
    prims_.push_back(std::move(book));
  }
}

void ResidualVQ::encode(const float* latents, int64_t frames, int nq, int32_t* codes, float* quantized) const {
  if (nq < 1 || nq > n_q())
    throw Error("ResidualVQ: asked for " + std::to_string(nq) + " codebooks, model has " + std::to_string(n_q()));
  if (frames == 0) return;
  // Residual kept channels-first [dim, F] like the latents; read as [F, dim] through strides.
  Tensor residual({dim_, frames});
  std::copy(latents, latents + dim_ * frames, residual.data());
  Tensor scores;
  if (quantized) std::fill(quantized, quantized + dim_ * frames, 0.0f);
  for (int q = 0; q < nq; ++q) {
    const Book& book = *prims_[q];
    const int64_t bins = books_[q].dim(0);
    auto e = book.cache.get(frames, [&] {
      memory::desc src_md({frames, dim_}, ddt::f32, dtag::ba);
      memory::desc dst_md({frames, bins}, ddt::f32, dtag::ab);
      dnnl::matmul::primitive_desc pd(
          dnnl::matmul::desc(src_md, book.weights.get_desc(), book.bias.get_desc(), dst_md), scratchpad_attr(),
          cpu_engine());
      return Entry{dnnl::matmul(pd), src_md, dst_md};
    });
    scores.resize({frames, bins});
    // score = x.e - |e|^2/2: maximising it is the Euclidean nearest neighbour.
    run_primitive(e->prim, {{DNNL_ARG_SRC, wrap(e->src_md, residual.data())},
                        {DNNL_ARG_WEIGHTS, book.weights},
                        {DNNL_ARG_BIAS, book.bias},
                        {DNNL_ARG_DST, wrap(e->dst_md, scores.data())}});
    const float* cb = books_[q].data();
    for (int64_t f = 0; f < frames; ++f) {
      const float* row = scores.data() + f * bins;
      const int32_t best = static_cast<int32_t>(std::max_element(row, row + bins) - row);
      codes[q * frames + f] = best;
      const float* w = cb + int64_t(best) * dim_;
      for (int d = 0; d < dim_; ++d) {
        residual[d * frames + f] -= w[d];
        if (quantized) quantized[d * frames + f] += w[d];
      }
    }
  }
}

void ResidualVQ::decode(const int32_t* codes, int64_t frames, int nq, float* out) const {
  if (nq < 1 || nq > n_q())
    throw Error("ResidualVQ: tokens use " + std::to_string(nq) + " codebooks, model has " + std::to_string(n_q()));
  std::fill(out, out + dim_ * frames, 0.0f);
  for (int q = 0; q < nq; ++q) {
    const int64_t bins = books_[q].dim(0);
    const float* cb = books_[q].data();
    for (int64_t f = 0; f < frames; ++f) {
      const int32_t c = codes[q * frames + f];
      if (c < 0 || c >= bins)
        throw Error("token " + std::to_string(c) + " at frame " + std::to_string(f) + ", codebook " +
                    std::to_string(q) + " is outside 0.." + std::to_string(bins - 1));
      const float* w = cb + int64_t(c) * dim_;
      for (int d = 0; d < dim_; ++d) out[d * frames + f] += w[d];
    }
  }
}

}  // namespace wavtok
