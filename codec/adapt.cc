#include "codec/adapt.h"

#include <algorithm>
#include <span>
#include <string>

#include "core/error.h"
#include "core/progress.h"
#include "dsp/metrics.h"
#include "vq/rvq.h"

namespace wavtok {
namespace {

int resolve_n_q(const Model& m, int n_q) {
  if (n_q < 0 || n_q > m.max_n_q())
    throw Error("adapt: " + std::to_string(n_q) + " codebooks asked for, the model has " + std::to_string(m.max_n_q()));
  return n_q == 0 ? m.max_n_q() : n_q;
}

// All clips' latents side by side: [dim, total frames].
Tensor concat_latents(const std::vector<Tensor>& latents, int64_t dim) {
  int64_t total = 0;
  for (const Tensor& t : latents) {
    if (t.ndim() != 2 || t.dim(0) != dim)
      throw Error("adapt: latent has shape " + shape_str(t.shape()) + ", the model's are [" + std::to_string(dim) +
                  ", frames]");
    total += t.dim(1);
  }
  if (total < 1) throw Error("adapt: no latent frames to adapt on");
  Tensor all({dim, total});
  int64_t at = 0;
  for (const Tensor& t : latents) {
    const int64_t f = t.dim(1);
    for (int64_t d = 0; d < dim; ++d) std::copy(t.data() + d * f, t.data() + (d + 1) * f, all.data() + d * total + at);
    at += f;
  }
  return all;
}

// decode(audio) trimmed to the common length with the reference.
std::pair<std::span<const float>, std::span<const float>> common(const std::vector<float>& ref,
                                                                 const std::vector<float>& out) {
  const size_t n = std::min(ref.size(), out.size());
  return {std::span<const float>(ref.data(), n), std::span<const float>(out.data(), n)};
}

}  // namespace

AdaptResult adapt_model(const Model& parent, const std::vector<Tensor>& latents, const AdaptOptions& opt) {
  const int nq = resolve_n_q(parent, opt.n_q);
  const ResidualVQ& vq = parent.quantizer();
  if (vq.n_q() < 1) throw Error(parent.weights().origin() + ": the model has no codebook to adapt");
  std::vector<bool> chosen(size_t(nq), opt.levels.empty());
  for (int l : opt.levels) {
    if (l < 0 || l >= nq)
      throw Error("adapt: codebook level " + std::to_string(l) + " does not exist or is not used (levels 0.." +
                  std::to_string(nq - 1) + " encode at " + std::to_string(nq) + " codebooks)");
    chosen[size_t(l)] = true;
  }
  const int64_t D = vq.dim();
  Tensor residual = concat_latents(latents, D);
  const int64_t F = residual.dim(1);

  AdaptResult r;
  r.config = parent.config();
  r.config.parent_fingerprint = parent.fingerprint();
  r.weights = parent.weights();
  std::vector<int32_t> codes(static_cast<size_t>(F));
  for (int q = 0; q < nq; ++q) {
    Tensor book = vq.codebook(q);
    if (chosen[size_t(q)]) {
      AdaptLevelReport rep;
      rep.level = q;
      CodebookAdaptOptions o = opt.codebook;
      const auto outer = opt.codebook.on_step;
      o.on_step = [&, outer](int step, double mse) {
        if (outer) outer(step, mse);
        report_progress("adapt", (double(q) + double(step) / std::max(1, o.iterations)) / nq);
      };
      book = adapt_codebook(book, residual.data(), F, o, &rep.stats);
      r.weights.set(codebook_tensor_name(r.config, q), book);
      r.levels.push_back(rep);
    }
    // The residual the next level codes, through this level's (adapted) codebook.
    codebook_mse(book, residual.data(), F, codes.data());
    for (int64_t d = 0; d < D; ++d)
      for (int64_t f = 0; f < F; ++f) residual[d * F + f] -= book[int64_t(codes[size_t(f)]) * D + d];
  }
  r.model = Model::from_weights(r.config, r.weights);
  return r;
}

AdaptQuality measure_quality(const Model& m, const std::vector<std::vector<float>>& audio,
                             const std::vector<Tensor>& latents, int n_q, int bandwidth_id) {
  if (audio.size() != latents.size() || audio.empty()) throw Error("adapt: measure_quality needs one latent per clip");
  n_q = resolve_n_q(m, n_q);
  AdaptQuality q;
  double se = 0;
  for (size_t i = 0; i < audio.size(); ++i) {
    Tensor quantized;
    m.quantize(latents[i], n_q, &quantized);
    for (int64_t j = 0; j < quantized.numel(); ++j) {
      const double d = double(latents[i][j]) - quantized[j];
      se += d * d;
    }
    q.frames += latents[i].dim(1);
    const std::vector<float> out = m.decode_latents(quantized, bandwidth_id);
    const auto [ref, est] = common(audio[i], out);
    q.mel += mel_distance(ref, est, m.sample_rate());
    q.stoi += stoi(ref, est, m.sample_rate());
    report_progress("measure", double(i + 1) / double(audio.size()));
  }
  q.latent_mse = se / double(q.frames * m.latent_dim());
  q.mel /= double(audio.size());
  q.stoi /= double(audio.size());
  return q;
}

TokenDecodeQuality decode_quality(const Model& m, const std::vector<Tokens>& tokens,
                                  const std::vector<std::vector<float>>& audio, int bandwidth_id) {
  if (tokens.size() != audio.size() || audio.empty()) throw Error("adapt: decode_quality needs one token set per clip");
  TokenDecodeQuality q;
  for (size_t i = 0; i < audio.size(); ++i) {
    const std::vector<float> out = m.decode(tokens[i], bandwidth_id);
    const auto [ref, est] = common(audio[i], out);
    q.stoi += stoi(ref, est, m.sample_rate());
    q.mel += mel_distance(ref, est, m.sample_rate());
    report_progress("decode old tokens", double(i + 1) / double(audio.size()));
  }
  q.stoi /= double(audio.size());
  q.mel /= double(audio.size());
  return q;
}

TokenDecodeQuality unquantized_quality(const Model& m, const std::vector<Tensor>& latents,
                                       const std::vector<std::vector<float>>& audio, int bandwidth_id) {
  if (latents.size() != audio.size() || audio.empty())
    throw Error("adapt: unquantized_quality needs one latent per clip");
  TokenDecodeQuality q;
  for (size_t i = 0; i < audio.size(); ++i) {
    const std::vector<float> out = m.decode_latents(latents[i], bandwidth_id);
    const auto [ref, est] = common(audio[i], out);
    q.stoi += stoi(ref, est, m.sample_rate());
    q.mel += mel_distance(ref, est, m.sample_rate());
    report_progress("decode latents", double(i + 1) / double(audio.size()));
  }
  q.stoi /= double(audio.size());
  q.mel /= double(audio.size());
  return q;
}

}  // namespace wavtok
