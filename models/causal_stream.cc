#include "models/causal_stream.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "quant/log_quant.h"

namespace wavtok {

int64_t encode_per_hop(SeanetEncoderStream& stream, const float* audio, int64_t n, bool last, int hop, Tensor& part,
                       std::vector<float>& rows) {
  if (!last && n % hop) throw Error("causal encoder: a step must be whole hops until the end of the stream");
  int64_t frames = 0;
  int64_t at = 0;
  auto take = [&] {
    if (part.numel() > 0) rows.insert(rows.end(), part.data(), part.data() + part.numel());
    frames += part.numel() > 0 ? part.dim(0) : 0;
  };
  for (; n - at >= hop; at += hop) {
    stream.run(audio + at, hop, false, part);
    take();
  }
  if (last) {
    stream.run(audio + at, n - at, true, part);
    take();
  }
  return frames;
}

void quantize_per_frame(const ResidualVQ& vq, const float* latents, int64_t frames, int nq, int32_t* codes,
                        float* quantized, std::vector<float>& column) {
  const int64_t D = vq.dim();
  column.resize(size_t(2 * D));
  thread_local std::vector<int32_t> c;  // one frame's codes; grows once, so a stream's pushes do not allocate
  c.resize(size_t(nq));
  for (int64_t f = 0; f < frames; ++f) {
    for (int64_t d = 0; d < D; ++d) column[size_t(d)] = latents[d * frames + f];
    vq.encode(column.data(), 1, nq, c.data(), quantized ? column.data() + D : nullptr);
    for (int q = 0; q < nq; ++q) codes[q * frames + f] = c[size_t(q)];
    if (quantized)
      for (int64_t d = 0; d < D; ++d) quantized[d * frames + f] = column[size_t(D + d)];
  }
}

// ---------------------------------------------------------------- decoder

namespace {

// Shifts a [rows, C] history up by one row and returns the last row to fill.
float* push_row(Tensor& hist) {
  const int64_t R = hist.dim(0), C = hist.dim(1);
  std::memmove(hist.data(), hist.data() + C, size_t((R - 1) * C) * sizeof(float));
  return hist.data() + (R - 1) * C;
}

}  // namespace

CausalDecoderStream::CausalDecoderStream(const VocosBackbone& backbone, const IstftHead& head, int bandwidth_id)
    : bb_(&backbone), head_(&head), istft_(head.c_.n_fft, head.c_.hop) {
  const VocosConfig& c = backbone.c_;
  if (!c.causal) throw Error("causal decoder stream: the backbone is not causal");
  if (bandwidth_id < 0 || bandwidth_id >= backbone.num_bandwidths())
    throw Error("bandwidth id " + std::to_string(bandwidth_id) + " out of range 0.." +
                std::to_string(backbone.num_bandwidths() - 1));
  bw_row_ = c.adanorm_num_embeddings > 0 ? bandwidth_id : 0;
  dim_ = c.dim;
  cin_ = c.input_channels;
  window_ = c.attention_left + 1;
  in_hist_ = Tensor({7, cin_});
  res_.resize(4);
  for (auto& r : res_) {
    r.h1 = Tensor({3, dim_});
    r.h2 = Tensor({3, dim_});
  }
  keys_ = Tensor({window_, dim_});
  values_ = Tensor({window_, dim_});
  dw_hist_.assign(backbone.blocks_.size(), Tensor({7, dim_}));
  for (Tensor* t : {&x_, &h_, &q_, &k_, &v_, &a_, &z_}) t->resize({1, dim_});
  mid_.resize({1, c.intermediate_dim});
  spec_.resize({1, c.n_fft + 2});
  scores_.resize(size_t(window_));
  re_.resize(size_t(c.n_fft / 2 + 1));
  im_.resize(size_t(c.n_fft / 2 + 1));
  reset();
}

void CausalDecoderStream::reset() {
  auto zero = [](Tensor& t) { std::fill(t.data(), t.data() + t.numel(), 0.0f); };
  zero(in_hist_);  // the convolutions' left zero padding
  for (auto& r : res_) {
    zero(r.h1);
    zero(r.h2);
  }
  for (auto& h : dw_hist_) zero(h);
  t_ = 0;
  istft_.reset();
}

size_t CausalDecoderStream::capacity_bytes() const {
  size_t n = in_hist_.numel() + keys_.numel() + values_.numel() + mid_.numel() + spec_.numel() + 7 * dim_ +
             scores_.capacity() + re_.capacity() + im_.capacity();
  for (const auto& r : res_) n += r.h1.numel() + r.h2.numel();
  for (const auto& h : dw_hist_) n += h.numel();
  return n * sizeof(float) + 4 * size_t(head_->c_.n_fft) * sizeof(float);  // + the iSTFT's buffers
}

void CausalDecoderStream::resblock(const VocosBackbone::ResBlock& b, Res& r) {
  // x += conv2(silu(norm2(conv1(silu(norm1(x)))))), each k3 conv over its input rows t-2 .. t.
  bb_->pos_norm(x_.data(), 1, b.n1w, b.n1b, push_row(r.h1), true);
  b.conv1.forward(r.h1.data(), 3, h_.data());
  bb_->pos_norm(h_.data(), 1, b.n2w, b.n2b, push_row(r.h2), true);
  b.conv2.forward(r.h2.data(), 3, x_.data(), /*accumulate=*/true);
}

void CausalDecoderStream::attention() {
  const VocosBackbone::Attn& at = bb_->attn_;
  bb_->pos_norm(x_.data(), 1, at.nw, at.nb, a_.data(), false);
  at.q.forward(a_.data(), 1, q_.data());
  // Keys and values of frames t - left .. t: a ring indexed by frame % window.
  const int64_t slot = t_ % window_;
  at.k.forward(a_.data(), 1, keys_.data() + slot * dim_);
  at.v.forward(a_.data(), 1, values_.data() + slot * dim_);
  const int64_t n = std::min<int64_t>(t_ + 1, window_);  // keys that exist (frame 0 has only itself)
  const float scale = 1.0f / std::sqrt(float(dim_));
  float top = -INFINITY;
  for (int64_t j = 0; j < n; ++j) {  // key frame t - j
    const float* kr = keys_.data() + ((t_ - j) % window_) * dim_;
    float s = 0;
    for (int d = 0; d < dim_; ++d) s += q_[d] * kr[d];
    scores_[size_t(j)] = s * scale;
    top = std::max(top, scores_[size_t(j)]);
  }
  float sum = 0;
  for (int64_t j = 0; j < n; ++j) sum += scores_[size_t(j)] = std::exp(scores_[size_t(j)] - top);
  for (int64_t j = 0; j < n; ++j) scores_[size_t(j)] /= sum;
  // An int8 model's post-softmax quantizer (docs/PTQ.md), as AttentionCore applies it before P.V.
  if (const quant::LogQParams* pq = at.core.prob_quant())
    quant::fake_quant(std::span<const float>(scores_.data(), size_t(n)), std::span<float>(scores_.data(), size_t(n)),
                      *pq);
  std::fill(z_.data(), z_.data() + dim_, 0.0f);
  for (int64_t j = 0; j < n; ++j) {
    const float w = scores_[size_t(j)];
    const float* vr = values_.data() + ((t_ - j) % window_) * dim_;
    for (int d = 0; d < dim_; ++d) z_[d] += w * vr[d];
  }
  at.proj.forward(z_.data(), 1, x_.data(), /*accumulate=*/true);
}

void CausalDecoderStream::step(const float* latent, std::vector<float>& out) {
  const VocosBackbone& bb = *bb_;
  const int D = dim_;
  std::copy(latent, latent + cin_, push_row(in_hist_));
  bb.embed_.forward(in_hist_.data(), 7, x_.data());
  for (size_t i = 0; i < 2; ++i) resblock(bb.pre_res_[i], res_[i]);
  attention();
  for (size_t i = 0; i < 2; ++i) resblock(bb.post_res_[i], res_[i + 2]);
  bb.pos_norm(x_.data(), 1, bb.pos_norm_w_, bb.pos_norm_b_, x_.data(), false);
  const int64_t row = bw_row_;
  bb.ln_.forward(x_.data(), 1, x_.data(), bb.norm_.scale.data() + row * D, bb.norm_.shift.data() + row * D);
  for (size_t i = 0; i < bb.blocks_.size(); ++i) {
    const auto& blk = bb.blocks_[i];
    std::copy(x_.data(), x_.data() + D, push_row(dw_hist_[i]));
    blk.dwconv.forward(dw_hist_[i].data(), 7, h_.data());
    bb.ln_.forward(h_.data(), 1, h_.data(), blk.norm.scale.data() + row * D, blk.norm.shift.data() + row * D);
    blk.pw1.forward(h_.data(), 1, mid_.data());
    if (blk.gamma.empty()) {
      blk.pw2.forward(mid_.data(), 1, x_.data(), /*accumulate=*/true);
      continue;
    }
    blk.pw2.forward(mid_.data(), 1, z_.data());
    for (int d = 0; d < D; ++d) x_[d] += blk.gamma[d] * z_[d];
  }
  bb.ln_.forward(x_.data(), 1, x_.data(), bb.final_w_.data(), bb.final_b_.data());
  // The head: log-magnitudes and phases -> one spectrum frame -> the iSTFT's samples that became final.
  const int bins = head_->c_.n_fft / 2 + 1;
  head_->out_.forward(x_.data(), 1, spec_.data());
  magphase_to_complex(spec_.data(), spec_.data() + bins, bins, re_.data(), im_.data());
  const size_t at = out.size();
  out.resize(at + size_t(istft_.hop()));
  out.resize(at + size_t(istft_.push(re_.data(), im_.data(), 1, out.data() + at)));
  ++t_;
}

int64_t CausalDecoderStream::run(const float* latents, int64_t n, bool last, std::vector<float>& out) {
  const size_t before = out.size();
  for (int64_t f = 0; f < n; ++f) step(latents + f * cin_, out);
  if (last) {
    const size_t at = out.size();
    out.resize(at + size_t(istft_.n_fft()));  // at least what finish() writes
    out.resize(at + size_t(istft_.finish(out.data() + at)));
    reset();
  }
  return int64_t(out.size() - before);
}

int64_t CausalDecoderStream::run_channels_first(const float* latents, int64_t frames, bool last,
                                                std::vector<float>& out) {
  const size_t before = out.size();
  std::vector<float> col(static_cast<size_t>(cin_));
  for (int64_t f = 0; f < frames; ++f) {
    for (int c = 0; c < cin_; ++c) col[size_t(c)] = latents[c * frames + f];
    run(col.data(), 1, false, out);
  }
  if (last) run(nullptr, 0, true, out);
  return int64_t(out.size() - before);
}

}  // namespace wavtok
