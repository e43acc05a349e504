// `wavtok stream-encode` / `stream-decode`: the streaming sessions driven from a file or stdin in
// real-time-sized chunks, with per-chunk latency statistics.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "apps/commands.h"
#include "codec/streaming.h"
#include "core/error.h"
#include "dsp/audio_io.h"
#include "io/token_file.h"
#include "models/models.h"

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

// Raw PCM from stdin: float32 little-endian, or s16le with --s16; `channels` interleaved, averaged to mono as
// audio files are. Reads up to `max` frames (blocking until they arrive or the input ends) into `out`; returns how
// many frames were read (a partial frame at the very end is dropped).
size_t read_stdin_pcm(bool s16, int channels, size_t max, std::vector<float>& out, std::vector<float>& raw,
                      std::vector<int16_t>& raw16) {
  const size_t want = max * size_t(channels);
  raw.resize(want);
  size_t got;
  if (s16) {
    raw16.resize(want);
    got = std::fread(raw16.data(), sizeof(int16_t), want, stdin);
    for (size_t i = 0; i < got; ++i) raw[i] = raw16[i] / 32768.0f;
  } else {
    got = std::fread(raw.data(), sizeof(float), want, stdin);
  }
  if (std::ferror(stdin)) throw Error("stdin: read error");
  const size_t frames = got / size_t(channels);
  out.resize(frames);
  for (size_t f = 0; f < frames; ++f) {
    float sum = 0;
    for (int c = 0; c < channels; ++c) sum += raw[f * size_t(channels) + size_t(c)];
    out[f] = channels == 1 ? sum : sum / float(channels);
  }
  return frames;
}

// Raw PCM to stdout, flushed so a pipe's reader gets it now: float32 little-endian, or s16le with --s16.
void write_stdout_pcm(const std::vector<float>& audio, bool s16, std::vector<int16_t>& raw16) {
  if (audio.empty()) return;
  size_t wrote;
  if (s16) {
    raw16.resize(audio.size());
    for (size_t i = 0; i < audio.size(); ++i)
      raw16[i] = static_cast<int16_t>(std::lrint(std::clamp(audio[i] * 32768.0f, -32768.0f, 32767.0f)));
    wrote = std::fwrite(raw16.data(), sizeof(int16_t), raw16.size(), stdout);
  } else {
    wrote = std::fwrite(audio.data(), sizeof(float), audio.size(), stdout);
  }
  if (wrote != audio.size() || std::fflush(stdout) != 0) throw Error("stdout: cannot write the audio");
}

// Token frames to stdout as frame lines (io/token_file.h), flushed.
void write_stdout_tokens(const std::vector<int32_t>& codes, int n_q) {
  std::string text;
  for (size_t f = 0; f + size_t(n_q) <= codes.size(); f += size_t(n_q))
    text += token_line(codes.data() + f, n_q) + "\n";
  if (std::fputs(text.c_str(), stdout) < 0 || std::fflush(stdout) != 0) throw Error("stdout: cannot write the tokens");
}

// One line of stdin without its newline; false at the end of the input. A line longer than any frame line can be
// (hostile or binary input) is an error instead of unbounded memory.
bool read_stdin_line(std::string& line, const std::string& where) {
  constexpr size_t kMaxLine = 64 * 1024;
  line.clear();
  int c;
  while ((c = std::getc(stdin)) != EOF && c != '\n') {
    if (line.size() == kMaxLine) throw Error(where + ": line longer than 64 KiB (not frame lines?)");
    line.push_back(static_cast<char>(c));
  }
  if (std::ferror(stdin)) throw Error("stdin: read error");
  return c != EOF || !line.empty();
}

void warm_up(const std::shared_ptr<const Model>& model, const StreamParams& p, int64_t chunk_samples, bool quiet) {
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t made = warm_up_streaming(model, p, chunk_samples);
  if (!quiet)
    std::fprintf(stderr, "warm-up: %lld primitive shapes in %.0f ms\n", static_cast<long long>(made),
                 std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
}

}  // namespace

void register_stream_commands(CLI::App& app, Common& common, std::vector<Command>& out) {
  struct Opts {
    std::string in, out, preset = "default", fmt;
    double chunk_ms = 20, bandwidth = 0;
    int n_q = 0, bandwidth_id = -1, rate = 0, channels = 1;
    bool s16 = false, warm_up = false;
  };
  constexpr const char* kWarmUpHelp =
      "before the first chunk, create the oneDNN primitives this stream will use (a throwaway stream over a "
      "synthetic signal), so that chunks run at warm speed from the start: for live input";
  auto e = std::make_shared<Opts>();
  auto* enc = app.add_subcommand("stream-encode", "encode audio in real-time-sized chunks through a streaming session");
  enc->add_option("input", e->in,
                  "audio file (any rate; resampled), or - for raw PCM on stdin (float32, or --s16; mono at the model "
                  "rate unless --rate / --channels say otherwise)")
      ->required();
  enc->add_option("-o,--output", e->out,
                  "token file (.wtt, .npy, .txt), or - for frame lines on stdout as they are final (one frame per "
                  "line: its n_q codes)")
      ->required();
  enc->add_option("--chunk-ms", e->chunk_ms, "chunk size in milliseconds (default 20; at least one sample)")
      ->check(number_in(0, 3.6e6, true));
  enc->add_option(
      "--preset", e->preset,
      "low-latency | default | high-fidelity | realtime (causal models) | a YAML file (configs/streaming/)");
  enc->add_option("--format", e->fmt, "token format: wtt|npy|txt");
  enc->add_flag("--s16", e->s16, "stdin PCM is s16le instead of float32");
  enc->add_option("--rate", e->rate, "stdin PCM sample rate in Hz (default: the model's); resampled as it streams")
      ->check(CLI::Range(1, kMaxSampleRate));
  enc->add_option("--channels", e->channels, "stdin PCM channels, interleaved; averaged to mono (default 1)")
      ->check(CLI::Range(1, kMaxChannels));
  enc->add_flag("--warm-up", e->warm_up, kWarmUpHelp);
  enc->add_option("-b,--bandwidth", e->bandwidth, "bandwidth in kbps (selects the number of codebooks)")
      ->check(bandwidth_kbps());
  enc->add_option("-n,--n-q", e->n_q, "number of codebooks (default: the preset's, else all)")->check(n_q_range());
  add_common_options(enc, common, "no statistics");
  add_strict_option(enc, common);
  out.push_back(
      {enc, [e, &common]() {
         const bool to_stdout = e->out == "-";
         if (to_stdout && !e->fmt.empty())
           throw Error("stream-encode -o -: stdout carries frame lines; --format is for files");
         if ((e->s16 || e->rate > 0 || e->channels != 1) && e->in != "-")
           throw Error(
               "stream-encode --s16, --rate and --channels describe raw PCM on stdin (input -); a file says its own");
         if (!to_stdout) check_output(e->out, {e->in});
         auto model = load_model(common);
         StreamParams p = stream_preset(e->preset);
         if (e->bandwidth > 0 || e->n_q > 0) p.n_q = n_q_from(*model, e->bandwidth, e->n_q);
         // A file is read whole and fed in chunks; stdin is fed chunk by chunk as it arrives.
         const bool from_stdin = e->in == "-";
         std::vector<float> file_pcm, chunk_buf, raw;
         std::vector<int16_t> raw16;
         if (!from_stdin) file_pcm = read_input_audio(e->in, model->sample_rate(), common).samples;
         StreamingEncoder session(model, p);
         // stdin at another rate is resampled by the session; the chunk is counted in the input's samples.
         const int in_rate = from_stdin && e->rate > 0 ? e->rate : model->sample_rate();
         session.set_input_rate(in_rate);
         const size_t chunk = size_t(std::llround(e->chunk_ms * in_rate / 1000.0));
         if (chunk < 1)
           throw Error("--chunk-ms " + std::to_string(e->chunk_ms) + " is less than one sample at " +
                       std::to_string(in_rate) + " Hz");
         // stdin chunks are buffered whole: bound them (64 MiB of float samples).
         constexpr size_t kMaxStdinChunkValues = size_t(1) << 24;
         if (from_stdin && chunk * size_t(e->channels) > kMaxStdinChunkValues)
           throw Error("--chunk-ms " + std::to_string(e->chunk_ms) + ": a stdin chunk may hold at most " +
                       std::to_string(kMaxStdinChunkValues) + " samples (all channels), this one " +
                       std::to_string(chunk * size_t(e->channels)));
         if (e->warm_up)
           warm_up(model, p, std::max<int64_t>(1, std::llround(e->chunk_ms * model->sample_rate() / 1000.0)),
                   common.quiet);
         std::vector<int32_t> codes;
         Stats st;
         int64_t received = 0, worst_lag = 0, frames_out = 0;  // received: samples at the input rate
         double resample_ms = 0;                               // the most the session's resampler held back
         for (size_t pos = 0;;) {
           const float* x;
           size_t n;
           if (from_stdin) {
             n = read_stdin_pcm(e->s16, e->channels, chunk, chunk_buf, raw, raw16);
             x = chunk_buf.data();
             if (n > 0) check_finite_audio(x, int64_t(n), "stdin", received);  // files are checked when read
           } else {
             n = std::min(chunk, file_pcm.size() - pos);
             x = file_pcm.data() + pos;
             pos += n;
           }
           if (n == 0) break;
           auto t0 = std::chrono::steady_clock::now();
           frames_out += session.push(x, int64_t(n), codes);
           resample_ms = std::max(resample_ms, session.input_delay_ms());
           st.ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
           received += int64_t(n);
           if (to_stdout) {
             write_stdout_tokens(codes, session.n_q());
             codes.clear();
           }
           // Frames complete in the input but not yet final (right context, start-up padding), past the first second;
           // in model-rate samples the encoder has (the resampler's hold-back is reported apart).
           const int64_t at_model = int64_t(double(received) * model->sample_rate() / in_rate -
                                            session.input_delay_ms() * model->sample_rate() / 1000.0);
           if (at_model > model->sample_rate())
             worst_lag = std::max(worst_lag, at_model / model->hop() - session.frames_emitted());
         }
         if (received == 0) throw Error(e->in + ": no audio");
         frames_out += session.flush(codes);
         const int nq = session.n_q();
         if (to_stdout) {
           write_stdout_tokens(codes, nq);
           if (!common.quiet) {
             st.print("stream-encode", double(received) / in_rate);
             std::fprintf(stderr, "%lld frames written to stdout\n", (long long)frames_out);
           }
           return 0;
         }
         TokenFile tf;
         tf.tokens.n_q = nq;
         tf.tokens.frames = int64_t(codes.size()) / nq;
         tf.tokens.codes.resize(codes.size());
         for (int64_t f = 0; f < tf.tokens.frames; ++f)  // frame-major -> [n_q][frames]
           for (int q = 0; q < nq; ++q) tf.tokens.codes[size_t(q) * tf.tokens.frames + f] = codes[size_t(f) * nq + q];
         tf = token_file_for(*model, std::move(tf.tokens));
         write_tokens(e->out, tf, token_format_for(e->out, e->fmt));
         if (!common.quiet) {
           st.print("stream-encode", double(received) / in_rate);
           std::fprintf(stderr,
                        "%lld frames; codes trail the input by at most %lld frame(s) (%.1f ms) + the chunk (%.1f ms)",
                        (long long)tf.tokens.frames, (long long)worst_lag,
                        1000.0 * double(worst_lag) * model->hop() / model->sample_rate(), e->chunk_ms);
           if (in_rate != model->sample_rate())
             std::fprintf(stderr, " + resampling %d -> %d Hz (%.1f ms)", in_rate, model->sample_rate(), resample_ms);
           std::fprintf(stderr, "\n");
         }
         return 0;
       }});

  auto d = std::make_shared<Opts>();
  auto* dec = app.add_subcommand("stream-decode", "decode tokens frame by frame through a streaming session");
  dec->add_option("input", d->in,
                  "token file, or - for frame lines on stdin as they arrive (one frame per line: its n_q codes, as "
                  "stream-encode -o - writes them)")
      ->required();
  dec->add_option("-o,--output", d->out,
                  "audio file, or - for raw mono PCM on stdout as it is decoded (float32, or --s16)")
      ->required();
  dec->add_option("--chunk-ms", d->chunk_ms,
                  "tokens per push, in milliseconds of audio (default 20; rounded down to whole frames, at least one)")
      ->check(number_in(0, 3.6e6, true));
  dec->add_option("--preset", d->preset,
                  "low-latency | default | high-fidelity | realtime (causal models) | a YAML file");
  dec->add_option("--bandwidth-id", d->bandwidth_id, "WavTokenizer AdaLayerNorm bandwidth id (default: the preset's)")
      ->check(CLI::NonNegativeNumber);
  dec->add_flag("--s16", d->s16, "stdout PCM is s16le instead of float32");
  dec->add_option("--rate", d->rate, "output sample rate in Hz (default: the model's); resampled as it streams")
      ->check(CLI::Range(1, kMaxSampleRate));
  dec->add_flag("--warm-up", d->warm_up, kWarmUpHelp);
  add_common_options(dec, common, "no statistics");
  out.push_back(
      {dec, [d, &common]() {
         const bool from_stdin = d->in == "-", to_stdout = d->out == "-";
         if (d->s16 && !to_stdout) throw Error("stream-decode --s16 sets the PCM format on stdout (-o -)");
         if (!to_stdout) check_output(d->out, {d->in});
         auto model = load_model(common);
         TokenFile tf;
         if (!from_stdin) {
           tf = read_tokens(d->in);
           const std::string warning = check_tokens_for_model(tf, *model, d->in);
           if (!warning.empty()) std::fprintf(stderr, "wavtok: warning: %s\n", warning.c_str());
         }
         StreamParams sp = stream_preset(d->preset);
         if (d->bandwidth_id >= 0) sp.bandwidth_id = d->bandwidth_id;
         StreamingDecoder session(model, sp);
         const int64_t per = std::max<int64_t>(1, int64_t(d->chunk_ms * model->sample_rate() / 1000.0 / model->hop()));
         if (d->warm_up) warm_up(model, sp, per * model->hop(), common.quiet);
         // Output at another rate is resampled by the session.
         const int out_rate = d->rate > 0 ? d->rate : model->sample_rate();
         session.set_output_rate(out_rate);
         std::vector<float> audio, file_audio;
         std::vector<int16_t> raw16;
         int64_t samples = 0;  // at the output rate
         double resample_ms = 0;
         Stats st;
         // The session's new audio to stdout or to the file's buffer.
         auto deliver = [&]() {
           samples += int64_t(audio.size());
           if (to_stdout) write_stdout_pcm(audio, d->s16, raw16);
           else file_audio.insert(file_audio.end(), audio.begin(), audio.end());
           audio.clear();
         };
         auto push = [&](const int32_t* codes, int64_t frames, int nq) {
           auto t0 = std::chrono::steady_clock::now();
           session.push(codes, frames, nq, audio);
           st.ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
           resample_ms = std::max(resample_ms, session.output_delay_ms());
           deliver();
         };
         if (!from_stdin) {
           const int nq = tf.tokens.n_q;
           std::vector<int32_t> fm(tf.tokens.codes.size());
           for (int64_t f = 0; f < tf.tokens.frames; ++f)
             for (int q = 0; q < nq; ++q) fm[size_t(f) * nq + q] = tf.tokens.codes[size_t(q) * tf.tokens.frames + f];
           for (int64_t f = 0; f < tf.tokens.frames; f += per)
             push(fm.data() + f * nq, std::min(per, tf.tokens.frames - f), nq);
         } else {
           // Frame lines as they arrive; `per` frames per push. Every line must hold the first line's codebook count.
           const int bins = model->config().quantizer.bins;
           std::vector<int32_t> buf;
           std::string line;
           int nq = 0;
           int64_t frames = 0, line_no = 0, pending = 0;
           while (true) {
             const std::string where = "stdin line " + std::to_string(++line_no);
             if (!read_stdin_line(line, where)) break;
             const int n = parse_token_line(line, bins, buf, where, model->max_n_q());
             if (n == 0) continue;
             if (nq == 0) nq = n;
             if (n != nq)
               throw Error(where + ": " + std::to_string(n) + " codes, the stream's first frame had " +
                           std::to_string(nq));
             ++frames;
             if (++pending == per) {
               push(buf.data(), pending, nq);
               buf.clear();
               pending = 0;
             }
           }
           if (pending > 0) push(buf.data(), pending, nq);
           if (frames == 0) throw Error("stdin: no token frames (expected one frame per line: n_q codes)");
         }
         session.flush(audio);
         deliver();
         if (!to_stdout) write_audio(d->out, file_audio, out_rate);
         if (!common.quiet) {
           st.print("stream-decode", double(samples) / out_rate);
           if (streams_exactly(*model))
             std::fprintf(stderr, "exact streaming decoder: audio as soon as each frame arrives\n");
           else
             std::fprintf(
                 stderr,
                 "windowed decoder: latency %.1f ms (block %d + lookahead %d frames) + the chunk; %d frames of "
                 "past context%s\n",
                 1000.0 * (sp.block_frames + sp.lookahead_frames) * model->hop() / model->sample_rate(),
                 sp.block_frames, sp.lookahead_frames, session.params().left_frames,
                 model->config().vocos.local() ? " (streamable backbone: trimmed to its receptive field)"
                                               : " (upstream backbone: approximate, docs/STREAMING.md)");
           if (out_rate != model->sample_rate())
             std::fprintf(stderr, "resampling %d -> %d Hz adds %.1f ms\n", model->sample_rate(), out_rate, resample_ms);
         }
         return 0;
       }});
}

}  // namespace wavtok
