// `wavtok bench --profile`: the stages timed through the public API and each layer timed alone.
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

Profile run_profile(const Model& m, double sec, int repeats) {
  Profile p;
  p.seconds = sec;
  const ModelConfig& cfg = m.config();
  const int64_t n = int64_t(std::llround(sec * m.sample_rate()));
  std::vector<float> audio = bench_audio(n, m.sample_rate());
  const int nq = m.max_n_q();
  Tensor lat = m.encode_latents(audio.data(), n);
  Tokens tok = m.quantize(lat, nq);
  Tensor feat = m.dequantize(tok);
  const int64_t F = lat.dim(1);
  auto stage = [&](const std::string& name, const std::function<void()>& fn) {
    StageResult s;
    s.stage = name;
    s.s = time_phase(name, sec, get_num_threads(), repeats, fn).median_s;
    p.stages.push_back(s);
  };
  stage("encoder", [&] { m.encode_latents(audio.data(), n); });
  stage("vq", [&] { m.quantize(lat, nq); });
  if (cfg.arch == Arch::WavTokenizer) {
    VocosBackbone bb(m.weights(), "backbone.", cfg.vocos);
    IstftHead head(m.weights(), "head.", cfg.vocos);
    Tensor h = bb.forward(feat.data(), F, 0);
    stage("dequantize", [&] { m.dequantize(tok); });
    stage("backbone", [&] { bb.forward(feat.data(), F, 0); });
    stage("head", [&] { head.forward(h.data(), F); });
    for (const auto& l : wavtokenizer_layer_costs(cfg, n, F)) {
      LayerResult r;
      r.l = l;
      r.s = time_layer(l, repeats) * (l.kind == "lstm" || l.kind == "vq" ? 1 : double(l.count));
      p.layers.push_back(r);
      for (auto& s : p.stages)
        if (s.stage == l.stage) s.macs += l.macs;
    }
  } else {
    stage("decoder", [&] { m.decode_latents(feat); });
  }
  return p;
}

}  // namespace wavtok::bench
