// `wavtok bench` output: the JSON object (--json, --json-out) and the printed tables.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <thread>

#include "apps/bench/bench.h"
#include "codec/streaming.h"
#include "core/dnnl_util.h"
#include "core/error.h"
#include "core/file_util.h"
#include "core/util.h"
#include "models/models.h"

#include <filesystem>

namespace wavtok::bench {

std::string json_str(const std::string& s) {
  std::string r = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') r += '\\', r += ch;
    else if (ch == '\n') r += "\\n";
    else if (ch == '\t') r += "\\t";
    else if (static_cast<unsigned char>(ch) < 0x20) continue;
    else r += ch;
  }
  return r + "\"";
}

std::string fmt_len(double s) {
  char b[32];
  std::snprintf(b, sizeof(b), "%g", s);
  return b;
}

std::string json_report(const Model& m, const BenchOpts& o, const BenchResults& res) {
  const ModelConfig& cfg = m.config();
  std::string j = "{\n";
  j += " \"model\": " + json_str(res.model_desc) + ",\n \"arch\": " + json_str(arch_name(cfg.arch)) +
       ",\n \"parameters\": " + std::to_string(m.parameter_count()) +
       ",\n \"sample_rate\": " + std::to_string(m.sample_rate()) + ",\n \"hop\": " + std::to_string(m.hop()) + ",\n";
  j += " \"cpu\": " + json_str(res.cpu) + ",\n \"cpu_flags\": [";
  for (size_t i = 0; i < res.flags.size(); ++i) j += (i ? ", " : "") + json_str(res.flags[i]);
  j += strf("],\n \"fma_peak\": {\"isa\": \"%s\", \"gflops_1core\": %.2f, \"gflops_all\": %.2f, \"threads\": %d},\n",
            res.peak.isa.c_str(), res.peak.gflops_1core, res.peak.gflops_all, res.peak.threads);
  j += " \"runs\": [\n";
  bool first = true;
  for (const auto& run : res.runs) {
    for (const auto& r : run.phases) {
      j += strf(
          "%s  {\"phase\": \"%s\", \"seconds\": %g, \"threads\": %d, \"median_s\": %.6f, \"min_s\": %.6f, "
          "\"first_s\": %.6f, \"xrt\": %.3f, \"reference_s\": %.6f}",
          first ? "" : ",\n", r.phase.c_str(), r.seconds, r.threads, r.median_s, r.min_s, r.first_s, r.xrt(),
          reference_s(res, r));
      first = false;
    }
  }
  j += "\n ],\n \"one_frame\": [";
  for (size_t i = 0; i < res.runs.size(); ++i) {
    j += strf("%s{\"threads\": %d, \"encode_s\": %.6f, \"decode_s\": %.6f}", i ? ", " : "", res.runs[i].threads,
              res.runs[i].one_frame_encode_s, res.runs[i].one_frame_decode_s);
  }
  j += "],\n \"memory\": [";
  for (size_t i = 0; i < res.mem.size(); ++i) {
    j += strf("%s\n  {\"phase\": \"%s\", \"seconds\": %g, \"threads\": %d, \"model_mib\": %.1f, \"peak_mib\": %.1f}",
              i ? "," : "", res.mem[i].phase.c_str(), res.mem[i].seconds, res.all, res.mem[i].model_mib,
              res.mem[i].peak_mib);
  }
  j += "]";
  if (res.prof) {
    j += strf(",\n \"profile\": {\"seconds\": %g, \"threads\": 1, \"stages\": [", res.prof->seconds);
    for (size_t i = 0; i < res.prof->stages.size(); ++i) {
      const auto& s = res.prof->stages[i];
      j += strf("%s\n  {\"stage\": \"%s\", \"s\": %.6f, \"gflops\": %.2f}", i ? "," : "", s.stage.c_str(), s.s,
                s.s > 0 ? 2 * s.macs / s.s / 1e9 : 0.0);
    }
    j += "],\n  \"layers\": [";
    for (size_t i = 0; i < res.prof->layers.size(); ++i) {
      const auto& l = res.prof->layers[i];
      j += strf(
          "%s\n  {\"stage\": \"%s\", \"layer\": %s, \"kind\": \"%s\", \"count\": %lld, \"s\": %.6f, \"gmacs\": %.4f, "
          "\"gflops\": %.2f, \"pct_peak\": %.1f}",
          i ? "," : "", l.l.stage.c_str(), json_str(l.l.name).c_str(), l.l.kind.c_str(), (long long)l.l.count, l.s,
          l.l.macs / 1e9, 2 * l.l.macs / l.s / 1e9, 100 * 2 * l.l.macs / l.s / 1e9 / res.peak.gflops_1core);
    }
    j += "]}";
  }
  if (!res.streams.empty()) {
    j += ",\n \"streaming\": [";
    for (size_t i = 0; i < res.streams.size(); ++i) {
      const auto& r = res.streams[i];
      j += strf(
          "%s\n  {\"preset\": %s, \"block\": %d, \"left\": %d, \"lookahead\": %d, \"chunk_audio_ms\": %.2f, "
          "\"chunks\": %lld, \"encode_ms\": [%.3f, %.3f, %.3f], \"decode_ms\": [%.3f, %.3f, %.3f], "
          "\"cold_encode_p99_ms\": %.3f, \"cold_decode_p99_ms\": %.3f, \"cold_encode_max_ms\": %.3f, "
          "\"cold_decode_max_ms\": %.3f, \"warm_up_ms\": %.3f, \"warm_up_shapes\": %lld, "
          "\"after_warm_up_encode_ms\": [%.3f, %.3f], \"after_warm_up_decode_ms\": [%.3f, %.3f], "
          "\"encode_flush_ms\": [%.3f, %.3f, %.3f], \"decode_flush_ms\": [%.3f, %.3f, %.3f], "
          "\"first_token_ms\": %.3f, \"first_audio_ms\": %.3f, \"first_token_audio_ms\": %.3f, "
          "\"first_audio_audio_ms\": %.3f, \"latency_ms\": %.3f, \"live_push_ms\": [%.3f, %.3f, %.3f], "
          "\"live_push_cpu_ms\": [%.3f, %.3f, %.3f]}",
          i ? "," : "", json_str(r.preset).c_str(), r.p.block_frames, r.p.left_frames, r.p.lookahead_frames,
          r.chunk_audio_ms, (long long)r.chunks, r.enc_p50, r.enc_p95, r.enc_p99, r.dec_p50, r.dec_p95, r.dec_p99,
          r.cold_enc_p99, r.cold_dec_p99, r.cold_enc_max, r.cold_dec_max, r.warm_up_ms, (long long)r.warm_up_shapes,
          r.after_enc_p99, r.after_enc_max, r.after_dec_p99, r.after_dec_max, r.enc_flush[0], r.enc_flush[1],
          r.enc_flush[2], r.dec_flush[0], r.dec_flush[1], r.dec_flush[2], r.first_token_ms, r.first_audio_ms,
          r.first_token_audio_ms, r.first_audio_audio_ms, r.latency_ms, r.live_p50, r.live_p99, r.live_max,
          r.live_cpu_p50, r.live_cpu_p99, r.live_cpu_max);
    }
    j += "]";
  }
  if (!res.precs.empty()) {
    j += ",\n \"bf16\": [";
    for (size_t i = 0; i < res.precs.size(); ++i) {
      const auto& r = res.precs[i];
      j += strf(
          "%s\n  {\"seconds\": %g, \"threads\": 1, \"f32_roundtrip_s\": %.6f, \"bf16_roundtrip_s\": %.6f, "
          "\"bf16_xrt\": %.3f, \"token_agreement\": %.6f, \"audio_snr_db\": %.2f}",
          i ? "," : "", r.seconds, r.f32_s, r.bf16_s, r.seconds / r.bf16_s, r.token_agree, r.snr_db);
    }
    j += "]";
  }
  if (o.baseline) j += ",\n \"reference\": " + res.ref_json;
  j += "\n}\n";
  return j;
}

void print_report(const Model& m, const BenchOpts& o, const BenchResults& res) {
  const ModelConfig& cfg = m.config();
  std::printf("model     %s (%s, %.1f M parameters, %d Hz, hop %d)\n", res.model_desc.c_str(), arch_name(cfg.arch),
              m.parameter_count() / 1e6, m.sample_rate(), m.hop());
  std::printf("cpu       %s; flags:", res.cpu.c_str());
  for (const auto& f : res.flags) std::printf(" %s", f.c_str());
  std::printf("\nFMA peak  %s: %.1f GFLOP/s on 1 core, %.1f GFLOP/s on %d threads\n", res.peak.isa.c_str(),
              res.peak.gflops_1core, res.peak.gflops_all, res.peak.threads);
  std::printf("\nspeed (x real time = audio seconds / wall seconds; warm median of %d runs; cold = first call)\n",
              o.repeats);
  std::printf("%-10s %8s %4s %10s %10s %9s", "phase", "audio s", "thr", "median s", "cold s", "x RT");
  if (o.baseline) std::printf(" %10s %9s %8s", "torch s", "torch xRT", "speedup");
  std::printf("\n");
  if (o.baseline)
    std::printf("(PyTorch baseline: OpenBLAS kernel %s, OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE %s)\n",
                res.ref_core.c_str(), o.inherit_blas_env ? "inherited" : "unset");
  for (const auto& run : res.runs)
    for (const auto& r : run.phases) {
      std::printf("%-10s %8g %4d %10.3f %10.3f %9.2f", r.phase.c_str(), r.seconds, r.threads, r.median_s, r.first_s,
                  r.xrt());
      if (o.baseline) {
        const double t = reference_s(res, r);
        if (t > 0) std::printf(" %10.3f %9.2f %7.2fx", t, r.seconds / t, t / r.median_s);
        else std::printf(" %10s %9s %8s", "-", "-", "-");
      }
      std::printf("\n");
    }
  std::printf("\nlatency of one frame (%d samples = %.1f ms of audio, one-shot API, warm):\n", m.hop(),
              1000.0 * m.hop() / m.sample_rate());
  for (const auto& run : res.runs)
    std::printf("  %d thr: encode %.2f ms, decode %.2f ms\n", run.threads, 1000 * run.one_frame_encode_s,
                1000 * run.one_frame_decode_s);
  std::printf(
      "one-shot: the first token / first audio sample arrives with the last, after the phase's median time above\n");
  if (!res.mem.empty()) {
    std::printf("\nmemory (child process per phase, %d threads; model = RSS before the phase, peak = VmHWM)\n",
                res.all);
    std::printf("%-10s %8s %10s %10s %10s\n", "phase", "audio s", "model MiB", "peak MiB", "extra MiB");
    for (const auto& r : res.mem)
      std::printf("%-10s %8g %10.0f %10.0f %10.0f\n", r.phase.c_str(), r.seconds, r.model_mib, r.peak_mib,
                  r.model_mib > 0 ? r.peak_mib - r.model_mib : 0.0);
  }
  if (!res.streams.empty()) {
    std::printf(
        "\nstreaming (1 thread, %.0f s pushed one block at a time; ms per push that emitted output, p50/p95/p99)\n",
        o.stream_seconds);
    std::printf("%-16s %5s %5s %5s %9s %8s %26s %26s\n", "preset", "block", "left", "ahead", "chunk ms", "latency",
                "encode p50/p95/p99 ms", "decode p50/p95/p99 ms");
    for (const auto& r : res.streams) {
      char e[64], d[64];
      std::snprintf(e, sizeof(e), "%.1f / %.1f / %.1f", r.enc_p50, r.enc_p95, r.enc_p99);
      std::snprintf(d, sizeof(d), "%.1f / %.1f / %.1f", r.dec_p50, r.dec_p95, r.dec_p99);
      std::printf("%-16s %5d %5d %5d %9.1f %6.0fms %26s %26s\n", r.preset.c_str(), r.p.block_frames, r.p.left_frames,
                  r.p.lookahead_frames, r.chunk_audio_ms, r.latency_ms, e, d);
    }
    std::printf(
        "latency = algorithmic: block + lookahead frames for windowed decoders, hop + (n_fft - hop) / 2 samples "
        "for causal models; a preset keeps up when p99 < chunk ms; warm pass\n");
    for (const auto& r : res.streams) {
      std::printf("  %s cold first pass p99 / max: encode %.1f / %.1f ms, decode %.1f / %.1f ms (primitive creation)\n",
                  r.preset.c_str(), r.cold_enc_p99, r.cold_enc_max, r.cold_dec_p99, r.cold_dec_max);
      std::printf(
          "  %s after warm_up_streaming (%.0f ms, %lld shapes, fresh model): first pass p99 / max: encode %.1f / "
          "%.1f ms, decode %.1f / %.1f ms\n",
          r.preset.c_str(), r.warm_up_ms, (long long)r.warm_up_shapes, r.after_enc_p99, r.after_enc_max,
          r.after_dec_p99, r.after_dec_max);
      std::printf(
          "  %s flush() cold / warm / after warm-up: encode %.1f / %.1f / %.1f ms, decode %.1f / %.1f / %.1f ms\n",
          r.preset.c_str(), r.enc_flush[0], r.enc_flush[1], r.enc_flush[2], r.dec_flush[0], r.dec_flush[1],
          r.dec_flush[2]);
      if (!r.model_note.empty()) std::printf("  %s model: %s\n", r.preset.c_str(), r.model_note.c_str());
      if (r.exact)
        std::printf("  %s algorithmic latency %.1f ms (exact streaming: audio equals one-shot decoding)\n",
                    r.preset.c_str(), r.latency_ms);
      std::printf(
          "  %s live, 20 ms chunks in real time: first token after %.1f ms (%.1f ms of audio + compute), "
          "first audio after %.1f ms (%.1f ms of audio + compute)\n",
          r.preset.c_str(), r.first_token_ms, r.first_token_audio_ms, r.first_audio_ms, r.first_audio_audio_ms);
      if (r.exact)
        std::printf(
            "  %s live push compute (encode + decode of one 20 ms chunk, %.0f s): wall clock p50 %.2f / p99 %.2f / "
            "max %.2f ms, thread CPU time p50 %.2f / p99 %.2f / max %.2f ms\n",
            r.preset.c_str(), o.stream_seconds, r.live_p50, r.live_p99, r.live_max, r.live_cpu_p50, r.live_cpu_p99,
            r.live_cpu_max);
    }
  }
  if (!res.precs.empty()) {
    std::printf("\nfloat32 vs bfloat16 round trip (1 thread, interleaved, median of %d; tokens and audio vs float32)\n",
                o.repeats);
    std::printf("%8s %10s %10s %9s %9s %11s %13s\n", "audio s", "f32 s", "bf16 s", "bf16 xRT", "speed-up",
                "tokens =", "audio SNR dB");
    for (const auto& r : res.precs)
      std::printf("%8g %10.3f %10.3f %9.2f %8.2fx %10.2f%% %13.1f\n", r.seconds, r.f32_s, r.bf16_s,
                  r.seconds / r.bf16_s, r.f32_s / r.bf16_s, 100 * r.token_agree, r.snr_db);
  } else if (o.bf16) {
    std::printf("\nbfloat16: not supported by this CPU (needs AVX512-BF16 or AMX); skipped\n");
  }
  if (res.prof) {
    double total = 0;
    for (const auto& s : res.prof->stages) total += s.s;
    std::printf("\nprofile: %g s of audio, 1 thread (stage times measured through the public API)\n",
                res.prof->seconds);
    std::printf("%-11s %10s %7s %10s %8s\n", "stage", "s", "%", "GFLOP/s", "% peak");
    for (const auto& s : res.prof->stages) {
      const double gf = s.s > 0 ? 2 * s.macs / s.s / 1e9 : 0;
      std::printf("%-11s %10.4f %6.1f%% %10.2f %7.1f%%\n", s.stage.c_str(), s.s, 100 * s.s / total, gf,
                  100 * gf / res.peak.gflops_1core);
    }
    if (!res.prof->layers.empty()) {
      std::printf("\nlayers timed alone (same shapes, random weights); %% of the stage's measured time\n");
      std::printf("%-9s %-38s %5s %10s %10s %7s %9s %7s\n", "stage", "layer", "count", "s", "GMAC", "% stage",
                  "GFLOP/s", "% peak");
      for (const auto& l : res.prof->layers) {
        double st = 0;
        for (const auto& s : res.prof->stages)
          if (s.stage == l.l.stage) st = s.s;
        const double gf = 2 * l.l.macs / l.s / 1e9;
        std::printf("%-9s %-38s %5lld %10.4f %10.3f %6.1f%% %9.2f %6.1f%%\n", l.l.stage.c_str(), l.l.name.c_str(),
                    (long long)l.l.count, l.s, l.l.macs / 1e9, st > 0 ? 100 * l.s / st : 0, gf,
                    100 * gf / res.peak.gflops_1core);
      }
    }
  }
}

}  // namespace wavtok::bench
