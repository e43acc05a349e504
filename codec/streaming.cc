#include "codec/streaming.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <yaml-cpp/yaml.h>

#include "core/dnnl_util.h"
#include "core/error.h"
#include "models/causal_stream.h"
#include "models/models.h"

namespace wavtok {

StreamParams stream_default_params() { return StreamParams{}; }

StreamParams stream_preset(const std::string& name) {
  StreamParams p;
  if (name == "low-latency") return StreamParams{5, 60, 8, 0, 0, 0};
  if (name == "default") return p;
  if (name == "high-fidelity") return StreamParams{25, 300, 30, 0, 0, 0};
  if (name == "realtime") return StreamParams{1, 0, 0, 0, 0, 0, true};
  if (!std::filesystem::exists(name))
    throw Error("unknown streaming preset '" + name +
                "' (low-latency, default, high-fidelity, realtime, or a YAML file)");
  try {
    YAML::Node n = YAML::LoadFile(name);
    if (!n.IsMap()) throw Error(name + ": a streaming preset is a YAML mapping of its fields");
    for (const auto& kv : n) {
      const std::string k = kv.first.as<std::string>();
      if (k != "block_frames" && k != "left_frames" && k != "lookahead_frames" && k != "n_q" && k != "bandwidth_id" &&
          k != "crossfade_frames" && k != "require_causal")
        throw Error(name + ": unknown streaming preset field '" + k + "'");
    }
    if (n["block_frames"]) p.block_frames = n["block_frames"].as<int>();
    if (n["left_frames"]) p.left_frames = n["left_frames"].as<int>();
    if (n["lookahead_frames"]) p.lookahead_frames = n["lookahead_frames"].as<int>();
    if (n["n_q"]) p.n_q = n["n_q"].as<int>();
    if (n["bandwidth_id"]) p.bandwidth_id = n["bandwidth_id"].as<int>();
    if (n["crossfade_frames"]) p.crossfade_frames = n["crossfade_frames"].as<int>();
    if (n["require_causal"]) p.require_causal = n["require_causal"].as<bool>();
  } catch (const YAML::Exception& e) {
    throw Error(name + ": cannot read streaming preset: " + e.what());
  }
  return p;
}

namespace {

void check_params(const StreamParams& p) {
  if (p.block_frames < 1 || p.block_frames > 100000 || p.left_frames < 0 || p.left_frames > 100000 ||
      p.lookahead_frames < 0 || p.lookahead_frames > 100000 || p.crossfade_frames < 0 || p.crossfade_frames > 100000)
    throw Error("streaming parameters out of range (block_frames >= 1; left, lookahead and crossfade frames >= 0)");
}

bool exact_decoder(const Model& m) { return m.config().arch == Arch::EnCodec && m.config().decoder.causal; }

}  // namespace

bool streams_exactly(const Model& m) { return exact_decoder(m) || m.frame_stepped(); }

int64_t causal_latency_samples(const ModelConfig& c) {
  if (!c.causal())
    throw Error("this model looks ahead (not causal): its streaming latency depends on the preset's window");
  return c.arch == Arch::WavTokenizer ? c.hop() + c.vocos.istft_pad() : c.hop();
}

void check_stream_params(const Model& m, const StreamParams& p) {
  check_params(p);
  if (p.require_causal && !m.config().causal())
    throw Error(std::string("streaming: this preset (realtime: one-frame blocks, no lookahead) needs a causal model "
                            "(config causal: true, docs/STREAMING.md), and this ") +
                arch_name(m.config().arch) + " model looks ahead" +
                (m.config().arch == Arch::WavTokenizer ? " (its backbone is not causal)"
                                                       : " (its encoder or decoder is not causal)") +
                "; use low-latency, default or high-fidelity, or a causal model such as -m rt");
}

// ---------------------------------------------------------------- encoder

// Sessions stream through the model's own SEANet layers (the session's model_ keeps them alive): no second copy
// of the weights or of their oneDNN primitives.
struct StreamingEncoder::State {
  SeanetEncoderStream stream;
  std::vector<float> pending;       // samples not yet fed (less than a hop: no frame can complete with them)
  Tensor lat, lat_cf;               // [F, D] from the stream, [D, F] for the quantizer
  std::vector<int32_t> codes;       // [n_q, F]
  Tensor part;                      // a causal model's per-hop step output
  std::vector<float> rows, column;  // a causal model's latents of one push [F, D]; a frame's latent for the search
  explicit State(const SeanetEncoder& enc) : stream(enc) {}
};

StreamingEncoder::~StreamingEncoder() = default;
StreamingEncoder::StreamingEncoder(StreamingEncoder&&) noexcept = default;
StreamingEncoder& StreamingEncoder::operator=(StreamingEncoder&&) noexcept = default;

StreamingEncoder::StreamingEncoder(std::shared_ptr<const Model> model, const StreamParams& params)
    : model_(std::move(model)), p_(params) {
  check_stream_params(*model_, p_);
  n_q_ = p_.n_q > 0 ? p_.n_q : model_->max_n_q();
  if (n_q_ > model_->max_n_q())
    throw Error("streaming: n_q " + std::to_string(n_q_) + " exceeds the model's " + std::to_string(model_->max_n_q()));
  hop_ = model_->hop();
  st_ = std::make_unique<State>(model_->seanet_encoder());
  st_->pending.reserve(size_t(2 * hop_));
}

size_t StreamingEncoder::memory_bytes() const {
  return st_->stream.capacity_bytes() + (st_->pending.capacity() + peak_ + converted_.capacity()) * sizeof(float) +
         (st_->rows.capacity() + st_->column.capacity()) * sizeof(float) + st_->codes.capacity() * sizeof(int32_t);
}

// Between streams only: a resampler from `rate` to the model's (input) or from the model's to `rate` (output),
// or none at the model's own rate.
static void set_stream_rate(std::unique_ptr<StreamResampler>& rs, bool started, int rate, int model_rate, bool input,
                            const char* what) {
  if (started) throw Error(std::string(what) + ": a stream is under way (flush it first)");
  if (rate == model_rate) rs.reset();
  else rs = std::make_unique<StreamResampler>(input ? rate : model_rate, input ? model_rate : rate);  // checks the rate
}

void StreamingEncoder::set_input_rate(int rate) {
  set_stream_rate(rs_, started_, rate, model_->sample_rate(), true, "streaming encoder: set_input_rate");
}

int64_t StreamingEncoder::run(int64_t samples, bool last, std::vector<int32_t>& out) {
  State& x = *st_;
  const bool stepped = model_->frame_stepped();
  if (stepped) {  // one hop per step, as Model::encode_latents does for this model (bit-identical results)
    x.rows.clear();
    const int64_t F = encode_per_hop(x.stream, x.pending.data(), samples, last, hop_, x.part, x.rows);
    const int64_t D = model_->latent_dim();
    x.lat.resize({F, D});
    std::copy(x.rows.begin(), x.rows.end(), x.lat.data());
  } else {
    x.stream.run(x.pending.data(), samples, last, x.lat);
  }
  x.pending.erase(x.pending.begin(), x.pending.begin() + samples);
  const int64_t F = x.lat.dim(0), D = x.lat.dim(1);
  if (F == 0) return 0;
  x.lat_cf.resize({D, F});
  peak_ = std::max(peak_, size_t(x.lat.numel() + x.lat_cf.numel()));
  for (int64_t f = 0; f < F; ++f)
    for (int64_t d = 0; d < D; ++d) x.lat_cf[d * F + f] = x.lat[f * D + d];
  x.codes.resize(size_t(n_q_) * F);
  if (stepped) quantize_per_frame(model_->quantizer(), x.lat_cf.data(), F, n_q_, x.codes.data(), nullptr, x.column);
  else model_->quantizer().encode(x.lat_cf.data(), F, n_q_, x.codes.data());
  for (int64_t f = 0; f < F; ++f)
    for (int q = 0; q < n_q_; ++q) out.push_back(x.codes[size_t(q) * F + f]);
  next_frame_ += F;
  return F;
}

int64_t StreamingEncoder::push(const float* pcm, int64_t n, std::vector<int32_t>& out) {
  if (n < 0) throw Error("streaming encoder: negative sample count");
  if (n > 0 && !pcm) throw Error("streaming encoder: no samples given");
  check_finite_audio(pcm, n, "streaming encoder: this chunk");  // before any state changes: the stream goes on
  started_ = started_ || n > 0;
  if (rs_) {  // the model-rate samples this chunk completes
    converted_.clear();
    rs_->push(pcm, size_t(n), converted_);
    pcm = converted_.data();
    n = int64_t(converted_.size());
  }
  // Feed whole hops only: a frame needs its full hop anyway, and fewer, larger runs are cheaper.
  st_->pending.insert(st_->pending.end(), pcm, pcm + n);
  total_ += n;
  const int64_t feed = int64_t(st_->pending.size()) / hop_ * hop_;
  return feed > 0 ? run(feed, false, out) : 0;
}

int64_t StreamingEncoder::flush(std::vector<int32_t>& out) {
  if (rs_) {  // the input the resampler held back
    converted_.clear();
    rs_->flush(converted_);
    st_->pending.insert(st_->pending.end(), converted_.begin(), converted_.end());
    total_ += int64_t(converted_.size());
  }
  started_ = false;
  const int64_t emitted = total_ > 0 ? run(int64_t(st_->pending.size()), true, out) : 0;
  total_ = next_frame_ = 0;
  return emitted;
}

// ---------------------------------------------------------------- decoder

struct StreamingDecoder::Exact {
  SeanetDecoderStream stream;
  Tensor lat, audio;  // [F, D], [samples, 1]
  size_t peak = 0;    // largest lat + audio so far (floats)
  explicit Exact(const SeanetDecoder& dec) : stream(dec) {}
};

StreamingDecoder::~StreamingDecoder() = default;
StreamingDecoder::StreamingDecoder(StreamingDecoder&&) noexcept = default;
StreamingDecoder& StreamingDecoder::operator=(StreamingDecoder&&) noexcept = default;

StreamingDecoder::StreamingDecoder(std::shared_ptr<const Model> model, const StreamParams& params)
    : model_(std::move(model)), p_(params) {
  check_stream_params(*model_, p_);
  hop_ = model_->hop();
  dim_ = model_->latent_dim();
  if (exact_decoder(*model_)) {
    exact_ = std::make_unique<Exact>(model_->seanet_decoder());
    return;
  }
  if (model_->frame_stepped()) {  // causal WavTokenizer: frame by frame through every layer (causal_stream.h)
    causal_ = std::make_unique<CausalDecoderStream>(model_->backbone(), model_->head(), p_.bandwidth_id);
    return;
  }
  // A local backbone (VocosConfig::local) cannot use past context beyond its receptive field: trim the window to it,
  // which keeps the output and saves the compute.
  const VocosConfig& v = model_->config().vocos;
  if (model_->config().arch == Arch::WavTokenizer && v.local())
    p_.left_frames = std::min(p_.left_frames, v.local_left_context());
  feats_.reserve(size_t(p_.left_frames + p_.block_frames + p_.lookahead_frames + 2) * dim_);
}

size_t StreamingDecoder::memory_bytes() const {
  size_t b = (feats_.capacity() + tail_.capacity() + window_peak_ + lat_peak_ + audio_.capacity() +
              decoded_.capacity() + scratch_.capacity_floats()) *
                 sizeof(float) +
             codes_.capacity() * sizeof(int32_t);
  if (exact_) b += exact_->stream.capacity_bytes() + exact_->peak * sizeof(float);
  if (causal_) b += causal_->capacity_bytes() + causal_lat_.capacity() * sizeof(float);
  return b;
}

int64_t StreamingDecoder::run(int64_t end_frame, int64_t frames_to_emit, std::vector<float>& out) {
  const int64_t ws = std::max<int64_t>(0, next_frame_ - p_.left_frames);
  const int64_t len = end_frame - ws;
  window_.resize({dim_, len});
  window_peak_ = std::max(window_peak_, size_t(window_.numel()));
  for (int64_t f = 0; f < len; ++f) {
    const float* src = feats_.data() + (ws - feat_start_ + f) * dim_;
    for (int d = 0; d < dim_; ++d) window_[d * len + f] = src[d];
  }
  // Wanted: the block, and the lookahead audio the next block cross-fades from.
  const int64_t need = next_frame_ - ws;
  const int64_t from = model_->decode_latents_from(
      window_, p_.bandwidth_id, need, std::min(len, need + frames_to_emit + p_.crossfade_frames), audio_, scratch_, ws);
  const std::vector<float>& audio = audio_;
  const int64_t first = (next_frame_ - ws - from) * hop_, n = frames_to_emit * hop_;
  const size_t at = out.size();
  out.insert(out.end(), audio.begin() + first, audio.begin() + first + n);
  // Seam: fade from the previous window's audio for these samples (it saw them as lookahead) to this window's.
  const int64_t fade = std::min<int64_t>(int64_t(tail_.size()), n);
  for (int64_t i = 0; i < fade; ++i) {
    const float w = float(i + 1) / float(fade + 1);
    out[at + i] = (1 - w) * tail_[i] + w * out[at + i];
  }
  const int64_t after = first + n, keep = std::min<int64_t>(int64_t(audio.size()) - after, p_.crossfade_frames * hop_);
  tail_.assign(audio.begin() + after, audio.begin() + after + std::max<int64_t>(keep, 0));
  next_frame_ += frames_to_emit;
  const int64_t keep_from = std::max<int64_t>(0, next_frame_ - p_.left_frames);
  if (keep_from > feat_start_) {
    feats_.erase(feats_.begin(), feats_.begin() + (keep_from - feat_start_) * dim_);
    feat_start_ = keep_from;
  }
  return frames_to_emit * hop_;
}

void StreamingDecoder::set_output_rate(int rate) {
  set_stream_rate(rs_, started_, rate, model_->sample_rate(), false, "streaming decoder: set_output_rate");
}

int64_t StreamingDecoder::push(const int32_t* codes, int64_t frames, int n_q, std::vector<float>& out) {
  if (!rs_) {
    const int64_t n = push_model_rate(codes, frames, n_q, out);
    started_ = started_ || frames > 0;
    return n;
  }
  decoded_.clear();
  push_model_rate(codes, frames, n_q, decoded_);
  started_ = started_ || frames > 0;
  return int64_t(rs_->push(decoded_.data(), decoded_.size(), out));
}

int64_t StreamingDecoder::flush(std::vector<float>& out) {
  started_ = false;
  if (!rs_) return flush_model_rate(out);
  decoded_.clear();
  flush_model_rate(decoded_);
  const size_t n = rs_->push(decoded_.data(), decoded_.size(), out);
  return int64_t(n + rs_->flush(out));
}

int64_t StreamingDecoder::push_model_rate(const int32_t* codes, int64_t frames, int n_q, std::vector<float>& out) {
  if (frames < 0 || n_q < 1) throw Error("streaming decoder: bad frame or codebook count");
  if (frames > 0 && !codes) throw Error("streaming decoder: no codes given");
  if (n_q > model_->max_n_q())
    throw Error("streaming decoder: tokens use " + std::to_string(n_q) + " codebooks, the model has " +
                std::to_string(model_->max_n_q()));
  // Frame-major codes -> latents [dim, frames] via the model's codebooks.
  codes_.resize(size_t(n_q) * frames);
  for (int64_t f = 0; f < frames; ++f)
    for (int q = 0; q < n_q; ++q) codes_[size_t(q) * frames + f] = codes[f * n_q + q];
  lat_.resize({dim_, frames});
  lat_peak_ = std::max(lat_peak_, size_t(lat_.numel()));
  if (frames > 0) model_->quantizer().decode(codes_.data(), frames, n_q, lat_.data());
  if (exact_) {
    Exact& x = *exact_;
    x.lat.resize({frames, dim_});
    for (int64_t f = 0; f < frames; ++f)
      for (int d = 0; d < dim_; ++d) x.lat[f * dim_ + d] = lat_[d * frames + f];
    x.stream.run(x.lat.data(), frames, false, x.audio);
    x.peak = std::max(x.peak, size_t(x.lat.numel() + x.audio.numel()));
    out.insert(out.end(), x.audio.data(), x.audio.data() + x.audio.numel());
    total_ += frames;
    return x.audio.numel();
  }
  if (causal_) {
    causal_lat_.resize(size_t(frames) * dim_);
    for (int64_t f = 0; f < frames; ++f)
      for (int d = 0; d < dim_; ++d) causal_lat_[size_t(f * dim_ + d)] = lat_[d * frames + f];
    total_ += frames;
    return causal_->run(causal_lat_.data(), frames, false, out);
  }
  for (int64_t f = 0; f < frames; ++f)
    for (int d = 0; d < dim_; ++d) feats_.push_back(lat_[d * frames + f]);
  total_ += frames;
  int64_t emitted = 0;
  while (next_frame_ + p_.block_frames + p_.lookahead_frames <= total_)
    emitted += run(next_frame_ + p_.block_frames + p_.lookahead_frames, p_.block_frames, out);
  return emitted;
}

int64_t StreamingDecoder::flush_model_rate(std::vector<float>& out) {
  if (causal_) {
    total_ = 0;
    return causal_->run(nullptr, 0, true, out);
  }
  if (exact_) {
    exact_->stream.run(nullptr, 0, true, exact_->audio);
    exact_->peak = std::max(exact_->peak, size_t(exact_->audio.numel()));
    out.insert(out.end(), exact_->audio.data(), exact_->audio.data() + exact_->audio.numel());
    total_ = 0;
    return exact_->audio.numel();
  }
  int64_t emitted = 0;
  if (next_frame_ < total_) emitted = run(total_, total_ - next_frame_, out);
  feats_.clear();
  tail_.clear();
  scratch_.new_stream();  // the next stream's frames count from 0 again
  feat_start_ = total_ = next_frame_ = 0;
  return emitted;
}

// ---------------------------------------------------------------- warm-up

int64_t warm_up_streaming(const std::shared_ptr<const Model>& model, const StreamParams& params,
                          int64_t chunk_samples) {
  if (!model) throw Error("streaming warm-up: no model");
  if (chunk_samples < 1 || chunk_samples > int64_t(model->sample_rate()) * 3600)
    throw Error("streaming warm-up: chunk of " + std::to_string(chunk_samples) + " samples is out of range");
  const uint64_t before = shapes_created();
  StreamingEncoder enc(model, params);
  StreamingDecoder dec(model, params);
  const StreamParams& p = dec.params();  // left trimmed for a local backbone
  // Frames until the decoder's windows have their steady length (the left context is full), plus a few blocks.
  const int64_t frames = int64_t(p.left_frames) + p.lookahead_frames + 3 * int64_t(p.block_frames) + 8;
  const int64_t n = frames * model->hop();
  // A quiet two-tone signal with a little noise: nothing the layers treat specially (no exact zeros).
  std::vector<float> pcm(size_t(std::min(n, chunk_samples)));
  std::vector<int32_t> codes;
  std::vector<float> audio;
  uint32_t rng = 12345;
  for (int64_t at = 0; at < n; at += chunk_samples) {
    const int64_t len = std::min(chunk_samples, n - at);
    for (int64_t i = 0; i < len; ++i) {
      const double t = double(at + i) / model->sample_rate();
      rng = rng * 1664525u + 1013904223u;
      constexpr double kTwoPi = 6.283185307179586;
      pcm[size_t(i)] = float(0.1 * std::sin(kTwoPi * 220 * t) + 0.05 * std::sin(kTwoPi * 1375 * t) +
                             0.01 * (double(rng >> 8) / double(1 << 24) - 0.5));
    }
    codes.clear();
    const int64_t got = enc.push(pcm.data(), len, codes);
    if (got > 0) dec.push(codes.data(), got, enc.n_q(), audio);
    audio.clear();
  }
  return int64_t(shapes_created() - before);
}

}  // namespace wavtok
