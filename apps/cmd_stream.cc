// `wavtok stream-encode` / `stream-decode`: the streaming sessions driven from a file or stdin in
// real-time-sized chunks, with per-chunk latency statistics.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>

#include "apps/commands.h"
#include "codec/error.h"
#include "codec/streaming.h"
#include "codec/token_file.h"
#include "dsp/audio_io.h"

namespace wavtok {
namespace {

struct Stats {
  std::vector<double> ms;
  void print(const char* what, double audio_s) const {
    if (ms.empty()) return;
    std::vector<double> s = ms;
    std::sort(s.begin(), s.end());
    auto pct = [&](double p) { return s[std::min(s.size() - 1, size_t(p * (s.size() - 1) + 0.5))]; };
    double total = 0;
    for (double v : s) total += v;
    std::fprintf(stderr, "%s: %zu chunks, per-chunk ms p50 %.3f p95 %.3f p99 %.3f max %.3f; %.2fx real time\n", what,
                 s.size(), pct(0.5), pct(0.95), pct(0.99), s.back(), audio_s / (total / 1000.0));
  }
};

// Raw stdin: float32 little-endian mono at the model rate, or s16le with --s16.
std::vector<float> read_stdin_pcm(bool s16) {
  std::vector<float> out;
  if (s16) {
    int16_t v;
    while (std::fread(&v, 2, 1, stdin) == 1) out.push_back(v / 32768.0f);
  } else {
    float v;
    while (std::fread(&v, 4, 1, stdin) == 1) out.push_back(v);
  }
  return out;
}

}  // namespace

void register_stream_commands(CLI::App& app, Common& common, std::vector<Command>& out) {
  struct Opts {
    std::string in, out, preset = "default", fmt;
    double chunk_ms = 20;
    bool s16 = false;
  };
  auto e = std::make_shared<Opts>();
  auto* enc = app.add_subcommand("stream-encode", "encode audio in real-time-sized chunks through a streaming session");
  enc->add_option("input", e->in, "audio file, or - for raw mono PCM on stdin at the model rate (float32, or --s16)")
      ->required();
  enc->add_option("-o,--output", e->out, "token file (.wtt, .npy, .txt)")->required();
  enc->add_option("--chunk-ms", e->chunk_ms, "chunk size in milliseconds (default 20)");
  enc->add_option("--preset", e->preset, "low-latency | default | high-fidelity | a YAML file (configs/streaming/)");
  enc->add_option("--format", e->fmt, "token format: wtt|npy|txt");
  enc->add_flag("--s16", e->s16, "stdin PCM is s16le instead of float32");
  enc->add_option("-m,--model", common.model, "model (default: the built-in one)");
  enc->add_option("-t,--threads", common.threads, "CPU threads");
  enc->add_flag("-q,--quiet", common.quiet, "no statistics");
  out.push_back({enc, [e, &common]() {
    check_output(e->out, {e->in});
    auto model = load_model(common);
    StreamParams p = stream_preset(e->preset);
    std::vector<float> pcm = e->in == "-" ? read_stdin_pcm(e->s16) : read_audio(e->in, model->sample_rate()).samples;
    if (pcm.empty()) throw Error(e->in + ": no audio");
    StreamingEncoder session(model, p);
    const size_t chunk = std::max<size_t>(1, size_t(e->chunk_ms * model->sample_rate() / 1000.0));
    std::vector<int32_t> codes;
    Stats st;
    for (size_t i = 0; i < pcm.size(); i += chunk) {
      auto t0 = std::chrono::steady_clock::now();
      session.push(pcm.data() + i, int64_t(std::min(chunk, pcm.size() - i)), codes);
      st.ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    session.flush(codes);
    const int nq = session.n_q();
    TokenFile tf;
    tf.tokens.n_q = nq;
    tf.tokens.frames = int64_t(codes.size()) / nq;
    tf.tokens.codes.resize(codes.size());
    for (int64_t f = 0; f < tf.tokens.frames; ++f)  // frame-major -> [n_q][frames]
      for (int q = 0; q < nq; ++q) tf.tokens.codes[size_t(q) * tf.tokens.frames + f] = codes[size_t(f) * nq + q];
    tf.fingerprint = model->fingerprint();
    tf.sample_rate = model->sample_rate();
    tf.hop = model->hop();
    tf.bins = model->config().quantizer.bins;
    write_tokens(e->out, tf, token_format_for(e->out, e->fmt));
    if (!common.quiet) {
      st.print("stream-encode", double(pcm.size()) / model->sample_rate());
      std::fprintf(stderr, "algorithmic latency %.1f ms (lookahead %d + block %d frames) + chunk %.1f ms\n",
                   1000.0 * (p.lookahead_frames + p.block_frames) * model->hop() / model->sample_rate(),
                   p.lookahead_frames, p.block_frames, e->chunk_ms);
    }
    return 0;
  }});

  auto d = std::make_shared<Opts>();
  auto* dec = app.add_subcommand("stream-decode", "decode tokens frame by frame through a streaming session");
  dec->add_option("input", d->in, "token file")->required();
  dec->add_option("-o,--output", d->out, "audio file")->required();
  dec->add_option("--chunk-ms", d->chunk_ms, "tokens per push, in milliseconds of audio (default 20)");
  dec->add_option("--preset", d->preset, "low-latency | default | high-fidelity | a YAML file");
  dec->add_option("-m,--model", common.model, "model (default: the built-in one)");
  dec->add_option("-t,--threads", common.threads, "CPU threads");
  dec->add_flag("-q,--quiet", common.quiet, "no statistics");
  out.push_back({dec, [d, &common]() {
    check_output(d->out, {d->in});
    auto model = load_model(common);
    TokenFile tf = read_tokens(d->in);
    check_tokens_for_model(tf, *model, d->in);
    StreamingDecoder session(model, stream_preset(d->preset));
    const int nq = tf.tokens.n_q;
    std::vector<int32_t> fm(tf.tokens.codes.size());
    for (int64_t f = 0; f < tf.tokens.frames; ++f)
      for (int q = 0; q < nq; ++q) fm[size_t(f) * nq + q] = tf.tokens.codes[size_t(q) * tf.tokens.frames + f];
    const int64_t per = std::max<int64_t>(1, int64_t(d->chunk_ms * model->sample_rate() / 1000.0 / model->hop()));
    std::vector<float> audio;
    Stats st;
    for (int64_t f = 0; f < tf.tokens.frames; f += per) {
      auto t0 = std::chrono::steady_clock::now();
      session.push(fm.data() + f * nq, std::min(per, tf.tokens.frames - f), nq, audio);
      st.ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    session.flush(audio);
    write_audio(d->out, audio, model->sample_rate());
    if (!common.quiet) st.print("stream-decode", double(audio.size()) / model->sample_rate());
    return 0;
  }});
}

}  // namespace wavtok
