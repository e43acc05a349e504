#include "vq/rvq.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>

#include "core/error.h"
#include "core/util.h"

namespace wavtok {

using dnnl::memory;

namespace {

std::atomic<VqPrecision> g_vq_precision{VqPrecision::F32};

uint16_t to_bf16(float x) { return float_to_bf16(x); }  // round to nearest even (finite inputs)

// bf16 scores are a shortlist: the kRerank best are rescored exactly (float64 dot products) and the best of those
// wins. A single bf16 near-tie flip would otherwise change every later residual codebook's choice as well.
constexpr int kRerank = 4;

int32_t rerank(const float* row, int64_t bins, const float* cb, const float* half_norm, const float* x, int64_t stride,
               int dim) {
  int32_t cand[kRerank];
  int n = 0;
  for (int64_t j = 0; j < bins; ++j) {  // insertion into a tiny sorted list (descending score)
    if (n == kRerank && row[j] <= row[cand[n - 1]]) continue;
    int at = n < kRerank ? n++ : n - 1;
    while (at > 0 && row[cand[at - 1]] < row[j]) {
      cand[at] = cand[at - 1];
      --at;
    }
    cand[at] = int32_t(j);
  }
  int32_t best = cand[0];
  double best_score = -1e300;
  for (int i = 0; i < n; ++i) {
    const float* e = cb + int64_t(cand[i]) * dim;
    double s = half_norm[cand[i]];
    for (int d = 0; d < dim; ++d) s += double(x[d * stride]) * e[d];
    if (s > best_score || (s == best_score && cand[i] < best)) {
      best_score = s;
      best = cand[i];
    }
  }
  return best;
}

}  // namespace

void set_vq_precision(VqPrecision p) {
  if (p == VqPrecision::BF16 && !bf16_supported())
    throw Error("bf16 codebook search needs a CPU with AVX512-BF16 or AMX; this one has neither (use --vq-precision f32)");
  g_vq_precision = p;
}

VqPrecision get_vq_precision() { return g_vq_precision.load(); }

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
  // Frames are independent: search blocks of them, so the scores matrix ([frames, bins], 16 KiB per frame at 4096
  // codes) stays the size of a block however long the input.
  // The buffers are per thread and kept between calls: allocated per call, the [block, bins] scores (2-8 MiB)
  // came fresh from the OS each time and their page faults cost 5x the search itself.
  const int64_t all = frames, block = std::min<int64_t>(frames, kSearchBlock);
  thread_local Tensor residual, scores;
  thread_local std::vector<int32_t> bcodes;
  thread_local std::vector<float> bquant;
  thread_local std::vector<uint16_t> res16;
  bcodes.resize(size_t(nq) * block);
  bquant.resize(quantized ? size_t(dim_) * block : 0);
  for (int64_t f0 = 0; f0 < all; f0 += block) {
    const int64_t n = std::min(block, all - f0);
    residual.resize({dim_, n});
    for (int d = 0; d < dim_; ++d) std::copy(latents + d * all + f0, latents + d * all + f0 + n, residual.data() + d * n);
    search(residual, n, nq, bcodes.data(), quantized ? bquant.data() : nullptr, scores, res16);
    for (int q = 0; q < nq; ++q) std::copy(bcodes.begin() + q * n, bcodes.begin() + (q + 1) * n, codes + q * all + f0);
    if (quantized)
      for (int d = 0; d < dim_; ++d) std::copy(bquant.begin() + d * n, bquant.begin() + (d + 1) * n, quantized + d * all + f0);
  }
}

void ResidualVQ::search(Tensor& residual, int64_t frames, int nq, int32_t* codes, float* quantized, Tensor& scores,
                        std::vector<uint16_t>& res16) const {
  // Residual kept channels-first [dim, F] like the latents; read as [F, dim] through strides.
  if (quantized) std::fill(quantized, quantized + dim_ * frames, 0.0f);
  const bool bf16 = get_vq_precision() == VqPrecision::BF16;
  for (int q = 0; q < nq; ++q) {
    Book& book = *prims_[q];
    const int64_t bins = books_[q].dim(0);
    const ddt dt = bf16 ? ddt::bf16 : ddt::f32;
    if (bf16)
      std::call_once(book.bf16_once, [&] {
        book.bf16.resize(size_t(bins) * dim_);
        for (size_t i = 0; i < book.bf16.size(); ++i) book.bf16[i] = to_bf16(books_[q][int64_t(i)]);
      });
    auto e = book.cache.get(frames * 2 + (bf16 ? 1 : 0), [&] {
      memory::desc src_md({frames, dim_}, dt, dtag::ba);
      memory::desc w_md({dim_, bins}, dt, dtag::ba);
      memory::desc dst_md({frames, bins}, ddt::f32, dtag::ab);
      dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src_md, w_md, book.bias.get_desc(), dst_md), scratchpad_attr(),
                                      cpu_engine());
      return Entry{dnnl::matmul(pd), src_md, dst_md};
    });
    scores.resize({frames, bins});
    // score = x.e - |e|^2/2: maximising it is the Euclidean nearest neighbour.
    memory src = wrap(e->src_md, residual.data()), weights = book.weights;
    if (bf16) {
      res16.resize(size_t(dim_) * frames);
      for (size_t i = 0; i < res16.size(); ++i) res16[i] = to_bf16(residual[int64_t(i)]);
      src = memory(e->src_md, cpu_engine(), res16.data());
      weights = memory(memory::desc({dim_, bins}, ddt::bf16, dtag::ba), cpu_engine(), book.bf16.data());
    }
    run_primitive(e->prim, {{DNNL_ARG_SRC, src},
                        {DNNL_ARG_WEIGHTS, weights},
                        {DNNL_ARG_BIAS, book.bias},
                        {DNNL_ARG_DST, wrap(e->dst_md, scores.data())}});
    const float* cb = books_[q].data();
    const float* hn = half_norms_[q].data();
    for (int64_t f = 0; f < frames; ++f) {
      const float* row = scores.data() + f * bins;
      int32_t best = static_cast<int32_t>(std::max_element(row, row + bins) - row);
      if (bf16) best = rerank(row, bins, cb, hn, residual.data() + f, frames, dim_);
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
