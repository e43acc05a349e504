// Model-file subcommands: convert (checkpoint -> .wtk) and info (registered by cli_main, apps/cli.cc).
#include <cstdio>
#include <memory>

#include "apps/commands.h"
#include "io/model_file.h"
#include "models/model.h"

namespace wavtok {

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
        std::fprintf(stderr, "wrote %s: %lld parameters\n", opt->cv_out.c_str(), static_cast<long long>(model->parameter_count()));
      return 0;
    }});
  }
  {
    // info
    struct Opts {
      std::string info_in;
    };
    auto opt = std::make_shared<Opts>();
    auto* info = app.add_subcommand("info", "print model dimensions, rates and parameter count");
    info->add_option("model", opt->info_in, "model file or checkpoint (default: the shipped model)");
    info->add_option("--config", c.config, "config.yaml for a checkpoint");
    out.push_back({info, [opt, &c]() -> int {
      c.model = opt->info_in;
      auto model = load_model(c);
      const ModelConfig& m = model->config();
      const std::string path = resolve_model(c);
      std::printf("model:        %s\n", path.empty() ? "built-in default model" : path.c_str());
      std::printf("architecture: %s\n", arch_name(m.arch));
      std::printf("sample rate:  %d Hz\n", m.sample_rate);
      std::printf("hop:          %d samples (%.2f frames/s)\n", m.hop(), m.frame_rate());
      std::printf("codebooks:    %d x %d entries of dim %d\n", m.quantizer.n_q, m.quantizer.bins, m.quantizer.dim);
      std::printf("bitrate:      %.3f kbps per codebook\n", m.kbps(1));
      std::printf("encoder:      n_filters %d, dimension %d, ratios", m.encoder.n_filters, m.encoder.dimension);
      for (int r : m.encoder.ratios) std::printf(" %d", r);
      std::printf(", %s\n", m.encoder.causal ? "causal" : "non-causal");
      if (m.arch == Arch::WavTokenizer) {
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
      if (model->parent_fingerprint())
        std::printf("adapted from: %016llx (wavtok adapt; tokens of either model decode with the other)\n",
                    static_cast<unsigned long long>(model->parent_fingerprint()));
      return 0;
    }});
  }
}

}  // namespace wavtok
