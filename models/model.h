// The codec model: encoder -> (residual) VQ -> decoder, loaded from a release checkpoint or the
// engine's own model file. Immutable after loading; share one Model between sessions and threads.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "core/tokens.h"
#include "io/config.h"
#include "io/token_file.h"
#include "io/weights.h"

namespace wavtok {

// The model's parts (models/seanet.h, models/vocos.h, vq/rvq.h). This header stays free of their layers and of
// oneDNN: a user of the Model (codec/codec.h) does not compile them.
class SeanetEncoder;
class SeanetDecoder;
class ResidualVQ;
class VocosBackbone;
class IstftHead;

// Buffers that one caller (a stream, a thread) reuses across Model::decode_latents calls, so that decoding
// a steady sequence of same-sized windows does not allocate. Not shareable between threads.
struct DecodeScratch {
  DecodeScratch();
  ~DecodeScratch();
  DecodeScratch(DecodeScratch&&) noexcept;
  DecodeScratch& operator=(DecodeScratch&&) noexcept;
  // Floats the buffers hold (their capacity), for memory accounting.
  size_t capacity_floats() const;
  // The next window with a window start begins a new stream: no embedding rows are reused.
  void new_stream();

  Tensor hidden;
  // The iSTFT head's buffers and, for decode_latents_from with a window start, the embedding rows shared with the
  // previous window (models/model.cc).
  struct Buffers;
  std::unique_ptr<Buffers> buffers;
};

struct LoadOptions {
  std::string config_path;  // release config.yaml (WavTokenizer) or model YAML/JSON for plain state dicts
};

// Throws an Error naming `what` and the first bad sample (counted from first_index) when audio holds NaN or Inf:
// through the encoder's LSTM state one such sample would turn every later frame of a stream into garbage codes.
void check_finite_audio(const float* audio, int64_t n, const std::string& what, int64_t first_index = 0);

// Prefix of the SEANet encoder's weights in a model of this architecture ("feature_extractor.encodec.encoder." or
// "encoder.").
std::string encoder_weight_prefix(Arch arch);

class Model {
 public:
  // Accepts a PyTorch checkpoint (.ckpt/.th/.pt, with config.yaml beside it or given) or a .wtk model file.
  static std::shared_ptr<const Model> load(const std::string& path, const LoadOptions& opts = {});
  static std::shared_ptr<const Model> from_weights(ModelConfig config, WeightMap weights);
  ~Model();

  const ModelConfig& config() const { return cfg_; }
  const WeightMap& weights() const { return weights_; }
  uint64_t fingerprint() const { return fingerprint_; }
  // The model this one was adapted from (`wavtok adapt`), 0 for none: tokens of either decode with the other.
  uint64_t parent_fingerprint() const { return cfg_.parent_fingerprint; }
  int64_t parameter_count() const;
  int sample_rate() const { return cfg_.sample_rate; }
  int hop() const { return cfg_.hop(); }
  int max_n_q() const { return cfg_.quantizer.n_q; }
  int latent_dim() const { return cfg_.quantizer.dim; }
  const ResidualVQ& quantizer() const;
  // A causal WavTokenizer (ModelConfig::causal()): encode, quantize and decode run one frame per step, exactly as
  // its streaming sessions do (models/causal_stream.h), so one-shot and streamed results are bit-identical.
  bool frame_stepped() const { return cfg_.arch == Arch::WavTokenizer && cfg_.causal(); }
  // The backbone and head, for the causal decoder stream (WavTokenizer models).
  const VocosBackbone& backbone() const;
  const IstftHead& head() const;
  // The SEANet layers, for layer-wise streaming (codec/streaming.h); the decoder exists for EnCodec-format models.
  // The file asks for bf16 encoder convolutions (a recipe's `encoder_convs: bf16`; float32 on CPUs without bf16).
  bool encoder_bf16_convs() const;
  const SeanetEncoder& seanet_encoder() const;
  const SeanetDecoder& seanet_decoder() const;

  // audio at sample_rate -> pre-quantization latents [dim, frames]
  Tensor encode_latents(const float* audio, int64_t samples) const;
  Tokens quantize(const Tensor& latents, int n_q, Tensor* quantized = nullptr) const;
  Tensor dequantize(const Tokens& tokens) const;  // [dim, frames]
  // features/latents [dim, frames] -> audio (frames * hop samples)
  std::vector<float> decode_latents(const Tensor& features, int bandwidth_id = 0) const;
  // The same into `audio` (resized). A WavTokenizer input of at most decode_window_frames() frames is decoded in
  // the caller's scratch buffers (no allocation once they have seen the size); other inputs as above.
  void decode_latents(const Tensor& features, int bandwidth_id, std::vector<float>& audio,
                      DecodeScratch& scratch) const;
  // The same for a window of which only the audio of frames [need_from, need_to) is wanted (a streaming decoder's
  // block, and the lookahead audio it cross-fades with). WavTokenizer's layers after pos_net are local, so they and
  // the head skip the frames that cannot reach those; the wanted audio equals the whole window's. `audio` then
  // starts at the returned frame (<= need_from) and covers at least [need_from, need_to). Other models and windows
  // longer than decode_window_frames() decode whole (returns 0). With window_start >= 0, the window is frames
  // [window_start, window_start + frames) of one stream decoded with this scratch, whose consecutive windows
  // overlap: the embedding conv's rows the previous window shares are reused (scratch.embed; reset it, n = 0,
  // when a new stream starts).
  int64_t decode_latents_from(const Tensor& features, int bandwidth_id, int64_t need_from, int64_t need_to,
                              std::vector<float>& audio, DecodeScratch& scratch, int64_t window_start = -1) const;

  Tokens encode(const float* audio, int64_t samples, int n_q) const;
  std::vector<float> decode(const Tokens& tokens, int bandwidth_id = 0) const;

  // Long decodes run the backbone in windows of this many frames (attention memory is quadratic).
  int64_t decode_window_frames() const { return decode_window_.load(); }
  void set_decode_window_frames(int64_t w) const;  // a model-wide setting, safe to change between calls
  // Inputs longer than 8 chunks of this many frames are encoded chunk by chunk by the layer-wise streaming
  // encoder: the same latents as one pass (every conv and the LSTM carry their context across chunks; tokens
  // identical), with working memory bounded by the chunk instead of growing with the input (about 18 MiB per
  // second of audio at the released dims in one pass). 0: always one pass. A model-wide setting, safe to change
  // between calls.
  int64_t encode_chunk_frames() const { return encode_chunk_.load(); }
  void set_encode_chunk_frames(int64_t f) const;

 private:
  Model();
  void build();

  ModelConfig cfg_;
  WeightMap weights_;
  uint64_t fingerprint_ = 0;
  struct Graph;  // the encoder, quantizer, backbone, head and decoder (models/model.cc)
  std::unique_ptr<Graph> g_;
  mutable std::atomic<int64_t> decode_window_{4500};  // 60 s at 75 Hz
  mutable std::atomic<int64_t> encode_chunk_{150};    // 2 s at 75 Hz
  // Streams for chunked encoding, kept between calls (one per concurrent caller): fresh ones would page-fault
  // their buffers in again on every call. A stream is back at its initial state after a complete run.
  struct EncodeStream;
  mutable std::mutex encode_pool_mu_;
  mutable std::vector<std::unique_ptr<EncodeStream>> encode_pool_;
};

// Refuses tokens made by another model (fingerprint, rate, hop, n_q or out-of-range codes). Tokens of the model's
// parent or child (token_lineage, io/token_file.h) are accepted: the return value is then a warning naming both
// fingerprints, which the caller shows (the CLI prints it on stderr); empty for tokens of this very model or
// without fingerprint.
std::string check_tokens_for_model(const TokenFile& t, const Model& m, const std::string& path);
// A token file's header fields for tokens made by `m`.
TokenFile token_file_for(const Model& m, Tokens tokens);

// The weight holding codebook `level` of a model with this config ([bins, dim]).
std::string codebook_tensor_name(const ModelConfig& cfg, int level);

// Infers WavTokenizer/EnCodec dims that releases leave out of their configs from tensor shapes.
void infer_dims_from_weights(ModelConfig& cfg, const WeightMap& w);

}  // namespace wavtok
