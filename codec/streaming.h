// Streaming tokenizer sessions: PCM in, tokens out as soon as they are final (StreamingEncoder), and tokens in,
// PCM out (StreamingDecoder). A session owns all its state and shares one immutable Model with any number of
// other sessions, on any threads.
//
// Encoder (both model kinds): the SEANet encoder streams exactly, layer by layer: every convolution keeps the
// input it still needs (left context, the remainder of strided convs, and for non-causal convs the right
// context they wait for), the LSTM carries (h, c), and flush() applies the one-shot path's end padding. The codes
// equal one-shot encoding. A frame is final once its hop of samples (plus, for WavTokenizer's non-causal
// encoder, the convolutions' right context) arrived; the reflect padding at the start delays the first frames.
//
// Decoder, EnCodec-format models (causal SEANet decoder): exact the same way (transposed convolutions keep their
// overlapping inputs); the audio equals one-shot decoding to float rounding. The window parameters do not apply.
//
// Decoder, WavTokenizer: windowed recomputation. The Vocos backbone is not causal (GroupNorm and attention over
// the whole input), so a session emits `block` frames at a time by running the one-shot decoder on a window of
// `left` frames of past context, the block, and `lookahead` frames of future context, and keeps the block's
// part. Output length and frame positions are the one-shot ones; memory is bounded by the window; the
// result approaches one-shot decoding as the contexts grow (measured figures per preset in docs/STREAMING.md).
// A streamable backbone (VocosConfig::local: per-channel affines instead of GroupNorm, banded attention; the
// shipped default model) has a finite receptive field, so its windows decode like one-shot once the lookahead
// covers the part of it that matters; `left` is then trimmed to the receptive field.
// Algorithmic latency = (lookahead + block) frames; compute = (left + block + lookahead) / block times one-shot.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dsp/stream_resampler.h"
#include "models/model.h"

namespace wavtok {

class CausalDecoderStream;  // models/causal_stream.h

struct StreamParams {
  int block_frames = 10;      // frames emitted per window run
  int left_frames = 150;      // past context per window
  int lookahead_frames = 15;  // future context per window (latency)
  int n_q = 0;                // codebooks to emit (0: all)
  int bandwidth_id = 0;       // WavTokenizer AdaLayerNorm id for decoding
  int crossfade_frames = 0;   // windowed decoding: linear fade over this much of each block from the previous
                              // window's lookahead audio (measured: no gain, see docs/STREAMING.md)
  bool require_causal =
      false;  // refuse models that look ahead (the "realtime" preset: its latency needs a causal model)
};

StreamParams stream_default_params();
// True when decoding streams exactly too (EnCodec-format models with a causal decoder, causal WavTokenizer models);
// encoding always does.
bool streams_exactly(const Model& m);
// Presets: "low-latency", "default", "high-fidelity", "realtime" (one-frame blocks, no lookahead, causal models
// only), or a YAML file with the fields above.
StreamParams stream_preset(const std::string& name_or_path);
// Algorithmic latency of a causal model's stream (ModelConfig::causal()), in samples at the model rate: the most
// input samples between a sample's arrival and the departure of its reconstruction, compute and chunking aside.
// WavTokenizer: hop + (n_fft - hop) / 2 (a frame is final once its hop arrived; output sample i lies at iSTFT
// position i + (n_fft - hop) / 2 and needs every frame overlapping it); EnCodec: hop. Throws for other models.
int64_t causal_latency_samples(const ModelConfig& c);
// Throws when `p` cannot run with `m` (require_causal and a model that looks ahead), with a message that says why.
void check_stream_params(const Model& m, const StreamParams& p);

// Runs a throwaway encoder and decoder session with these parameters over a synthetic signal pushed in pieces of
// `chunk_samples`, long enough for the decoder's windows to reach their full size. The layers create and cache
// (per model, for all sessions) the oneDNN primitives of every shape such a stream uses, so the first chunks of
// real streams run at warm speed instead of paying for primitive creation. The end of a stream (flush) may still
// meet new shapes. Returns the number of shapes created.
int64_t warm_up_streaming(const std::shared_ptr<const Model>& model, const StreamParams& params, int64_t chunk_samples);

class StreamingEncoder {
 public:
  StreamingEncoder(std::shared_ptr<const Model> model, const StreamParams& params);
  ~StreamingEncoder();
  StreamingEncoder(StreamingEncoder&&) noexcept;
  StreamingEncoder& operator=(StreamingEncoder&&) noexcept;
  // Takes any number of samples at the model's rate; appends newly final codes to `out` (frame-major:
  // for each new frame, n_q codes). Returns the number of new frames. A chunk holding NaN or Inf throws an
  // Error naming the sample and changes nothing: the stream goes on with the next chunk.
  int64_t push(const float* pcm, int64_t n, std::vector<int32_t>& out);
  // Ends the stream: emits the remaining frames and resets for a new stream.
  int64_t flush(std::vector<int32_t>& out);
  // Optional, between streams (before the first push, or after flush): the sample rate of the PCM push() will be
  // given. Another rate than the model's is resampled as it streams (dsp/stream_resampler.h, libsoxr at the
  // quality whole files are resampled with). Throws for a rate out of range or while a stream is under way.
  void set_input_rate(int rate);
  // Audio the resampler holds back now, in milliseconds: latency on top of the encoder's (0 at the model's rate).
  double input_delay_ms() const { return rs_ ? rs_->delay_ms() : 0.0; }
  int n_q() const { return n_q_; }
  int64_t frames_emitted() const { return next_frame_; }
  size_t memory_bytes() const;  // capacity of the session's buffers

 private:
  struct State;  // the SEANet stream
  int64_t run(int64_t samples, bool last, std::vector<int32_t>& out);
  std::shared_ptr<const Model> model_;
  StreamParams p_;
  std::unique_ptr<State> st_;
  int n_q_;
  int hop_;
  int64_t total_ = 0;                    // samples received
  int64_t next_frame_ = 0;               // frames emitted
  size_t peak_ = 0;                      // largest latent tensors so far (floats)
  std::unique_ptr<StreamResampler> rs_;  // input rate -> model rate, when they differ
  std::vector<float> converted_;         // one push's resampled input
  bool started_ = false;                 // a push since the last flush
};

class StreamingDecoder {
 public:
  StreamingDecoder(std::shared_ptr<const Model> model, const StreamParams& params);
  // Takes whole frames of codes (frame-major, n_q codes each); appends newly final samples to `out`.
  // Returns the number of new samples.
  int64_t push(const int32_t* codes, int64_t frames, int n_q, std::vector<float>& out);
  // Ends the stream: emits the remaining samples (frames * hop in all) and resets for a new stream.
  int64_t flush(std::vector<float>& out);
  // Optional, between streams: the sample rate of the PCM push() and flush() give out (default the model's);
  // another rate is resampled as it streams, and the counts they return are of output samples.
  void set_output_rate(int rate);
  double output_delay_ms() const { return rs_ ? rs_->delay_ms() : 0.0; }  // held back by the resampler
  size_t memory_bytes() const;                                            // capacity of the session's buffers
  bool exact() const { return exact_ != nullptr || causal_ != nullptr; }  // layer-wise exact rather than windowed
  // The parameters in use: left_frames is trimmed to the receptive field of a local backbone (VocosConfig::local).
  const StreamParams& params() const { return p_; }
  ~StreamingDecoder();
  StreamingDecoder(StreamingDecoder&&) noexcept;
  StreamingDecoder& operator=(StreamingDecoder&&) noexcept;

 private:
  struct Exact;
  std::unique_ptr<CausalDecoderStream> causal_;  // causal WavTokenizer models (models/causal_stream.h)
  std::vector<float> causal_lat_;                // one push's latents, frame-major
  int64_t run(int64_t end_frame, int64_t frames_to_emit, std::vector<float>& out);
  int64_t push_model_rate(const int32_t* codes, int64_t frames, int n_q, std::vector<float>& out);
  int64_t flush_model_rate(std::vector<float>& out);
  std::unique_ptr<StreamResampler> rs_;  // model rate -> output rate, when they differ
  std::vector<float> decoded_;           // one push's audio at the model rate, before the resampler
  bool started_ = false;
  std::shared_ptr<const Model> model_;
  std::unique_ptr<Exact> exact_;
  StreamParams p_;
  int hop_, dim_;
  std::vector<float> feats_;  // frame-major latents of frames [feat_start_, ...), dim_ each
  int64_t feat_start_ = 0;
  int64_t total_ = 0;                      // frames received
  int64_t next_frame_ = 0;                 // first frame whose audio is not yet emitted
  Tensor window_;                          // reused [dim, frames] window
  DecodeScratch scratch_;                  // the window decode's buffers, reused
  std::vector<float> audio_;               // the window's audio
  std::vector<float> tail_;                // previous window's audio past its block, for the cross-fade
  std::vector<int32_t> codes_;             // [n_q, frames] of one push
  Tensor lat_;                             // [dim, frames] of one push
  size_t window_peak_ = 0, lat_peak_ = 0;  // largest sizes so far (Tensors keep their capacity)
};

}  // namespace wavtok
