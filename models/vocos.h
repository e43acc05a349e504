// Vocos backbone (WavTokenizer variant with pos_net attention) and the iSTFT head.
// Activations are channels-last [T, C].
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dsp/istft.h"
#include "io/config.h"
#include "io/weights.h"
#include "nn/layers.h"

namespace wavtok {

// Rows of the embedding conv's output (the only layer before pos_net's window-wide GroupNorm, so the same for a
// frame in every window whose 7 taps it fills) kept from one streaming window for the next, which overlaps it.
struct EmbedReuse {
  Tensor rows;        // [n, dim]: the output rows of stream frames [first, first + n)
  int64_t first = 0;  // stream frame of row 0
  int64_t n = 0;      // 0: nothing kept (a new stream)
};

class VocosBackbone {
 public:
  VocosBackbone() = default;
  VocosBackbone(const WeightMap& w, const std::string& prefix, const VocosConfig& c);
  // features channels-first [input_channels, F] -> hidden [F, dim]
  Tensor forward(const float* features, int64_t F, int bandwidth_id) const;
  // The same into `hidden` (resized; its buffer is reused when large enough), for the output rows
  // [want_from, want_to) only (clamped to [0, F); non-empty): `hidden` is those rows, equal to the same rows of the
  // whole output. pos_net (GroupNorm, attention) runs on every frame; the layers after it are local, so each
  // ConvNeXt block runs only on the frames that still reach the wanted rows, 3 fewer on each side per block.
  // With `reuse`, the window is frames [window_start, window_start + F) of one stream: embedding rows that `reuse`
  // holds are copied instead of computed, and `reuse` then holds this window's rows for the next window.
  void forward(const float* features, int64_t F, int bandwidth_id, Tensor& hidden, int64_t want_from = 0,
               int64_t want_to = INT64_MAX, EmbedReuse* reuse = nullptr, int64_t window_start = 0) const;
  int num_bandwidths() const { return c_.adanorm_num_embeddings > 0 ? c_.adanorm_num_embeddings : 1; }

 private:
  friend class CausalDecoderStream;  // models/causal_stream.h: the same layers one frame at a time
  struct ResBlock {
    Tensor n1w, n1b, n2w, n2b;
    Conv1d conv1, conv2;
  };
  struct Attn {
    Tensor nw, nb;
    Linear q, k, v, proj;
    AttentionCore core;
  };
  struct NormParams {
    Tensor scale, shift;  // [num_embeddings, dim] (AdaLayerNorm) or [1, dim]
  };
  struct Block {
    Conv1d dwconv;
    NormParams norm;
    Linear pw1, pw2;
    // Layer scale, applied to pw2's output: kept apart so pw2 shares the model's weight buffer (folding it would
    // need a scaled copy). Empty without layer scale, or when a quantized model file folded it into pw2.
    Tensor gamma;
    // pwconv1 and pwconv2 int8 (gamma folded): LayerNorm -> u8 codes -> pwconv1 (GELU, requantized in its
    // post-ops) -> u8 codes -> pwconv2, no float activation between them (docs/PTQ.md "int8 end to end").
    bool chain = false;
    Tensor dw_kc, dw_b;  // with chain: the depthwise weight tap-major [7, dim] and its bias, for the fused front
  };
  // pos_net's normalisation: GroupNorm over time, or the per-channel affine of a streamable backbone.
  void pos_norm(const float* x, int64_t T, const Tensor& w, const Tensor& b, float* y, bool silu) const;
  void resblock(const ResBlock& b, Tensor& x, Tensor& t1, Tensor& t2) const;
  void attention(const Attn& a, Tensor& x, Tensor& t1, Tensor& t2) const;
  NormParams load_norm(const WeightMap& w, const std::string& name) const;

  VocosConfig c_;
  Conv1d embed_;
  std::vector<ResBlock> pre_res_, post_res_;
  Attn attn_;
  Tensor pos_norm_w_, pos_norm_b_;
  NormParams norm_;
  std::vector<Block> blocks_;
  Tensor final_w_, final_b_;
  LayerNorm ln_;
};

class IstftHead {
 public:
  // Buffers of one caller (a stream or a thread), reused from call to call so that a steady stream of
  // same-sized windows does not allocate.
  struct Scratch {
    Tensor spec;                // [F, n_fft + 2]: log-magnitudes and phases
    std::vector<float> re, im;  // [F, bins]
    std::unique_ptr<Istft> istft;
  };

  IstftHead() = default;
  IstftHead(const WeightMap& w, const std::string& prefix, const VocosConfig& c);
  // hidden [F, dim] -> audio [F * hop]
  std::vector<float> forward(const float* hidden, int64_t F) const;
  // The same into `audio` (resized), with the caller's scratch.
  void forward(const float* hidden, int64_t F, std::vector<float>& audio, Scratch& scratch) const;
  // Frames of spectra (either side) that reach one frame's audio through the iSTFT overlap, with a frame to spare.
  int64_t reach() const { return (c_.n_fft + c_.hop - 1) / c_.hop + 1; }

 private:
  friend class CausalDecoderStream;
  VocosConfig c_;
  Linear out_;
};

}  // namespace wavtok
