#include "apps/cli.h"
#include "apps/commands.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>

#include <CLI/CLI.hpp>

#include "codec/default_model.h"
#include "codec/dnnl_util.h"
#include "codec/error.h"
#include "codec/file_util.h"
#include "codec/model.h"
#include "codec/model_file.h"
#include "codec/npy.h"
#include "codec/progress.h"
#include "codec/token_file.h"
#include "dsp/audio_io.h"

namespace wavtok {

namespace fs = std::filesystem;

std::string resolve_model(const Common& c) {
  if (!c.model.empty()) return c.model;
  if (const char* env = std::getenv("WAVTOK_MODEL"); env && *env) return env;
  if (has_embedded_default_model()) return "";  // the model built into this binary
  throw Error("no model given: pass --model FILE (a .wtk file or a checkpoint with config.yaml) or set WAVTOK_MODEL");
}

std::shared_ptr<const Model> load_model(const Common& c) {
  set_num_threads(c.threads);
  if (c.precision != "f32" && c.precision != "bf16")
    throw Error("--precision must be f32 or bf16, not '" + c.precision + "'");
  if (c.vq_precision != "f32" && c.vq_precision != "bf16")
    throw Error("--vq-precision must be f32 or bf16, not '" + c.vq_precision + "'");
  // bf16 is a speed option: on a CPU without native bf16 the command runs in float32 (the library refuses, so a
  // program that needs bf16 can tell), with a warning that -q does not silence.
  const bool want_bf16 = c.precision == "bf16", want_vq_bf16 = c.vq_precision == "bf16";
  if ((want_bf16 || want_vq_bf16) && !bf16_supported())
    std::fprintf(stderr, "wavtok: warning: %s bf16: this CPU has neither AVX512-BF16 nor AMX; running in float32\n",
                 want_bf16 ? "--precision" : "--vq-precision");
  set_precision(want_bf16 && bf16_supported() ? Precision::BF16 : Precision::F32);
  set_vq_precision(want_vq_bf16 && bf16_supported() ? VqPrecision::BF16 : VqPrecision::F32);
  LoadOptions o;
  o.config_path = c.config;
  const std::string path = resolve_model(c);
  return path.empty() ? load_embedded_default_model() : Model::load(path, o);
}

void check_output(const std::string& out, const std::vector<std::string>& inputs) {
  if (out.empty()) return;
  for (const auto& in : inputs)
    if (!in.empty() && (in == out || same_existing_file(in, out)))
      throw Error(out + ": output path is the same file as the input " + in + "; refusing to overwrite it");
  const fs::path parent = fs::path(out).parent_path();
  if (!parent.empty() && !fs::is_directory(parent)) throw Error(out + ": output folder " + parent.string() + " does not exist");
  if (fs::is_directory(out)) throw Error(out + ": output path is a folder");
}

void Progress::say(const std::string& what) const {
  if (!on) return;
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "\r[%6.2fs] %-60s\n", s, what.c_str());
}

ProgressFn Progress::bar() const {
  if (!on) return {};
  return [t0 = t0](const char* phase, double f) {
    const int width = 30, filled = static_cast<int>(f * width + 0.5);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "\r[%6.2fs] %-7s [%.*s%*s] %3d%%", s, phase, filled, "##############################",
                 width - filled, "", static_cast<int>(f * 100 + 0.5));
    std::fflush(stderr);
  };
}

namespace {

}  // namespace

int n_q_from(const Model& m, double bandwidth, int n_q) {
  if (n_q > 0 && bandwidth > 0) throw Error("give either --bandwidth or --n-q, not both");
  if (bandwidth > 0) return m.config().n_q_for_bandwidth(bandwidth);
  if (n_q > 0) {
    if (n_q > m.max_n_q())
      throw Error("--n-q " + std::to_string(n_q) + " exceeds this model's " + std::to_string(m.max_n_q()) + " codebooks");
    return n_q;
  }
  return m.max_n_q();
}

namespace {

RawTensor latent_to_raw(const Tensor& t) {
  RawTensor r;
  r.dtype = DType::F32;
  r.shape = {1, t.dim(0), t.dim(1)};
  r.bytes.resize(t.numel() * 4);
  std::memcpy(r.bytes.data(), t.data(), r.bytes.size());
  return r;
}

Tensor read_latent(const std::string& path, const Model& m) {
  RawTensor r = read_npy(path);
  if (r.dtype != DType::F32 && r.dtype != DType::F64 && r.dtype != DType::F16)
    throw Error(path + ": latent must be a float array, got " + dtype_name(r.dtype));
  std::vector<int64_t> s = r.shape;
  if (s.size() == 3 && s[0] == 1) s.erase(s.begin());
  if (s.size() != 2 || s[0] != m.latent_dim())
    throw Error(path + ": latent has shape " + shape_str(r.shape) + ", this model expects (1, " +
                std::to_string(m.latent_dim()) + ", frames)");
  if (s[1] < 1) throw Error(path + ": latent has no frames");
  auto v = r.to_float();
  for (size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(v[i])) throw Error(path + ": latent contains NaN/Inf at index " + std::to_string(i));
  return Tensor(s, v);
}

}  // namespace

int cli_main(int argc, char** argv) {
  CLI::App app{"wavtok: neural audio codec engine (WavTokenizer, EnCodec) on CPU"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("wavtok ") + WAVTOK_VERSION);
  Common c;

  // encode
  std::string enc_in, enc_out, enc_fmt, enc_lat, enc_qlat;
  double enc_bw = 0;
  int enc_nq = 0;
  auto* enc = app.add_subcommand("encode", "audio -> tokens (and optionally latents)");
  enc->add_option("input", enc_in, "audio file (WAV, FLAC, OGG, ...; any rate, any channels)")->required();
  enc->add_option("-o,--output", enc_out, "token file (.wtt native, .npy, .txt)");
  enc->add_option("--format", enc_fmt, "token format: wtt|npy|txt (default: from the extension)");
  enc->add_option("-b,--bandwidth", enc_bw, "bandwidth in kbps (selects the number of codebooks)")->check(bandwidth_kbps());
  enc->add_option("-n,--n-q", enc_nq, "number of codebooks (default: all)")->check(n_q_range());
  enc->add_option("--latents", enc_lat, "also write the pre-quantization latent as .npy (1, dim, frames)");
  enc->add_option("--quantized-latents", enc_qlat, "also write the quantized latent (sum of codewords) as .npy");
  add_common_options(enc, c);
  enc->add_option("--vq-precision", c.vq_precision,
                  "codebook search: f32 (default) or bf16 (bf16 scores, f32 accumulation; may change tokens; float32 with a "
                  "warning on CPUs without AVX512-BF16/AMX)");

  // decode
  std::string dec_in, dec_out;
  bool dec_latents = false;
  int dec_bwid = 0;
  auto* dec = app.add_subcommand("decode", "tokens (or a latent) -> audio");
  dec->add_option("input", dec_in, "token file (.wtt, .npy, .txt) or, with --latents, a latent .npy")->required();
  dec->add_option("-o,--output", dec_out, "audio file (.wav float32, .flac, .ogg)")->required();
  dec->add_flag("--latents", dec_latents, "input is a continuous latent (1, dim, frames) .npy");
  dec->add_option("--bandwidth-id", dec_bwid, "WavTokenizer AdaLayerNorm bandwidth id (default 0)")
      ->check(CLI::NonNegativeNumber);
  add_common_options(dec, c);

  // requantize
  std::string rq_in, rq_out, rq_fmt;
  double rq_bw = 0;
  int rq_nq = 0;
  auto* rq = app.add_subcommand("requantize", "latent .npy -> tokens at a chosen number of codebooks");
  rq->add_option("input", rq_in, "latent .npy (1, dim, frames)")->required();
  rq->add_option("-o,--output", rq_out, "token file")->required();
  rq->add_option("--format", rq_fmt, "token format: wtt|npy|txt");
  rq->add_option("-b,--bandwidth", rq_bw, "bandwidth in kbps")->check(bandwidth_kbps());
  rq->add_option("-n,--n-q", rq_nq, "number of codebooks")->check(n_q_range());
  add_common_options(rq, c);

  // roundtrip
  std::string rt_in, rt_out;
  double rt_bw = 0;
  int rt_nq = 0;
  auto* rt = app.add_subcommand("roundtrip", "audio -> tokens -> audio");
  rt->add_option("input", rt_in, "audio file")->required();
  rt->add_option("-o,--output", rt_out, "audio file")->required();
  rt->add_option("-b,--bandwidth", rt_bw, "bandwidth in kbps")->check(bandwidth_kbps());
  rt->add_option("-n,--n-q", rt_nq, "number of codebooks")->check(n_q_range());
  add_common_options(rt, c);
  rt->add_option("--vq-precision", c.vq_precision,
                  "codebook search: f32 (default) or bf16 (bf16 scores, f32 accumulation; may change tokens; float32 with a "
                  "warning on CPUs without AVX512-BF16/AMX)");

  // convert
  std::string cv_in, cv_out;
  auto* cv = app.add_subcommand("convert", "PyTorch checkpoint (+config.yaml) -> wavtok model file (.wtk)");
  cv->add_option("checkpoint", cv_in, ".ckpt / .th / .pt")->required();
  cv->add_option("-o,--output", cv_out, "output model file")->required();
  cv->add_option("--config", c.config, "config.yaml (default: beside the checkpoint)");
  cv->add_flag("-q,--quiet", c.quiet, "no progress output");

  // info
  std::string info_in;
  auto* info = app.add_subcommand("info", "print model dimensions, rates and parameter count");
  info->add_option("model", info_in, "model file or checkpoint (default: the shipped model)");
  info->add_option("--config", c.config, "config.yaml for a checkpoint");

  // Commands that live in their own files (apps/cmd_*.cc).
  std::vector<Command> extra;
  register_extra_commands(app, c, extra);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help prints and succeeds; a usage error (unknown or out-of-range option, missing argument) exits with 2,
    // the usual status for misuse, apart from the 1 of a failed run.
    return app.exit(e) == 0 ? 0 : 2;
  }

  try {
    for (auto& cmd : extra)
      if (cmd.sub->parsed()) return cmd.run();
    Progress prog{!c.quiet};
    if (*enc) {
      if (enc_out.empty() && enc_lat.empty() && enc_qlat.empty()) throw Error("encode: give -o tokens and/or --latents FILE");
      for (const auto& o : {enc_out, enc_lat, enc_qlat}) check_output(o, {enc_in});
      auto model = load_model(c);
      const int nq = n_q_from(*model, enc_bw, enc_nq);
      Audio audio = read_audio(enc_in, model->sample_rate());
      prog.on = prog.on && audio.samples.size() > size_t(model->sample_rate()) * 3;
      prog.say("read " + enc_in + ": " + std::to_string(audio.samples.size()) + " samples");
      Tensor lat;
      {
        ProgressScope ps(prog.bar());
        lat = model->encode_latents(audio.samples.data(), int64_t(audio.samples.size()));
      }
      prog.say("encoded " + std::to_string(lat.dim(1)) + " frames");
      Tensor q;
      Tokens tk = model->quantize(lat, nq, &q);
      if (!enc_lat.empty()) write_npy(enc_lat, latent_to_raw(lat));
      if (!enc_qlat.empty()) write_npy(enc_qlat, latent_to_raw(q));
      if (!enc_out.empty()) {
        TokenFile tf{tk, model->fingerprint(), model->sample_rate(), model->hop(), model->config().quantizer.bins};
        write_tokens(enc_out, tf, token_format_for(enc_out, enc_fmt));
      }
      prog.say("done");
      return 0;
    }
    if (*dec) {
      check_output(dec_out, {dec_in});
      auto model = load_model(c);
      Tensor feats;
      if (dec_latents) {
        feats = read_latent(dec_in, *model);
      } else {
        TokenFile tf = read_tokens(dec_in);
        check_tokens_for_model(tf, *model, dec_in);
        feats = model->dequantize(tf.tokens);
      }
      prog.on = prog.on && feats.dim(1) * model->hop() > model->sample_rate() * 3;
      prog.say("decoding " + std::to_string(feats.dim(1)) + " frames");
      std::vector<float> audio;
      {
        ProgressScope ps(prog.bar());
        audio = model->decode_latents(feats, dec_bwid);
      }
      write_audio(dec_out, audio, model->sample_rate());
      prog.say("done");
      return 0;
    }
    if (*rq) {
      check_output(rq_out, {rq_in});
      auto model = load_model(c);
      Tensor lat = read_latent(rq_in, *model);
      Tokens tk = model->quantize(lat, n_q_from(*model, rq_bw, rq_nq));
      TokenFile tf{tk, model->fingerprint(), model->sample_rate(), model->hop(), model->config().quantizer.bins};
      write_tokens(rq_out, tf, token_format_for(rq_out, rq_fmt));
      return 0;
    }
    if (*rt) {
      check_output(rt_out, {rt_in});
      auto model = load_model(c);
      const int nq = n_q_from(*model, rt_bw, rt_nq);
      Audio audio = read_audio(rt_in, model->sample_rate());
      prog.on = prog.on && audio.samples.size() > size_t(model->sample_rate()) * 3;
      ProgressScope ps(prog.bar());
      Tokens tk = model->encode(audio.samples.data(), int64_t(audio.samples.size()), nq);
      prog.say("encoded " + std::to_string(tk.frames) + " frames");
      std::vector<float> out = model->decode(tk);
      out.resize(audio.samples.size());
      write_audio(rt_out, out, model->sample_rate());
      prog.say("done");
      return 0;
    }
    if (*cv) {
      check_output(cv_out, {cv_in, c.config});
      LoadOptions o;
      o.config_path = c.config;
      auto model = Model::load(cv_in, o);
      write_model_file(cv_out, model->config(), model->weights());
      if (!c.quiet)
        std::fprintf(stderr, "wrote %s: %lld parameters\n", cv_out.c_str(), static_cast<long long>(model->parameter_count()));
      return 0;
    }
    if (*info) {
      c.model = info_in;
      auto model = load_model(c);
      const ModelConfig& m = model->config();
      const std::string path = resolve_model(c);
      std::printf("model:        %s\n", path.empty() ? "built-in default model" : path.c_str());
      std::printf("architecture: %s\n", m.arch.c_str());
      std::printf("sample rate:  %d Hz\n", m.sample_rate);
      std::printf("hop:          %d samples (%.2f frames/s)\n", m.hop(), m.frame_rate());
      std::printf("codebooks:    %d x %d entries of dim %d\n", m.quantizer.n_q, m.quantizer.bins, m.quantizer.dim);
      std::printf("bitrate:      %.3f kbps per codebook\n", m.kbps(1));
      std::printf("encoder:      n_filters %d, dimension %d, ratios", m.encoder.n_filters, m.encoder.dimension);
      for (int r : m.encoder.ratios) std::printf(" %d", r);
      std::printf(", %s\n", m.encoder.causal ? "causal" : "non-causal");
      if (m.arch == "wavtokenizer") {
        std::printf("backbone:     dim %d, intermediate %d, %d layers; head n_fft %d hop %d\n", m.vocos.dim,
                    m.vocos.intermediate_dim, m.vocos.num_layers, m.vocos.n_fft, m.vocos.hop);
        std::printf("pos_net:      %s, attention ", m.vocos.pos_net_norm == "affine" ? "per-channel affine" : "GroupNorm over time");
        if (m.vocos.attention_windowed())
          std::printf("keys t-%d..t+%d", m.vocos.attention_left, m.vocos.attention_right);
        else
          std::printf("over the whole input");
        std::printf(" (%s)\n", m.vocos.local() ? "local: streams like one-shot" : "streams approximately, docs/STREAMING.md");
      } else
        std::printf("decoder:      SEANet n_filters %d\n", m.decoder.n_filters);
      std::printf("parameters:   %lld\n", static_cast<long long>(model->parameter_count()));
      std::printf("fingerprint:  %016llx\n", static_cast<unsigned long long>(model->fingerprint()));
      return 0;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "wavtok: error: %s\n", e.what());
    return 1;
  }
  return 0;
}

}  // namespace wavtok
