// Streaming sessions against one-shot processing: token agreement, decoded-audio SNR, latency and speed per
// preset, on a clip and on the clip repeated into a longer stream. Prints a table (docs/STREAMING.md).
//
//   streaming_bench [--model M] [--audio WAV] [--repeat N] [--chunk-ms 20] [preset|yaml ...]
//   streaming_bench --memory-minutes 10 [--model M] [--audio WAV] [preset]
//     one encoder and one decoder session fed the clip over and over for that long: session memory and the
//     process's RSS printed every minute (both must stay flat).
// Defaults: the WavTokenizer fixture model and clip (../shared/fixtures, run from the repository root), repeats 1 and
// 10, the three presets.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "codec/streaming.h"
#include "core/dnnl_util.h"
#include "core/error.h"
#include "core/util.h"
#include "dsp/audio_io.h"
#include "models/models.h"

using namespace wavtok;

namespace {

double rss_mib() {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  double kib = 0;
  while (std::fgets(line, sizeof(line), f))
    if (std::strncmp(line, "VmRSS:", 6) == 0) kib = std::atof(line + 6);
  std::fclose(f);
  return kib / 1024.0;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::string fixtures = "../shared/fixtures/";  // run from the repository root
  std::string model_path = fixtures + "wavtokenizer-75/model.ckpt",
              audio_path = fixtures + "wavtokenizer-75/speech.input.wav";
  std::vector<int> repeats;
  std::vector<std::string> presets;
  double chunk_ms = 20;
  double memory_minutes = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw Error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--model") model_path = next();
    else if (a == "--audio") audio_path = next();
    else if (a == "--repeat") repeats.push_back(std::stoi(next()));
    else if (a == "--chunk-ms") chunk_ms = std::stod(next());
    else if (a == "--memory-minutes") memory_minutes = std::stod(next());
    else presets.push_back(a);
  }
  if (repeats.empty()) repeats = {1, 10};
  if (presets.empty()) presets = {"low-latency", "default", "high-fidelity"};
  set_num_threads(1);
  auto model = Model::load(model_path);
  const auto clip = read_audio(audio_path, model->sample_rate()).samples;
  const int hop = model->hop(), sr = model->sample_rate();
  std::printf("model %s (%s), chunk %.0f ms, 1 thread\n", model_path.c_str(), arch_name(model->config().arch),
              chunk_ms);
  if (memory_minutes > 0) {
    const std::string name = presets.empty() ? "default" : presets[0];
    const StreamParams p = stream_preset(name);
    StreamingEncoder enc(model, p);
    StreamingDecoder dec(model, p);
    const size_t chunk = size_t(chunk_ms * sr / 1000);
    std::vector<int32_t> codes;
    std::vector<float> audio;
    codes.reserve(64 * 32), audio.reserve(size_t(sr));
    std::printf("preset %s: %.0f min pushed in %.0f ms chunks, codes straight into the decoder\n", name.c_str(),
                memory_minutes, chunk_ms);
    std::printf("%8s %14s %14s %10s %10s\n", "minute", "encoder KiB", "decoder KiB", "RSS MiB", "xRT");
    const int64_t total = int64_t(memory_minutes * 60 * sr);
    int64_t fed = 0, next_report = int64_t(60) * sr, frames_out = 0;
    size_t pos = 0;
    const auto t0 = std::chrono::steady_clock::now();
    while (fed < total) {
      const size_t n = std::min(chunk, clip.size() - pos);
      codes.clear();
      enc.push(clip.data() + pos, int64_t(n), codes);
      pos = (pos + n) % clip.size();
      fed += int64_t(n);
      const int nq = enc.n_q();
      audio.clear();
      if (!codes.empty()) dec.push(codes.data(), int64_t(codes.size()) / nq, nq, audio);
      frames_out += int64_t(audio.size());
      if (fed >= next_report) {
        std::printf("%8.0f %14.1f %14.1f %10.1f %10.1f\n", double(fed) / sr / 60, enc.memory_bytes() / 1024.0,
                    dec.memory_bytes() / 1024.0, rss_mib(), double(fed) / sr / seconds_since(t0));
        std::fflush(stdout);
        next_report += int64_t(60) * sr;
      }
    }
    return 0;
  }
  std::printf("%-14s %7s %6s %6s %6s %9s %9s %9s %8s %8s %10s\n", "preset", "audio_s", "left", "block", "look",
              "dec_lat", "tok_agree", "dec_snr", "enc_xRT", "dec_xRT", "mem_KiB");
  for (int rep : repeats) {
    std::vector<float> pcm;
    for (int r = 0; r < rep; ++r) pcm.insert(pcm.end(), clip.begin(), clip.end());
    const int n_q = model->max_n_q();
    const Tokens one = model->encode(pcm.data(), int64_t(pcm.size()), n_q);
    const std::vector<float> one_audio = model->decode(one);
    std::vector<int32_t> one_fm(one.codes.size());
    for (int64_t f = 0; f < one.frames; ++f)
      for (int q = 0; q < n_q; ++q) one_fm[size_t(f) * n_q + q] = one.codes[size_t(q) * one.frames + f];
    for (size_t pi = 0; pi < presets.size() + 1; ++pi) {
      // The first pass is a warm-up (oneDNN creates primitives per input shape) and is not printed.
      const std::string& name = presets[pi == 0 ? 0 : pi - 1];
      const StreamParams p = stream_preset(name);
      StreamingEncoder enc(model, p);
      const size_t chunk = size_t(chunk_ms * sr / 1000);
      std::vector<int32_t> codes;
      auto t0 = std::chrono::steady_clock::now();
      for (size_t i = 0; i < pcm.size(); i += chunk)
        enc.push(pcm.data() + i, int64_t(std::min(chunk, pcm.size() - i)), codes);
      enc.flush(codes);
      const double enc_s = seconds_since(t0);
      size_t same = 0;
      for (size_t i = 0; i < std::min(codes.size(), one_fm.size()); ++i) same += codes[i] == one_fm[i];
      // Decode the one-shot tokens in a stream, chunk_ms worth of frames per push.
      StreamingDecoder dec(model, p);
      std::vector<float> audio;
      const int64_t per = std::max<int64_t>(1, int64_t(chunk_ms * sr / 1000 / hop));
      t0 = std::chrono::steady_clock::now();
      for (int64_t f = 0; f < one.frames; f += per)
        dec.push(one_fm.data() + f * n_q, std::min(per, one.frames - f), n_q, audio);
      dec.flush(audio);
      const double dec_s = seconds_since(t0);
      const double audio_s = double(pcm.size()) / sr;
      const double latency_ms =
          streams_exactly(*model) ? 1000.0 * hop / sr : 1000.0 * (p.block_frames + p.lookahead_frames) * hop / sr;
      if (pi == 0) continue;
      std::printf("%-14s %7.1f %6d %6d %6d %7.0fms %8.2f%% %7.1fdB %8.1f %8.1f %10.1f\n", name.c_str(), audio_s,
                  dec.params().left_frames, p.block_frames, p.lookahead_frames, latency_ms,
                  100.0 * same / std::max<size_t>(1, one_fm.size()), snr_db(one_audio, audio), audio_s / enc_s,
                  audio_s / dec_s, (enc.memory_bytes() + dec.memory_bytes()) / 1024.0);
      std::fflush(stdout);
    }
  }
  return 0;
}
