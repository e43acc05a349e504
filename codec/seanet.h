// SEANet encoder and decoder (EnCodec's convolutional stacks, used by WavTokenizer's encoder too).
// Activations are channels-last [T, C] (oneDNN's fast convolution kernels want nwc); latents enter and
// leave channels-first [dimension, frames].
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "codec/config.h"
#include "codec/layers.h"
#include "codec/weights.h"

namespace wavtok {

// Pads [T, C] along T as EnCodec's pad1d: reflect (with the small-input zero extension) or zeros.
void pad1d(const float* x, int C, int64_t T, int64_t left, int64_t right, bool reflect, Tensor& out);

// Conv1d with EnCodec's SConv1d padding: total k_eff - stride, split (non-causal) or all left (causal),
// plus extra right padding so the last window is full.
class SConv1d {
 public:
  SConv1d() = default;
  SConv1d(const WeightMap& w, const std::string& name, int cin, int cout, int kernel, int stride, int dilation,
          bool causal, bool reflect, Act post = Act::None);
  int64_t out_len(int64_t tin) const;
  void forward(const Tensor& x, Tensor& y, Tensor& scratch, bool accumulate = false) const;
  const Conv1d& conv() const { return conv_; }
  void keep_f32() { conv_.allow_bf16(false); }
  int64_t padding_total() const { return int64_t(conv_.dilation()) * (conv_.kernel() - 1) + 1 - conv_.stride(); }
  int64_t extra_padding(int64_t tin) const;
  bool causal() const { return causal_; }
  bool reflect() const { return reflect_; }

 private:
  Conv1d conv_;
  bool causal_ = false, reflect_ = true;
};

class SConvTranspose1d {
 public:
  SConvTranspose1d() = default;
  SConvTranspose1d(const WeightMap& w, const std::string& name, int cin, int cout, int kernel, int stride, bool causal);
  void forward(const Tensor& x, Tensor& y, Tensor& scratch) const;
  const ConvTranspose1d& conv() const { return conv_; }
  bool causal() const { return causal_; }

 private:
  ConvTranspose1d conv_;
  bool causal_ = false;
};

// out = shortcut(x) + conv1x1(elu(conv_k(elu(x))))
class SeanetResBlock {
 public:
  SeanetResBlock() = default;
  SeanetResBlock(const WeightMap& w, const std::string& name, int dim, const SeanetConfig& c, int dilation);
  void forward(const Tensor& x, Tensor& y, Tensor& t1, Tensor& t2, Tensor& t3) const;
  void keep_f32() {
    conv1_.keep_f32();
    conv2_.keep_f32();
    shortcut_.keep_f32();
  }

 private:
  friend class SeanetResStream;
  SConv1d conv1_, conv2_, shortcut_;
  bool true_skip_ = false;
};

// LSTM with skip connection, on [T, C].
class SLstm {
 public:
  SLstm() = default;
  SLstm(const WeightMap& w, const std::string& name, int dim, int layers);
  void forward(const Tensor& x, Tensor& y, Tensor& t1, Tensor& t2) const;
  // One chunk of a stream: y = lstm(x) + x with (h, c) carried in `state`.
  void forward_stream(const Tensor& x, Tensor& y, Lstm::State& state) const;
  Lstm::State initial_state() const { return lstm_.initial_state(); }

 private:
  Lstm lstm_;
};

class SeanetEncoder {
 public:
  SeanetEncoder() = default;
  SeanetEncoder(const WeightMap& w, const std::string& prefix, const SeanetConfig& c);
  // audio [T] -> latents [dimension, ceil(T / hop)]
  Tensor forward(const float* audio, int64_t T) const;
  int64_t frames(int64_t T) const;
  bool causal() const { return cfg_.causal; }

 private:
  friend class SeanetEncoderStream;
  struct Stage {
    std::vector<SeanetResBlock> res;
    SConv1d down;
  };
  SeanetConfig cfg_;
  SConv1d first_, last_;
  std::vector<Stage> stages_;
  SLstm lstm_;
  bool has_lstm_ = false;
};

class SeanetDecoder {
 public:
  SeanetDecoder() = default;
  SeanetDecoder(const WeightMap& w, const std::string& prefix, const SeanetConfig& c);
  // latents [dimension, F] -> audio [F * hop]
  Tensor forward(const float* latents, int64_t F) const;
  bool causal() const { return cfg_.causal; }

 private:
  friend class SeanetDecoderStream;
  struct Stage {
    SConvTranspose1d up;
    std::vector<SeanetResBlock> res;
  };
  SeanetConfig cfg_;
  SConv1d first_, last_;
  std::vector<Stage> stages_;
  SLstm lstm_;
  bool has_lstm_ = false;
};

// ---------------------------------------------------------------- streaming
// A SEANet encoder (causal or not: its non-causal padding only reaches a few samples ahead, and its LSTM is
// unidirectional) and a causal SEANet decoder run exactly chunk by chunk: every layer keeps the input it still needs and emits the outputs
// that no later input can change. Each run() takes n more input rows (channels-last [n, C]) and resizes y to the
// rows that became final; with `last` the stream ends: the one-shot path's end-of-input padding is applied, every
// remaining row is emitted and the state resets for a new stream. The concatenated outputs equal forward() on the
// whole input (to float rounding). Buffers grow to the largest chunk seen and are then reused.

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
