// Exact streaming of causal WavTokenizer models (ModelConfig::causal(), docs/STREAMING.md "Causal models").
//
// A causal model's every layer looks only at the past (the SEANet encoder's convolutions are padded on the left,
// the backbone's convolutions too, its attention is banded to [left, 0] and its norms are per channel or per
// frame), and its iSTFT head (n_fft <= 3 * hop) needs one frame ahead. So both halves run incrementally:
//
// - encoder: the layer-wise SEANet stream, fed exactly one hop of samples per step (plus the end-of-stream
//   remainder), then the codebook search one frame at a time;
// - decoder: CausalDecoderStream, one frame per step through every layer, each keeping only its left context (the
//   convolutions' last kernel - 1 input rows, the attention's last `left` keys and values), and the head's
//   streaming iSTFT.
//
// Model::encode / decode of a causal model run these very steps, so one-shot and streamed results are the same
// sequence of operations on the same numbers: bit-identical tokens and audio whatever the chunking (oneDNN may round
// a row differently when it is computed among other rows, so fixing the step is what makes that hold).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/tensor.h"
#include "dsp/istft.h"
#include "models/seanet_stream.h"
#include "models/vocos.h"
#include "vq/rvq.h"

namespace wavtok {

// Runs `stream` over audio[0, n) one hop at a time (n a multiple of hop unless `last`; with `last` the remainder
// goes in one final step that ends the stream) and appends the latents that became final to `rows`
// (channels-last [frames, dimension], frame-major). `part` is scratch. Returns the number of new frames.
int64_t encode_per_hop(SeanetEncoderStream& stream, const float* audio, int64_t n, bool last, int hop, Tensor& part,
                       std::vector<float>& rows);

// Codebook search one frame at a time: latents channels-first [dim, frames] -> codes [nq, frames] (and the chosen
// codewords, [dim, frames], when `quantized`). A frame's codes then do not depend on which frames it was searched
// with. `column` is scratch.
void quantize_per_frame(const ResidualVQ& vq, const float* latents, int64_t frames, int nq, int32_t* codes,
                        float* quantized, std::vector<float>& column);

// The causal Vocos backbone and iSTFT head, one frame at a time. The model's layers must outlive the stream.
class CausalDecoderStream {
 public:
  CausalDecoderStream(const VocosBackbone& backbone, const IstftHead& head, int bandwidth_id);
  // latents frame-major [n, input_channels]: appends the audio that became final to `out` (hop samples per frame,
  // less for the first, whose start the iSTFT trims); `last` ends the stream (the iSTFT tail) and resets it.
  // Returns the number of samples appended.
  int64_t run(const float* latents, int64_t n, bool last, std::vector<float>& out);
  // The same for channels-first latents [input_channels, frames] (the one-shot path).
  int64_t run_channels_first(const float* latents, int64_t frames, bool last, std::vector<float>& out);
  void reset();
  size_t capacity_bytes() const;

 private:
  struct Res {      // a pos_net ResnetBlock's two k3 convolutions: their last two input rows
    Tensor h1, h2;  // [3, dim]: rows t-2, t-1, t
  };
  void step(const float* latent, std::vector<float>& out);
  void resblock(const VocosBackbone::ResBlock& b, Res& r);
  void attention();

  const VocosBackbone* bb_;
  const IstftHead* head_;
  int bw_row_;
  int dim_, cin_, window_;       // window_: keys per query (attention_left + 1)
  Tensor in_hist_;               // [7, input_channels]: the embedding conv's last 7 input rows
  std::vector<Res> res_;         // pos_net's four ResnetBlocks
  Tensor keys_, values_;         // [window_, dim] rings of the attention's past keys and values
  int64_t t_ = 0;                // frames stepped in this stream
  std::vector<Tensor> dw_hist_;  // per ConvNeXt block: [7, dim], the depthwise conv's last 7 input rows
  Tensor x_, h_, q_, k_, v_, a_, z_, mid_, spec_;  // one frame's activations
  std::vector<float> scores_, re_, im_;
  IstftStream istft_;
};

}  // namespace wavtok
