// The SEANet encoder and a causal SEANet decoder run chunk by chunk (streaming); the layers: models/seanet.h.
#pragma once

#include <cstdint>
#include <vector>

#include "models/seanet.h"

namespace wavtok {

// ---------------------------------------------------------------- streaming
// A SEANet encoder (causal or not: its non-causal padding only reaches a few samples ahead, and its LSTM is
// unidirectional) and a causal SEANet decoder run exactly chunk by chunk: every layer keeps the input it still needs
// and emits the outputs that no later input can change. Each run() takes n more input rows (channels-last [n, C]) and
// resizes y to the rows that became final; with `last` the stream ends: the one-shot path's end-of-input padding is
// applied, every remaining row is emitted and the state resets for a new stream. The concatenated outputs equal
// forward() on the whole input (to float rounding). Buffers grow to the largest chunk seen and are then reused.

// One SConv1d, causal or not. The left padding is the one-shot one: zeros, or (reflect) x[L..1], which needs the
// first L + 1 inputs, so a reflect-padded stream starts emitting once L + 1 inputs arrived. A non-causal conv
// emits an output once its right context (half the padding) arrived; the end of the stream gets the one-shot
// right padding.
class SConv1dStream {
 public:
  SConv1dStream() = default;
  explicit SConv1dStream(const SConv1d* conv);
  void run(const float* x, int64_t n, bool last, Tensor& y);
  size_t capacity_bytes() const { return (buf_.capacity() + peak_) * sizeof(float); }

 private:
  void reset();
  const SConv1d* conv_ = nullptr;
  std::vector<float> buf_;  // padded input still needed, [rows, Cin]
  int64_t next_ = 0;        // row of buf_ where the next output's window starts
  int64_t seen_ = 0;        // raw input rows received
  bool started_ = false;    // left padding in place
  bool consumed_ = false;   // an output was emitted
  Tensor pad_;              // padding rows; one-shot padding of streams shorter than the pads
  size_t peak_ = 0;         // largest pad_ so far (Tensor keeps its capacity)
};

// One causal SConvTranspose1d: keeps the last ceil(K / stride) - 1 input rows, whose outputs overlap the next
// rows' (recomputing them is exact, unlike adding a stored tail). Emits stride rows per input row; the
// trailing K - stride rows are trimmed at the end as in the one-shot path.
class SConvTranspose1dStream {
 public:
  SConvTranspose1dStream() = default;
  explicit SConvTranspose1dStream(const SConvTranspose1d* conv);
  void run(const float* x, int64_t n, bool last, Tensor& y);
  size_t capacity_bytes() const { return (buf_.capacity() + peak_) * sizeof(float); }

 private:
  const SConvTranspose1d* conv_ = nullptr;
  std::vector<float> buf_;  // kept history + new rows, [rows, Cin]
  Tensor full_;
  size_t peak_ = 0;
};

class SeanetResStream {
 public:
  SeanetResStream() = default;
  explicit SeanetResStream(const SeanetResBlock* block);
  void run(const Tensor& x, bool last, Tensor& y);
  size_t capacity_bytes() const;

 private:
  const SeanetResBlock* b_ = nullptr;
  SConv1dStream c1_, c2_;
  std::vector<float> pending_;  // inputs whose residual branch is not out yet (it lags by the conv's left pad)
  Tensor t1_, t2_, t3_;
  size_t peak_ = 0;
};

class SeanetEncoderStream {
 public:
  // The encoder must outlive the stream.
  explicit SeanetEncoderStream(const SeanetEncoder& enc);
  // audio [n] -> latents channels-last [frames, dimension] that became final
  void run(const float* audio, int64_t n, bool last, Tensor& latents);
  size_t capacity_bytes() const;

 private:
  const SeanetEncoder* enc_;
  SConv1dStream first_, last_;
  std::vector<std::vector<SeanetResStream>> res_;
  std::vector<SConv1dStream> down_;
  Lstm::State lstm_state_;
  Tensor a_, b_;
  size_t peak_ = 0;
};

class SeanetDecoderStream {
 public:
  explicit SeanetDecoderStream(const SeanetDecoder& dec);
  // latents channels-last [n, dimension] -> audio [samples, 1] that became final
  void run(const float* latents, int64_t n, bool last, Tensor& audio);
  size_t capacity_bytes() const;

 private:
  const SeanetDecoder* dec_;
  SConv1dStream first_, last_;
  std::vector<SConvTranspose1dStream> up_;
  std::vector<std::vector<SeanetResStream>> res_;
  Lstm::State lstm_state_;
  Tensor a_, b_;
  size_t peak_ = 0;
};

}  // namespace wavtok
