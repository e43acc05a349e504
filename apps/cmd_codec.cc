// The codec's one-shot subcommands: encode, decode, requantize, roundtrip (registered by cli_main, apps/cli.cc).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>

#include "apps/commands.h"
#include "codec/user_input.h"
#include "core/error.h"
#include "core/progress.h"
#include "dsp/audio_io.h"
#include "io/npy.h"
#include "io/token_file.h"
#include "models/model.h"

namespace wavtok {

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
  return latents_from_array(r.shape, r.to_float(), m, path);
}

}  // namespace

void register_codec_commands(CLI::App& app, Common& c, std::vector<Command>& out) {
  {
    // encode
    struct Opts {
      std::string enc_in, enc_out, enc_fmt, enc_lat, enc_qlat;
      double enc_bw = 0;
      int enc_nq = 0;
    };
    auto opt = std::make_shared<Opts>();
    auto* enc = app.add_subcommand("encode", "audio -> tokens (and optionally latents)");
    enc->add_option("input", opt->enc_in, "audio file (WAV, FLAC, OGG, ...; any rate, any channels)")->required();
    enc->add_option("-o,--output", opt->enc_out, "token file (.wtt native, .npy, .txt)");
    enc->add_option("--format", opt->enc_fmt, "token format: wtt|npy|txt (default: from the extension)");
    enc->add_option("-b,--bandwidth", opt->enc_bw, "bandwidth in kbps (selects the number of codebooks)")
        ->check(bandwidth_kbps());
    enc->add_option("-n,--n-q", opt->enc_nq, "number of codebooks (default: all)")->check(n_q_range());
    enc->add_option("--latents", opt->enc_lat, "also write the pre-quantization latent as .npy (1, dim, frames)");
    enc->add_option("--quantized-latents", opt->enc_qlat, "also write the quantized latent (sum of codewords) as .npy");
    add_common_options(enc, c);
    add_strict_option(enc, c);
    enc->add_option(
        "--vq-precision", c.vq_precision,
        "codebook search: f32 (default), bf16 or int8 (faster shortlists, every near tie rescored exactly: the "
        "same tokens; bf16 runs as float32 with a warning on CPUs without AVX512-BF16/AMX)");
    out.push_back({enc, [opt, &c]() -> int {
                     Progress prog{!c.quiet};
                     if (opt->enc_out.empty() && opt->enc_lat.empty() && opt->enc_qlat.empty())
                       throw Error("encode: give -o tokens and/or --latents FILE");
                     for (const auto& o : {opt->enc_out, opt->enc_lat, opt->enc_qlat}) check_output(o, {opt->enc_in});
                     auto model = load_model(c);
                     const int nq = n_q_from(*model, opt->enc_bw, opt->enc_nq);
                     Audio audio = read_input_audio(opt->enc_in, model->sample_rate(), c);
                     prog.on = prog.on && audio.samples.size() > size_t(model->sample_rate()) * 3;
                     prog.say("read " + opt->enc_in + ": " + std::to_string(audio.samples.size()) + " samples");
                     Tensor lat;
                     {
                       ProgressScope ps(prog.bar());
                       lat = model->encode_latents(audio.samples.data(), int64_t(audio.samples.size()));
                     }
                     prog.say("encoded " + std::to_string(lat.dim(1)) + " frames");
                     Tensor q;
                     Tokens tk = model->quantize(lat, nq, &q);
                     if (!opt->enc_lat.empty()) write_npy(opt->enc_lat, latent_to_raw(lat));
                     if (!opt->enc_qlat.empty()) write_npy(opt->enc_qlat, latent_to_raw(q));
                     if (!opt->enc_out.empty()) {
                       TokenFile tf = token_file_for(*model, std::move(tk));
                       write_tokens(opt->enc_out, tf, token_format_for(opt->enc_out, opt->enc_fmt));
                     }
                     prog.say("done");
                     return 0;
                   }});
  }
  {
    // decode
    struct Opts {
      std::string dec_in, dec_out;
      bool dec_latents = false;
      int dec_bwid = 0;
    };
    auto opt = std::make_shared<Opts>();
    auto* dec = app.add_subcommand("decode", "tokens (or a latent) -> audio");
    dec->add_option("input", opt->dec_in, "token file (.wtt, .npy, .txt) or, with --latents, a latent .npy")
        ->required();
    dec->add_option("-o,--output", opt->dec_out, "audio file (.wav float32, .flac, .ogg)")->required();
    dec->add_flag("--latents", opt->dec_latents, "input is a continuous latent (1, dim, frames) .npy");
    dec->add_option("--bandwidth-id", opt->dec_bwid, "WavTokenizer AdaLayerNorm bandwidth id (default 0)")
        ->check(CLI::NonNegativeNumber);
    add_common_options(dec, c);
    out.push_back({dec, [opt, &c]() -> int {
                     Progress prog{!c.quiet};
                     check_output(opt->dec_out, {opt->dec_in});
                     auto model = load_model(c);
                     Tensor feats;
                     if (opt->dec_latents) {
                       feats = read_latent(opt->dec_in, *model);
                     } else {
                       TokenFile tf = read_tokens(opt->dec_in);
                       const std::string warning = check_tokens_for_model(tf, *model, opt->dec_in);
                       if (!warning.empty()) std::fprintf(stderr, "wavtok: warning: %s\n", warning.c_str());
                       feats = model->dequantize(tf.tokens);
                     }
                     prog.on = prog.on && feats.dim(1) * model->hop() > model->sample_rate() * 3;
                     prog.say("decoding " + std::to_string(feats.dim(1)) + " frames");
                     std::vector<float> audio;
                     {
                       ProgressScope ps(prog.bar());
                       audio = model->decode_latents(feats, opt->dec_bwid);
                     }
                     write_audio(opt->dec_out, audio, model->sample_rate());
                     prog.say("done");
                     return 0;
                   }});
  }
  {
    // requantize
    struct Opts {
      std::string rq_in, rq_out, rq_fmt;
      double rq_bw = 0;
      int rq_nq = 0;
    };
    auto opt = std::make_shared<Opts>();
    auto* rq = app.add_subcommand("requantize", "latent .npy -> tokens at a chosen number of codebooks");
    rq->add_option("input", opt->rq_in, "latent .npy (1, dim, frames)")->required();
    rq->add_option("-o,--output", opt->rq_out, "token file")->required();
    rq->add_option("--format", opt->rq_fmt, "token format: wtt|npy|txt");
    rq->add_option("-b,--bandwidth", opt->rq_bw, "bandwidth in kbps")->check(bandwidth_kbps());
    rq->add_option("-n,--n-q", opt->rq_nq, "number of codebooks")->check(n_q_range());
    add_common_options(rq, c);
    out.push_back({rq, [opt, &c]() -> int {
                     check_output(opt->rq_out, {opt->rq_in});
                     auto model = load_model(c);
                     Tensor lat = read_latent(opt->rq_in, *model);
                     Tokens tk = model->quantize(lat, n_q_from(*model, opt->rq_bw, opt->rq_nq));
                     TokenFile tf = token_file_for(*model, std::move(tk));
                     write_tokens(opt->rq_out, tf, token_format_for(opt->rq_out, opt->rq_fmt));
                     return 0;
                   }});
  }
  {
    // roundtrip
    struct Opts {
      std::string rt_in, rt_out;
      double rt_bw = 0;
      int rt_nq = 0;
    };
    auto opt = std::make_shared<Opts>();
    auto* rt = app.add_subcommand("roundtrip", "audio -> tokens -> audio");
    rt->add_option("input", opt->rt_in, "audio file")->required();
    rt->add_option("-o,--output", opt->rt_out, "audio file")->required();
    rt->add_option("-b,--bandwidth", opt->rt_bw, "bandwidth in kbps")->check(bandwidth_kbps());
    rt->add_option("-n,--n-q", opt->rt_nq, "number of codebooks")->check(n_q_range());
    add_common_options(rt, c);
    add_strict_option(rt, c);
    rt->add_option(
        "--vq-precision", c.vq_precision,
        "codebook search: f32 (default), bf16 or int8 (faster shortlists, every near tie rescored exactly: the "
        "same tokens; bf16 runs as float32 with a warning on CPUs without AVX512-BF16/AMX)");
    out.push_back({rt, [opt, &c]() -> int {
                     Progress prog{!c.quiet};
                     check_output(opt->rt_out, {opt->rt_in});
                     auto model = load_model(c);
                     const int nq = n_q_from(*model, opt->rt_bw, opt->rt_nq);
                     Audio audio = read_input_audio(opt->rt_in, model->sample_rate(), c);
                     prog.on = prog.on && audio.samples.size() > size_t(model->sample_rate()) * 3;
                     ProgressScope ps(prog.bar());
                     Tokens tk = model->encode(audio.samples.data(), int64_t(audio.samples.size()), nq);
                     prog.say("encoded " + std::to_string(tk.frames) + " frames");
                     std::vector<float> out = model->decode(tk);
                     out.resize(audio.samples.size());
                     write_audio(opt->rt_out, out, model->sample_rate());
                     prog.say("done");
                     return 0;
                   }});
  }
}

}  // namespace wavtok
