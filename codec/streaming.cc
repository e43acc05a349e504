#include "codec/streaming.h"

#include <algorithm>
#include <filesystem>

#include <yaml-cpp/yaml.h>

#include "codec/error.h"

namespace wavtok {

StreamParams stream_default_params() { return StreamParams{}; }

StreamParams stream_preset(const std::string& name) {
  StreamParams p;
  if (name == "low-latency") return StreamParams{5, 60, 4, 0, 0};
  if (name == "default") return p;
  if (name == "high-fidelity") return StreamParams{25, 300, 30, 0, 0};
  if (!std::filesystem::exists(name))
    throw Error("unknown streaming preset '" + name + "' (low-latency, default, high-fidelity, or a YAML file)");
  try {
    YAML::Node n = YAML::LoadFile(name);
    if (n["block_frames"]) p.block_frames = n["block_frames"].as<int>();
    if (n["left_frames"]) p.left_frames = n["left_frames"].as<int>();
    if (n["lookahead_frames"]) p.lookahead_frames = n["lookahead_frames"].as<int>();
    if (n["n_q"]) p.n_q = n["n_q"].as<int>();
    if (n["bandwidth_id"]) p.bandwidth_id = n["bandwidth_id"].as<int>();
  } catch (const YAML::Exception& e) {
    throw Error(name + ": cannot read streaming preset: " + e.what());
  }
  return p;
}

namespace {

void check_params(const StreamParams& p) {
  if (p.block_frames < 1 || p.block_frames > 100000 || p.left_frames < 0 || p.left_frames > 100000 ||
      p.lookahead_frames < 0 || p.lookahead_frames > 100000)
    throw Error("streaming parameters out of range (block >= 1, contexts >= 0)");
}

}  // namespace

// ---------------------------------------------------------------- encoder

StreamingEncoder::StreamingEncoder(std::shared_ptr<const Model> model, const StreamParams& params)
    : model_(std::move(model)), p_(params) {
  check_params(p_);
  n_q_ = p_.n_q > 0 ? p_.n_q : model_->max_n_q();
  if (n_q_ > model_->max_n_q())
    throw Error("streaming: n_q " + std::to_string(n_q_) + " exceeds the model's " + std::to_string(model_->max_n_q()));
  hop_ = model_->hop();
  buf_.reserve(size_t(p_.left_frames + p_.block_frames + p_.lookahead_frames + 2) * hop_);
}

size_t StreamingEncoder::memory_bytes() const { return buf_.capacity() * sizeof(float); }

int64_t StreamingEncoder::run(int64_t end_sample, int64_t frames_to_emit, std::vector<int32_t>& out) {
  const int64_t ws = std::max<int64_t>(0, next_frame_ - p_.left_frames) * hop_;  // window start sample
  if (ws < buf_start_) throw Error("streaming encoder: internal buffer underflow");
  const float* x = buf_.data() + (ws - buf_start_);
  Tensor lat = model_->encode_latents(x, end_sample - ws);
  const int64_t first = next_frame_ - ws / hop_;  // our frames inside the window
  frames_to_emit = std::min(frames_to_emit, lat.dim(1) - first);
  Tensor part({lat.dim(0), frames_to_emit});
  for (int64_t d = 0; d < lat.dim(0); ++d)
    std::copy(lat.data() + d * lat.dim(1) + first, lat.data() + d * lat.dim(1) + first + frames_to_emit,
              part.data() + d * frames_to_emit);
  Tokens t = model_->quantize(part, n_q_);
  for (int64_t f = 0; f < frames_to_emit; ++f)
    for (int q = 0; q < n_q_; ++q) out.push_back(t.codes[size_t(q) * frames_to_emit + f]);
  next_frame_ += frames_to_emit;
  // Keep only what later windows need: `left` frames before the next frame.
  const int64_t keep_from = std::max<int64_t>(0, next_frame_ - p_.left_frames) * hop_;
  if (keep_from > buf_start_) {
    buf_.erase(buf_.begin(), buf_.begin() + (keep_from - buf_start_));
    buf_start_ = keep_from;
  }
  return frames_to_emit;
}

int64_t StreamingEncoder::push(const float* pcm, int64_t n, std::vector<int32_t>& out) {
  if (n < 0) throw Error("streaming encoder: negative sample count");
  buf_.insert(buf_.end(), pcm, pcm + n);
  total_ += n;
  int64_t emitted = 0;
  // A block is final once its lookahead has arrived.
  while ((next_frame_ + p_.block_frames + p_.lookahead_frames) * hop_ <= total_)
    emitted += run((next_frame_ + p_.block_frames + p_.lookahead_frames) * hop_, p_.block_frames, out);
  return emitted;
}

int64_t StreamingEncoder::flush(std::vector<int32_t>& out) {
  int64_t emitted = 0;
  const int64_t frames_total = (total_ + hop_ - 1) / hop_;  // one-shot frame count: ceil(T / hop)
  if (next_frame_ < frames_total) emitted = run(total_, frames_total - next_frame_, out);
  buf_.clear();
  buf_start_ = total_ = next_frame_ = 0;
  return emitted;
}

// ---------------------------------------------------------------- decoder

StreamingDecoder::StreamingDecoder(std::shared_ptr<const Model> model, const StreamParams& params)
    : model_(std::move(model)), p_(params) {
  check_params(p_);
  hop_ = model_->hop();
  dim_ = model_->latent_dim();
  feats_.reserve(size_t(p_.left_frames + p_.block_frames + p_.lookahead_frames + 2) * dim_);
}

size_t StreamingDecoder::memory_bytes() const {
  return feats_.capacity() * sizeof(float) + size_t(std::max<int64_t>(window_.numel(), 0)) * sizeof(float);
}

int64_t StreamingDecoder::run(int64_t end_frame, int64_t frames_to_emit, std::vector<float>& out) {
  const int64_t ws = std::max<int64_t>(0, next_frame_ - p_.left_frames);
  const int64_t len = end_frame - ws;
  window_.resize({dim_, len});
  for (int64_t f = 0; f < len; ++f) {
    const float* src = feats_.data() + (ws - feat_start_ + f) * dim_;
    for (int d = 0; d < dim_; ++d) window_[d * len + f] = src[d];
  }
  std::vector<float> audio = model_->decode_latents(window_, p_.bandwidth_id);
  const int64_t first = (next_frame_ - ws) * hop_;
  out.insert(out.end(), audio.begin() + first, audio.begin() + first + frames_to_emit * hop_);
  next_frame_ += frames_to_emit;
  const int64_t keep_from = std::max<int64_t>(0, next_frame_ - p_.left_frames);
  if (keep_from > feat_start_) {
    feats_.erase(feats_.begin(), feats_.begin() + (keep_from - feat_start_) * dim_);
    feat_start_ = keep_from;
  }
  return frames_to_emit * hop_;
}

int64_t StreamingDecoder::push(const int32_t* codes, int64_t frames, int n_q, std::vector<float>& out) {
  if (frames < 0 || n_q < 1) throw Error("streaming decoder: bad frame or codebook count");
  // Frame-major codes -> latents via the model's codebooks.
  Tokens t;
  t.n_q = n_q;
  t.frames = frames;
  t.codes.resize(size_t(n_q) * frames);
  for (int64_t f = 0; f < frames; ++f)
    for (int q = 0; q < n_q; ++q) t.codes[size_t(q) * frames + f] = codes[f * n_q + q];
  Tensor lat = model_->dequantize(t);  // [dim, frames]
  for (int64_t f = 0; f < frames; ++f)
    for (int d = 0; d < dim_; ++d) feats_.push_back(lat[d * frames + f]);
  total_ += frames;
  int64_t emitted = 0;
  while (next_frame_ + p_.block_frames + p_.lookahead_frames <= total_)
    emitted += run(next_frame_ + p_.block_frames + p_.lookahead_frames, p_.block_frames, out);
  return emitted;
}

int64_t StreamingDecoder::flush(std::vector<float>& out) {
  int64_t emitted = 0;
  if (next_frame_ < total_) emitted = run(total_, total_ - next_frame_, out);
  feats_.clear();
  feat_start_ = total_ = next_frame_ = 0;
  return emitted;
}

}  // namespace wavtok
