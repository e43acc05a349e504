// SEANet encoder and decoder (EnCodec's convolutional stacks, used by WavTokenizer's encoder too).
// Activations are channels-last [T, C] (oneDNN's fast convolution kernels want nwc); latents enter and
// leave channels-first [dimension, frames].
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "io/config.h"
#include "io/weights.h"
#include "nn/layers.h"

namespace wavtok {

// Pads [T, C] along T as EnCodec's pad1d: reflect (with the small-input zero extension) or zeros.
// With `act` (ELU), the padded copy holds act(x) (act(0) = 0, so zero padding stays zero): the activation rides on
// the copy the padding makes anyway instead of a pass of its own.
void pad1d(const float* x, int C, int64_t T, int64_t left, int64_t right, bool reflect, Tensor& out,
           Act act = Act::None);

// Conv1d with EnCodec's SConv1d padding: total k_eff - stride, split (non-causal) or all left (causal),
// plus extra right padding so the last window is full.
class SConv1d {
 public:
  SConv1d() = default;
  SConv1d(const WeightMap& w, const std::string& name, int cin, int cout, int kernel, int stride, int dilation,
          bool causal, bool reflect, Act post = Act::None);
  int64_t out_len(int64_t tin) const;
  void forward(const Tensor& x, Tensor& y, Tensor& scratch, bool accumulate = false) const;
  // The same on act(x) (x unchanged), the activation applied while padding into `scratch`: bit for bit the
  // result of applying act to a copy of x first, one pass over the activations fewer.
  void forward_act(Act act, const Tensor& x, Tensor& y, Tensor& scratch, bool accumulate = false) const;
  const Conv1d& conv() const { return conv_; }
  void keep_f32() { conv_.allow_bf16(false); }
  void force_bf16() { conv_.force_bf16(true); }
  void allow_f64() { conv_.allow_f64(true); }
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
  void force_bf16() {
    conv1_.force_bf16();
    conv2_.force_bf16();
    shortcut_.force_bf16();
  }
  void allow_f64() {
    conv1_.allow_f64();
    conv2_.allow_f64();
    shortcut_.allow_f64();
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
  // The model file asks for bf16 convs (PREFIX + kEncoderConvBf16); they run bf16 where the CPU has it.
  bool bf16_convs() const { return bf16_convs_; }

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
  bool bf16_convs_ = false;
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

}  // namespace wavtok
