#include "vq/rvq.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "core/error.h"
#include "core/util.h"

namespace wavtok {

using dnnl::memory;

namespace {

std::atomic<VqPrecision> g_vq_precision{VqPrecision::F32};
thread_local VqRerankStats t_stats;

uint16_t to_bf16(float x) { return float_to_bf16(x); }  // round to nearest even (finite inputs)

float from_bf16(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

// Why an exact rescoring, and not upstream's float32 formula.
// Upstream (EnCodec's EuclideanCodebook, python/wavtok_ref/vq.py) takes the argmax of -(|x|^2 - 2 x.e + |e|^2) in
// float32, with x.e from whatever GEMM kernel torch runs on that machine. Its decision on a tie closer than float32
// can resolve is a property of that kernel's summation order, which no other implementation (nor torch on another
// CPU) reproduces, so copying the formula cannot make those ties break "the same way". What all of them approximate
// is the exact nearest codeword, and the fixtures' README states that an exact (float64) search reproduces 100 % of
// upstream's codes. So the decision here is the exact one: score S_j = x.e_j - |e_j|^2/2 in float64 (products of two
// floats are exact in float64; dim <= 2^20 terms keep the sum's error ~1e-10 of the float32 resolution), highest S,
// lowest index on a tie. models/rvq_upstream_test.cc measures it against upstream level by level (100 % of the codes at
// every EnCodec bitrate from upstream's latents), docs/PTQ.md has the figures.
//
// The fast scores s_j (float32 / bf16 / int8 matmul) only shortlist. Each precision has a bound B (per frame) with
// |s_j - S_j| <= B for every j; the exact best j* then has s_j* >= S_j* - B >= S_k - B >= s_k - 2B for the k with the
// best fast score, so every j with s_j >= max_k s_k - 2B is rescored exactly and nothing else can win.
//  - float32 matmul (any summation order, FMA or not): |err| <= gamma_{dim+2} (|x| max|e| + max|e|^2/2) with
//    gamma_n = n u / (1 - n u), u = 2^-24 (Higham, Accuracy and Stability, 3.1; sum |x_d e_d| <= |x| |e|).
//  - quantized inputs x' = x - rx, e' = e - re (bf16: rounding; int8: scale * round(v / scale)):
//    |x.e - x'.e'| <= |x| |re| + |rx| |e'| (Cauchy-Schwarz), plus the float32 rounding of computing x'.e' (bf16:
//    gamma as above; int8: the s32 dot is exact, then four float32 roundings to rescale and add the bias).
// The bounds use each codebook's largest |e_j|, |re_j| and |e'_j| and are widened by a relative 2^-10 and a tiny
// absolute term for the float64 arithmetic that evaluates them.
struct FrameBound {
  double x_norm;   // |x|
  double rx_norm;  // |x - x'| (0 for float32)
};

double gamma_n(int n, double u) { return n * u / (1.0 - n * u); }

// Exact score of codeword e for the frame x (contiguous float64 copy of the residual). Eight partial sums in a fixed
// order (so the compiler can keep them in vector registers and the chain of dependent additions is 8x shorter); every
// precision calls this same function, so they agree to the last bit.
double exact_score(const double* x, const float* e, int dim, double half_norm) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int d = 0;
  for (; d + 8 <= dim; d += 8)
    for (int k = 0; k < 8; ++k) acc[k] += x[d + k] * double(e[d + k]);
  for (; d < dim; ++d) acc[d & 7] += x[d] * double(e[d]);
  return half_norm + (((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])));
}

// 16 independent lanes, so the compiler turns them into one vector max (a single running max is a chain of
// dependent scalar instructions, and was the search's hottest loop).
float row_max(const float* row, int64_t n) {
  constexpr int L = 16;
  float m[L];
  for (int k = 0; k < L; ++k) m[k] = -std::numeric_limits<float>::infinity();
  int64_t j = 0;
  for (; j + L <= n; j += L)
    for (int k = 0; k < L; ++k) m[k] = row[j + k] > m[k] ? row[j + k] : m[k];
  for (; j < n; ++j) m[0] = row[j] > m[0] ? row[j] : m[0];
  float r = m[0];
  for (int k = 1; k < L; ++k) r = m[k] > r ? m[k] : r;
  return r;
}

// int8 scores of one frame, out[j] = (xs * es[j]) * I[j] + h[j], and their max.
float int8_row_scores(const int32_t* in, const float* es, const float* h, float xs, float* out, int64_t n) {
  for (int64_t j = 0; j < n; ++j) out[j] = (xs * es[j]) * float(in[j]) + h[j];  // vectorizes; the row stays in L1
  return row_max(out, n);
}

// Appends every j with row[j] >= thr (ascending), testing 16 at a time.
void collect_at_least(const float* row, int64_t n, float thr, std::vector<int32_t>& out) {
  constexpr int L = 16;
  int64_t j = 0;
  for (; j + L <= n; j += L) {
    int hit = 0;
    for (int k = 0; k < L; ++k) hit |= row[j + k] >= thr;
    if (hit)
      for (int k = 0; k < L; ++k)
        if (row[j + k] >= thr) out.push_back(int32_t(j + k));
  }
  for (; j < n; ++j)
    if (row[j] >= thr) out.push_back(int32_t(j));
}

// Symmetric int8 code of v at scale 1/inv (round half away from zero; the bound uses the actual error, so any
// rounding is correct, and this one inlines where lrint is a libm call).
inline int8_t to_s8(float v, float inv, float lim = 127.0f) {
  float t = v * inv;
  t = t > lim ? lim : (t >= -lim ? t : -lim);  // also NaN -> -lim: no undefined float-to-int conversion
  return int8_t(int(t + (t >= 0 ? 0.5f : -0.5f)));
}

// Without VNNI (or AMX), oneDNN's int8 kernels multiply u8 x s8 pairs with vpmaddubsw, whose int16 pair sums saturate
// past 32767 (255 * 127 * 2 would); codewords then get 7 bits (|code| <= 63), so no sum can saturate and the s32 dot
// products stay exact, which the error bound relies on. The bound uses the actual rounding errors either way.
float codebook_int8_limit() {
  const auto isa = dnnl::get_effective_cpu_isa();
  const bool vnni = isa == dnnl::cpu_isa::avx512_core_vnni || isa == dnnl::cpu_isa::avx512_core_bf16 ||
                    isa == dnnl::cpu_isa::avx512_core_amx || isa == dnnl::cpu_isa::avx2_vnni;
  return vnni ? 127.0f : 63.0f;
}

}  // namespace

void set_vq_precision(VqPrecision p) {
  if (p == VqPrecision::BF16 && !bf16_supported())
    throw Error(
        "bf16 codebook search needs a CPU with AVX512-BF16 or AMX; this one has neither (use --vq-precision f32)");
  g_vq_precision = p;
}

VqPrecision get_vq_precision() { return g_vq_precision.load(); }

VqPrecision parse_vq_precision(const std::string& name) {
  if (name == "f32") return VqPrecision::F32;
  if (name == "bf16") return VqPrecision::BF16;
  if (name == "int8") return VqPrecision::INT8;
  throw Error("--vq-precision must be f32, bf16 or int8, not '" + name + "'");
}

const char* vq_precision_name(VqPrecision p) {
  switch (p) {
    case VqPrecision::F32:
      return "f32";
    case VqPrecision::BF16:
      return "bf16";
    case VqPrecision::INT8:
      return "int8";
  }
  return "?";
}

VqRerankStats vq_rerank_stats() { return t_stats; }
void reset_vq_rerank_stats() { t_stats = VqRerankStats{}; }

ResidualVQ::ResidualVQ(std::vector<Tensor> codebooks) : books_(std::move(codebooks)) {
  if (books_.empty()) throw Error("ResidualVQ: no codebooks");
  dim_ = static_cast<int>(books_[0].dim(1));
  for (size_t q = 0; q < books_.size(); ++q) {
    const Tensor& b = books_[q];
    if (b.ndim() != 2 || b.dim(1) != dim_ || b.dim(0) < 1)
      throw Error("ResidualVQ: codebook " + std::to_string(q) + " has shape " + shape_str(b.shape()) +
                  ", expected [bins, " + std::to_string(dim_) + "]");
    for (int64_t i = 0; i < b.numel(); ++i)
      if (!std::isfinite(b[i])) throw Error("ResidualVQ: codebook " + std::to_string(q) + " contains NaN/Inf");
    const int64_t bins = b.dim(0);
    auto book = std::make_unique<Book>();
    Tensor hn({1, bins});
    book->half_norm64.resize(size_t(bins));
    for (int64_t j = 0; j < bins; ++j) {
      double s = 0;
      for (int d = 0; d < dim_; ++d) s += double(b[j * dim_ + d]) * b[j * dim_ + d];
      hn[j] = static_cast<float>(-0.5 * s);
      book->half_norm64[size_t(j)] = -0.5 * s;
      book->max_norm = std::max(book->max_norm, std::sqrt(s));
      book->max_half_norm = std::max(book->max_half_norm, 0.5 * s);
    }
    half_norms_.push_back(std::move(hn));
    book->weights = wrap(memory::desc({dim_, bins}, ddt::f32, dtag::ba), books_[q].data());
    book->bias = wrap(memory::desc({1, bins}, ddt::f32, dtag::ab), half_norms_.back().data());
    prims_.push_back(std::move(book));
  }
}

void ResidualVQ::prepare_bf16(int q) const {
  Book& book = *prims_[size_t(q)];
  std::call_once(book.bf16_once, [&] {
    const int64_t bins = books_[q].dim(0);
    book.bf16.resize(size_t(bins) * dim_);
    for (int64_t j = 0; j < bins; ++j) {
      double err = 0, norm = 0;
      for (int d = 0; d < dim_; ++d) {
        const float v = books_[q][j * dim_ + d];
        const uint16_t h = to_bf16(v);
        book.bf16[size_t(j * dim_ + d)] = h;
        const double r = double(from_bf16(h));
        err += (double(v) - r) * (double(v) - r);
        norm += r * r;
      }
      book.bf16_err = std::max(book.bf16_err, std::sqrt(err));
      book.bf16_norm = std::max(book.bf16_norm, std::sqrt(norm));
    }
  });
}

void ResidualVQ::prepare_int8(int q) const {
  Book& book = *prims_[size_t(q)];
  std::call_once(book.int8_once, [&] {
    const int64_t bins = books_[q].dim(0);
    book.q8.resize(size_t(bins) * dim_);
    book.q8_scale.resize(size_t(bins));
    const float lim = codebook_int8_limit();
    for (int64_t j = 0; j < bins; ++j) {
      const float* e = books_[q].data() + j * dim_;
      float amax = 0;
      for (int d = 0; d < dim_; ++d) amax = std::max(amax, std::abs(e[d]));
      const float scale = amax / lim, inv = amax > 0 ? lim / amax : 0.0f;
      book.q8_scale[size_t(j)] = scale;
      double err = 0, norm = 0;
      for (int d = 0; d < dim_; ++d) {
        const int v = to_s8(e[d], inv, lim);
        book.q8[size_t(j * dim_ + d)] = int8_t(v);
        const double r = double(scale) * v;
        err += (double(e[d]) - r) * (double(e[d]) - r);
        norm += r * r;
      }
      book.q8_err = std::max(book.q8_err, std::sqrt(err));
      book.q8_norm = std::max(book.q8_norm, std::sqrt(norm));
    }
  });
}

// Per-thread buffers of the search, kept between calls: allocated per call, the [block, bins] scores (2-8 MiB) came
// fresh from the OS each time and their page faults cost 5x the search itself.
struct ResidualVQ::Scratch {
  Tensor residual, scores;
  std::vector<int32_t> codes, iscores, cand;
  std::vector<float> quant, xscale, xinv;
  std::vector<uint16_t> res16;
  std::vector<int8_t> res8;
  std::vector<FrameBound> bound;
  std::vector<double> x64;
};

void ResidualVQ::encode(const float* latents, int64_t frames, int nq, int32_t* codes, float* quantized) const {
  if (nq < 1 || nq > n_q())
    throw Error("ResidualVQ: asked for " + std::to_string(nq) + " codebooks, model has " + std::to_string(n_q()));
  if (frames == 0) return;
  // Frames are independent: search blocks of them, so the scores matrix ([frames, bins], 16 KiB per frame at 4096
  // codes) stays the size of a block however long the input.
  const int64_t all = frames, block = std::min<int64_t>(frames, kSearchBlock);
  thread_local Scratch s;
  s.codes.resize(size_t(nq) * block);
  s.quant.resize(quantized ? size_t(dim_) * block : 0);
  for (int64_t f0 = 0; f0 < all; f0 += block) {
    const int64_t n = std::min(block, all - f0);
    s.residual.resize({dim_, n});
    for (int d = 0; d < dim_; ++d)
      std::copy(latents + d * all + f0, latents + d * all + f0 + n, s.residual.data() + d * n);
    search(s.residual, n, nq, s.codes.data(), quantized ? s.quant.data() : nullptr, s);
    for (int q = 0; q < nq; ++q)
      std::copy(s.codes.begin() + q * n, s.codes.begin() + (q + 1) * n, codes + q * all + f0);
    if (quantized)
      for (int d = 0; d < dim_; ++d)
        std::copy(s.quant.begin() + d * n, s.quant.begin() + (d + 1) * n, quantized + d * all + f0);
  }
}

void ResidualVQ::set_preferred_precision(VqPrecision p) {
  if (p == VqPrecision::BF16) throw Error("ResidualVQ: a preferred search precision must be f32 or int8");
  preferred_ = p;
}

void ResidualVQ::search(Tensor& residual, int64_t frames, int nq, int32_t* codes, float* quantized, Scratch& s) const {
  // Residual kept channels-first [dim, F] like the latents; read as [F, dim] through strides.
  if (quantized) std::fill(quantized, quantized + dim_ * frames, 0.0f);
  VqPrecision prec = get_vq_precision();
  if (prec == VqPrecision::F32) prec = preferred_;
  const double u32 = std::ldexp(1.0, -24);
  s.bound.resize(size_t(frames));
  s.x64.resize(size_t(dim_));
  for (int q = 0; q < nq; ++q) {
    Book& book = *prims_[size_t(q)];
    const int64_t bins = books_[q].dim(0);
    if (prec == VqPrecision::BF16) prepare_bf16(q);
    if (prec == VqPrecision::INT8) prepare_int8(q);
    const ddt sdt = prec == VqPrecision::BF16 ? ddt::bf16 : prec == VqPrecision::INT8 ? ddt::s8 : ddt::f32;
    auto e = book.cache.get(frames * 4 + int64_t(prec), [&] {
      // int8 source rows are [F, dim] (written by the quantizer below); float ones read the residual in place.
      memory::desc src_md({frames, dim_}, sdt, prec == VqPrecision::INT8 ? dtag::ab : dtag::ba);
      memory::desc dst_md({frames, bins}, prec == VqPrecision::INT8 ? ddt::s32 : ddt::f32, dtag::ab);
      if (prec == VqPrecision::INT8) {
        memory::desc w_any({dim_, bins}, ddt::s8, dtag::any);
        dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src_md, w_any, dst_md), scratchpad_attr(), cpu_engine());
        memory w = book.int8_weights.get(pd.weights_desc(), [&] {
          memory plain(memory::desc({dim_, bins}, ddt::s8, dtag::ba), cpu_engine(), book.q8.data());
          memory out(pd.weights_desc(), cpu_engine());
          dnnl::reorder(plain, out).execute(cpu_stream(), plain, out);
          cpu_stream().wait();
          return out;
        });
        return Entry{dnnl::matmul(pd), src_md, dst_md, w};
      }
      memory::desc w_md({dim_, bins}, sdt, dtag::ba);
      dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src_md, w_md, book.bias.get_desc(), dst_md), scratchpad_attr(),
                                      cpu_engine());
      memory w = prec == VqPrecision::BF16 ? memory(w_md, cpu_engine(), book.bf16.data()) : book.weights;
      return Entry{dnnl::matmul(pd), src_md, dst_md, w};
    });
    s.scores.resize({frames, bins});
    float* scores = s.scores.data();
    // Per frame: |x| and, for the quantized precisions, the quantized residual and |x - x'|.
    std::vector<FrameBound>& fb = s.bound;
    for (int64_t f = 0; f < frames; ++f) fb[size_t(f)] = FrameBound{0, 0};
    const float* r = residual.data();
    for (int d = 0; d < dim_; ++d)
      for (int64_t f = 0; f < frames; ++f) fb[size_t(f)].x_norm += double(r[d * frames + f]) * r[d * frames + f];
    double a = 0, b = 0, c = 0;  // B = a |x| + b |rx| + c (|x'| max|e'| + max|e|^2/2) (+ slack), see above
    if (prec == VqPrecision::F32) {
      run_primitive(e->prim, {{DNNL_ARG_SRC, wrap(e->src_md, r)},
                              {DNNL_ARG_WEIGHTS, e->weights},
                              {DNNL_ARG_BIAS, book.bias},
                              {DNNL_ARG_DST, wrap(e->dst_md, scores)}});
      c = gamma_n(dim_ + 2, u32);
    } else if (prec == VqPrecision::BF16) {
      s.res16.resize(size_t(dim_) * frames);
      for (int d = 0; d < dim_; ++d)
        for (int64_t f = 0; f < frames; ++f) {
          const int64_t i = d * frames + f;
          s.res16[size_t(i)] = to_bf16(r[i]);
          const double dv = double(r[i]) - from_bf16(s.res16[size_t(i)]);
          fb[size_t(f)].rx_norm += dv * dv;
        }
      run_primitive(e->prim, {{DNNL_ARG_SRC, memory(e->src_md, cpu_engine(), s.res16.data())},
                              {DNNL_ARG_WEIGHTS, e->weights},
                              {DNNL_ARG_BIAS, book.bias},
                              {DNNL_ARG_DST, wrap(e->dst_md, scores)}});
      a = book.bf16_err;
      b = book.bf16_norm;
      c = gamma_n(dim_ + 2, u32);
    } else {
      // Symmetric int8 per frame: x' = xs * round(x / xs), xs = max|x| / 127.
      s.res8.resize(size_t(dim_) * frames);
      s.xscale.assign(size_t(frames), 0.0f);
      for (int d = 0; d < dim_; ++d)
        for (int64_t f = 0; f < frames; ++f)
          s.xscale[size_t(f)] = std::max(s.xscale[size_t(f)], std::abs(r[d * frames + f]));
      // Channel by channel (the residual is [dim, F]): contiguous reads, the [F, dim] int8 rows written strided.
      s.xinv.resize(size_t(frames));
      for (int64_t f = 0; f < frames; ++f) {
        const float amax = s.xscale[size_t(f)];
        s.xinv[size_t(f)] = amax > 0 ? 127.0f / amax : 0.0f;
        s.xscale[size_t(f)] = amax / 127.0f;
      }
      for (int d = 0; d < dim_; ++d) {
        const float* rd = r + d * frames;
        for (int64_t f = 0; f < frames; ++f) {
          const int8_t v = to_s8(rd[f], s.xinv[size_t(f)]);
          s.res8[size_t(f * dim_ + d)] = v;
          const double dv = double(rd[f]) - double(s.xscale[size_t(f)]) * v;
          fb[size_t(f)].rx_norm += dv * dv;
        }
      }
      s.iscores.resize(size_t(frames) * bins);
      run_primitive(e->prim, {{DNNL_ARG_SRC, memory(e->src_md, cpu_engine(), s.res8.data())},
                              {DNNL_ARG_WEIGHTS, e->weights},
                              {DNNL_ARG_DST, memory(e->dst_md, cpu_engine(), s.iscores.data())}});
      // s_j = (xs * es_j) * I_j + h_j in float32; I_j is exact (|I_j| <= 127^2 dim < 2^31).
      // The scores s_j = (xs * es_j) * I_j + h_j are made per frame below (int8_row_scores), in the pass that finds
      // their max; I_j is exact (|I_j| <= 127^2 dim < 2^31).
      a = book.q8_err;
      b = book.q8_norm;
      c = 8 * u32;  // float(I) (when 127^2 dim > 2^24), xs * es, the product, the bias add, h's own rounding
    }
    const float* cb = books_[q].data();
    const double* hn64 = book.half_norm64.data();
    const double slack = 1.0 + std::ldexp(1.0, -10);
    for (int64_t f = 0; f < frames; ++f) {
      const float* row = scores + f * bins;
      const double xn = std::sqrt(fb[size_t(f)].x_norm), rxn = std::sqrt(fb[size_t(f)].rx_norm);
      const double xqn = xn + rxn;  // >= |x'|
      const double bound =
          (a * xn + b * rxn + c * (xqn * std::max(book.max_norm, b) + book.max_half_norm)) * slack + 1e-300;
      // Candidates: fast score >= best - 2B, compared in float32 with the threshold rounded down (never excludes one).
      const float top = prec == VqPrecision::INT8 ? int8_row_scores(s.iscores.data() + f * bins, book.q8_scale.data(),
                                                                    half_norms_[size_t(q)].data(), s.xscale[size_t(f)],
                                                                    scores + f * bins, bins)
                                                  : row_max(row, bins);
      const float thr = std::nextafter(float(double(top) - 2 * bound), -std::numeric_limits<float>::infinity());
      s.cand.clear();
      collect_at_least(row, bins, thr, s.cand);
      int32_t best = s.cand.empty() ? static_cast<int32_t>(std::max_element(row, row + bins) - row)  // NaN input
                                    : s.cand[0];
      ++t_stats.frames;
      if (s.cand.size() > 1) {
        for (int d = 0; d < dim_; ++d) s.x64[size_t(d)] = r[d * frames + f];
        double best_score = -std::numeric_limits<double>::infinity();
        for (int32_t j : s.cand) {  // ascending j: a tie keeps the lowest index
          const double sc = exact_score(s.x64.data(), cb + int64_t(j) * dim_, dim_, hn64[j]);
          if (sc > best_score) {
            best_score = sc;
            best = j;
          }
        }
        ++t_stats.rescored;
        t_stats.candidates += int64_t(s.cand.size());
        t_stats.max_candidates = std::max<int64_t>(t_stats.max_candidates, int64_t(s.cand.size()));
      }
      codes[q * frames + f] = best;
    }
    // Residual update channel by channel (contiguous in frames; frame by frame it was a strided walk per frame).
    const int32_t* cq = codes + q * frames;
    float* rw = residual.data();
    for (int d = 0; d < dim_; ++d) {
      float* rd = rw + d * frames;
      for (int64_t f = 0; f < frames; ++f) rd[f] -= cb[int64_t(cq[f]) * dim_ + d];
      if (quantized) {
        float* qd = quantized + d * frames;
        for (int64_t f = 0; f < frames; ++f) qd[f] += cb[int64_t(cq[f]) * dim_ + d];
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
