// The SEANet layers run chunk by chunk (models/seanet_stream.h); the one-shot path is models/seanet.cc.
#include "models/seanet_stream.h"

#include <cmath>

#include "core/error.h"

namespace wavtok {
// ---------------------------------------------------------------- streaming

namespace {

void append_rows(std::vector<float>& buf, const float* x, int64_t n, int64_t C) { buf.insert(buf.end(), x, x + n * C); }

void drop_rows(std::vector<float>& buf, int64_t n, int64_t C) { buf.erase(buf.begin(), buf.begin() + n * C); }

}  // namespace

SConv1dStream::SConv1dStream(const SConv1d* conv) : conv_(conv) {}

void SConv1dStream::run(const float* x, int64_t n, bool last, Tensor& y) {
  const Conv1d& c = conv_->conv();
  const int64_t C = c.in_channels(), P = conv_->padding_total();
  const int64_t k = int64_t(c.dilation()) * (c.kernel() - 1) + 1, s = c.stride();
  // One-shot padding: left L, right R0 + extra (the extra depends on the stream's length, known at the end).
  const int64_t R0 = conv_->causal() ? 0 : P / 2, L = P - R0;
  append_rows(buf_, x, n, C);
  seen_ += n;
  if (!started_) {
    if (!conv_->reflect()) {
      buf_.insert(buf_.begin(), size_t(L * C), 0.0f);
      started_ = true;
    } else if (seen_ > L) {
      // Reflect: rows x[L], x[L-1], ..., x[1] before x[0].
      pad_.resize({L, C});
      for (int64_t i = 0; i < L; ++i)
        std::copy(buf_.begin() + (L - i) * C, buf_.begin() + (L - i + 1) * C, pad_.data() + i * C);
      buf_.insert(buf_.begin(), pad_.data(), pad_.data() + L * C);
      started_ = true;
    }
  }
  if (last) {
    const int64_t R = R0 + (seen_ > 0 ? conv_->extra_padding(seen_) : 0);
    if (conv_->reflect() && seen_ <= std::max(L, R)) {
      // Too short for reflect padding: the one-shot rule (zero extension) on everything received. Nothing was
      // consumed yet: a first window needs more than max(L, R) inputs.
      if (consumed_) throw Error("streaming: convolution state inconsistent at the end of a short stream");
      y.resize({0, c.out_channels()});
      if (seen_ > 0) {
        pad1d(buf_.data() + (started_ ? L * C : 0), int(C), seen_, L, R, true, pad_);
        y.resize({c.out_len(pad_.dim(0)), c.out_channels()});
        if (y.dim(0) > 0) c.forward(pad_.data(), pad_.dim(0), y.data());
      }
      reset();
      return;
    }
    // End of stream: the right padding of the one-shot path (reflect of the last inputs, or zeros).
    const int64_t rows = int64_t(buf_.size()) / C;
    if (conv_->reflect() && rows < R + 1) throw Error("streaming: convolution history too short");
    pad_.resize({R, C});
    for (int64_t i = 0; i < R; ++i) {
      if (conv_->reflect())
        std::copy(buf_.begin() + (rows - 2 - i) * C, buf_.begin() + (rows - 1 - i) * C, pad_.data() + i * C);
      else std::fill(pad_.data() + i * C, pad_.data() + (i + 1) * C, 0.0f);
    }
    buf_.insert(buf_.end(), pad_.data(), pad_.data() + R * C);
  }
  const int64_t rows = int64_t(buf_.size()) / C, avail = rows - next_;
  const int64_t m = started_ && avail >= k ? (avail - k) / s + 1 : 0;
  y.resize({m, c.out_channels()});
  if (m > 0) {
    c.forward(buf_.data() + next_ * C, (m - 1) * s + k, y.data());
    next_ += m * s;
    consumed_ = true;
    // Keep the rows later windows read, and at least R0 + stride inputs for the end's reflect padding.
    const int64_t drop = std::min(next_, rows - (R0 + s));
    if (drop > 0) {
      drop_rows(buf_, drop, C);
      next_ -= drop;
    }
  }
  peak_ = std::max(peak_, size_t(pad_.numel()));
  if (last) reset();
}

void SConv1dStream::reset() {
  buf_.clear();
  seen_ = next_ = 0;
  started_ = consumed_ = false;
}

SConvTranspose1dStream::SConvTranspose1dStream(const SConvTranspose1d* conv) : conv_(conv) {
  if (!conv->causal()) throw Error("streaming: SConvTranspose1dStream needs a causal transposed convolution");
}

void SConvTranspose1dStream::run(const float* x, int64_t n, bool last, Tensor& y) {
  const ConvTranspose1d& c = conv_->conv();
  const int64_t Cin = c.in_channels(), Cout = c.out_channels(), s = c.stride(), k = c.kernel();
  const int64_t ctx = (k + s - 1) / s - 1;
  const int64_t h = int64_t(buf_.size()) / Cin;  // kept rows
  y.resize({n * s, Cout});
  if (n > 0) {
    append_rows(buf_, x, n, Cin);
    full_.resize({c.out_len(h + n), Cout});
    c.forward(buf_.data(), h + n, full_.data());
    // Rows of the new inputs: their outputs [h * s, (h + n) * s) have every contribution now.
    std::copy(full_.data() + h * s * Cout, full_.data() + (h + n) * s * Cout, y.data());
    const int64_t rows = h + n, keep = std::min(ctx, rows);
    drop_rows(buf_, rows - keep, Cin);
  }
  peak_ = std::max(peak_, size_t(full_.numel()));
  if (last) buf_.clear();  // the one-shot path trims the K - stride rows past the end
}

SeanetResStream::SeanetResStream(const SeanetResBlock* block) : b_(block), c1_(&block->conv1_), c2_(&block->conv2_) {
  if (!block->true_skip_ && block->shortcut_.conv().kernel() != 1)
    throw Error("streaming: residual shortcut with a kernel wider than 1 is not supported");
}

size_t SeanetResStream::capacity_bytes() const {
  return c1_.capacity_bytes() + c2_.capacity_bytes() + (pending_.capacity() + peak_) * sizeof(float);
}

void SeanetResStream::run(const Tensor& x, bool last, Tensor& y) {
  const int64_t n = x.dim(0), C = x.dim(1);
  append_rows(pending_, x.data(), n, C);
  t1_ = x;
  apply_act(Act::Elu, t1_.data(), t1_.numel());
  c1_.run(t1_.data(), n, last, t2_);  // ELU fused
  c2_.run(t2_.data(), t2_.dim(0), last, t3_);
  const int64_t m = t3_.dim(0);  // branch rows out; pair them with the oldest pending inputs
  y.resize({m, C});
  if (m > 0) {
    if (b_->true_skip_) std::copy(pending_.data(), pending_.data() + m * C, y.data());
    else b_->shortcut_.conv().forward(pending_.data(), m, y.data());
    for (int64_t i = 0; i < m * C; ++i) y[i] += t3_[i];
    drop_rows(pending_, m, C);
  }
  peak_ = std::max(peak_, size_t(t1_.numel() + t2_.numel() + t3_.numel()));
  if (last && !pending_.empty()) throw Error("streaming: residual branch did not catch up at the end");
}

SeanetEncoderStream::SeanetEncoderStream(const SeanetEncoder& enc)
    : enc_(&enc), first_(&enc.first_), last_(&enc.last_) {
  for (const auto& st : enc.stages_) {
    res_.emplace_back();
    for (const auto& rb : st.res) res_.back().emplace_back(&rb);
    down_.emplace_back(&st.down);
  }
  if (enc.has_lstm_) lstm_state_ = enc.lstm_.initial_state();
}

size_t SeanetEncoderStream::capacity_bytes() const {
  size_t b = first_.capacity_bytes() + last_.capacity_bytes() + peak_ * sizeof(float);
  for (const auto& st : res_)
    for (const auto& r : st) b += r.capacity_bytes();
  for (const auto& d : down_) b += d.capacity_bytes();
  return b;
}

void SeanetEncoderStream::run(const float* audio, int64_t n, bool last, Tensor& latents) {
  first_.run(audio, n, last, a_);
  for (size_t i = 0; i < down_.size(); ++i) {
    for (auto& r : res_[i]) {
      r.run(a_, last, b_);
      std::swap(a_, b_);
    }
    apply_act(Act::Elu, a_.data(), a_.numel());
    down_[i].run(a_.data(), a_.dim(0), last, b_);
    std::swap(a_, b_);
  }
  if (enc_->has_lstm_) {
    enc_->lstm_.forward_stream(a_, b_, lstm_state_);
    std::swap(a_, b_);
    if (last) lstm_state_ = enc_->lstm_.initial_state();
  }
  apply_act(Act::Elu, a_.data(), a_.numel());
  peak_ = std::max(peak_, size_t(a_.numel() + b_.numel()));
  last_.run(a_.data(), a_.dim(0), last, latents);
}

SeanetDecoderStream::SeanetDecoderStream(const SeanetDecoder& dec)
    : dec_(&dec), first_(&dec.first_), last_(&dec.last_) {
  if (!dec.causal()) throw Error("streaming: exact streaming needs a causal SEANet decoder");
  for (const auto& st : dec.stages_) {
    up_.emplace_back(&st.up);
    res_.emplace_back();
    for (const auto& rb : st.res) res_.back().emplace_back(&rb);
  }
  if (dec.has_lstm_) lstm_state_ = dec.lstm_.initial_state();
}

size_t SeanetDecoderStream::capacity_bytes() const {
  size_t b = first_.capacity_bytes() + last_.capacity_bytes() + peak_ * sizeof(float);
  for (const auto& st : res_)
    for (const auto& r : st) b += r.capacity_bytes();
  for (const auto& u : up_) b += u.capacity_bytes();
  return b;
}

void SeanetDecoderStream::run(const float* latents, int64_t n, bool last, Tensor& audio) {
  first_.run(latents, n, last, a_);
  if (dec_->has_lstm_) {
    dec_->lstm_.forward_stream(a_, b_, lstm_state_);
    std::swap(a_, b_);
    if (last) lstm_state_ = dec_->lstm_.initial_state();
  }
  for (size_t i = 0; i < up_.size(); ++i) {
    apply_act(Act::Elu, a_.data(), a_.numel());
    up_[i].run(a_.data(), a_.dim(0), last, b_);
    std::swap(a_, b_);
    for (auto& r : res_[i]) {
      r.run(a_, last, b_);
      std::swap(a_, b_);
    }
  }
  apply_act(Act::Elu, a_.data(), a_.numel());
  peak_ = std::max(peak_, size_t(a_.numel() + b_.numel()));
  last_.run(a_.data(), a_.dim(0), last, audio);
}

}  // namespace wavtok
