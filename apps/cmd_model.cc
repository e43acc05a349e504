// Model-file subcommands: convert (checkpoint -> .wtk) and info (registered by cli_main, apps/cli.cc).
#include <cstdio>
#include <cstring>
#include <memory>

#include "apps/commands.h"
#include "codec/streaming.h"
#include "core/error.h"
#include "core/settings.h"
#include "io/model_file.h"
#include "models/model.h"
#include "models/quantized.h"

namespace wavtok {

namespace {

// `wavtok info`: how the model streams and its latency (docs/STREAMING.md).
void print_streaming_latency(const Model& m) {
  const ModelConfig& c = m.config();
  const double ms = 1000.0 / c.sample_rate;
  if (c.causal()) {
    const int64_t s = causal_latency_samples(c);
    if (c.arch == Arch::WavTokenizer)
      std::printf(
          "streaming:    causal, exact (streamed = one-shot, bit for bit); algorithmic latency %lld samples = "
          "%.1f ms (a frame's hop %.1f ms + the iSTFT's look-ahead %.1f ms), --preset realtime\n",
          static_cast<long long>(s), s * ms, c.hop() * ms, c.vocos.istft_pad() * ms);
    else
      std::printf(
          "streaming:    causal, exact; algorithmic latency %lld samples = %.1f ms (a frame's hop), "
          "--preset realtime\n",
          static_cast<long long>(s), s * ms);
    return;
  }
  std::printf("streaming:    windowed decoder (the model looks ahead); decoder latency (block + lookahead frames):");
  for (const char* name : {"low-latency", "default", "high-fidelity"}) {
    const StreamParams p = stream_preset(name);
    std::printf(" %s %.0f ms%s", name, (p.block_frames + p.lookahead_frames) * c.hop() * ms,
                std::strcmp(name, "high-fidelity") ? "," : "");
  }
  std::printf("; plus the encoder's look-ahead; the realtime preset needs a causal model\n");
}

}  // namespace

void register_model_commands(CLI::App& app, Common& c, std::vector<Command>& out) {
  {
    // convert
    struct Opts {
      std::string cv_in, cv_out;
    };
    auto opt = std::make_shared<Opts>();
    auto* cv = app.add_subcommand("convert", "PyTorch checkpoint (+config.yaml) -> wavtok model file (.wtk)");
    cv->add_option("checkpoint", opt->cv_in, ".ckpt / .th / .pt")->required();
    cv->add_option("-o,--output", opt->cv_out, "output model file")->required();
    cv->add_option("--config", c.config, "config.yaml (default: beside the checkpoint)");
    cv->add_flag("-q,--quiet", c.quiet, "no progress output");
    out.push_back({cv, [opt, &c]() -> int {
                     check_output(opt->cv_out, {opt->cv_in, c.config});
                     LoadOptions o;
                     o.config_path = c.config;
                     auto model = Model::load(opt->cv_in, o);
                     write_model_file(opt->cv_out, model->config(), model->weights());
                     if (!c.quiet)
                       std::fprintf(stderr, "wrote %s: %lld parameters\n", opt->cv_out.c_str(),
                                    static_cast<long long>(model->parameter_count()));
                     return 0;
                   }});
  }
  {
    // info
    struct Opts {
      std::string info_in, info_m;
    };
    auto opt = std::make_shared<Opts>();
    auto* info = app.add_subcommand("info", "print model dimensions, rates, streaming latency and parameter count");
    info->add_option("model", opt->info_in,
                     "model file, checkpoint or shipped model name (default, rt; default: the shipped default)");
    info->add_option("-m,--model", opt->info_m, "the same as the positional argument");
    info->add_option("--config", c.config, "config.yaml for a checkpoint");
    out.push_back(
        {info, [opt, &c]() -> int {
           if (!opt->info_in.empty() && !opt->info_m.empty() && opt->info_in != opt->info_m)
             throw Error("info: two models given (" + opt->info_in + " and -m " + opt->info_m + ")");
           c.model = opt->info_in.empty() ? opt->info_m : opt->info_in;
           auto model = load_model(c);
           const ModelConfig& m = model->config();
           const std::string path = resolve_model(c);
           const std::string shown = path.empty() ? std::string("built-in default model")
                                     : path.rfind("<shipped:", 0) == 0
                                         ? "shipped model " + path.substr(9, path.size() - 10)
                                         : path;
           std::printf("model:        %s\n", shown.c_str());
           std::printf("architecture: %s\n", arch_name(m.arch));
           std::printf("sample rate:  %d Hz\n", m.sample_rate);
           std::printf("hop:          %d samples (%.2f frames/s)\n", m.hop(), m.frame_rate());
           std::printf("codebooks:    %d x %d entries of dim %d\n", m.quantizer.n_q, m.quantizer.bins, m.quantizer.dim);
           std::printf("bitrate:      %.3f kbps per codebook\n", m.kbps(1));
           std::printf("encoder:      n_filters %d, dimension %d, ratios", m.encoder.n_filters, m.encoder.dimension);
           for (int r : m.encoder.ratios) std::printf(" %d", r);
           std::printf(", %s%s\n", m.encoder.causal ? "causal" : "non-causal",
                       !model->encoder_bf16_convs() ? ""
                       : bf16_supported()                     ? "; bf16 convolutions"
                                                              : "; bf16 convolutions asked, float32 on this CPU");
           if (m.arch == Arch::WavTokenizer) {
             std::printf("backbone:     dim %d, intermediate %d, %d layers; head n_fft %d hop %d\n", m.vocos.dim,
                         m.vocos.intermediate_dim, m.vocos.num_layers, m.vocos.n_fft, m.vocos.hop);
             std::printf("pos_net:      %s, attention ",
                         m.vocos.pos_net_norm == "affine" ? "per-channel affine" : "GroupNorm over time");
             if (m.vocos.attention_windowed())
               std::printf("keys t-%d..t+%d", m.vocos.attention_left, m.vocos.attention_right);
             else std::printf("over the whole input");
             std::printf(" (%s)\n",
                         m.vocos.local() ? "local: streams like one-shot" : "streams approximately, docs/STREAMING.md");
           } else std::printf("decoder:      SEANet n_filters %d\n", m.decoder.n_filters);
           print_streaming_latency(*model);
           std::printf("parameters:   %lld\n", static_cast<long long>(model->parameter_count()));
           if (const std::string q = quantization_summary(model->weights()); !q.empty())
             std::printf("quantized:    %s\n", q.c_str());
           std::printf("fingerprint:  %016llx\n", static_cast<unsigned long long>(model->fingerprint()));
           if (model->parent_fingerprint())
             std::printf("adapted from: %016llx (wavtok adapt; tokens of either model decode with the other)\n",
                         static_cast<unsigned long long>(model->parent_fingerprint()));
           return 0;
         }});
  }
}

}  // namespace wavtok
