// `wavtok adapt`: a model's codebooks adapted to new audio (music, a new language, a new microphone) without
// training. The encoder and decoder stay as they are; each chosen codebook is re-estimated on the parent's
// pre-quantization latents of the new audio by anchored Lloyd steps (vq/adapt.h), so that a stored token keeps
// its meaning. The child records its parent's fingerprint (ModelConfig::parent_fingerprint), so tokens of either
// decode with the other (with a warning, io/token_file.h and models/model.h) while tokens of unrelated models stay
// refused. docs/ADAPT.md describes the method and its measurements.
#pragma once

#include <memory>
#include <vector>

#include "models/model.h"
#include "vq/adapt.h"

namespace wavtok {

struct AdaptOptions {
  CodebookAdaptOptions codebook;
  std::vector<int> levels;  // codebooks (RVQ levels) to adapt; empty: every level that encoding uses
  int n_q = 0;              // codebooks used to encode (0: all the model has)
};

struct AdaptLevelReport {
  int level = 0;
  CodebookAdaptStats stats;  // on the residual this level codes (the latent itself at level 0)
};

struct AdaptResult {
  ModelConfig config;  // the parent's, with parent_fingerprint set
  WeightMap weights;   // the parent's, with the adapted codebooks
  std::shared_ptr<const Model> model;
  std::vector<AdaptLevelReport> levels;
};

// latents: the parent's pre-quantization latents of the adaptation audio (Model::encode_latents), one [dim, frames]
// tensor per clip. Levels are adapted in order, each on the residual left by the (adapted) levels before it, as
// the greedy residual search will code it. Throws an Error for no frames, bad levels or non-finite latents.
AdaptResult adapt_model(const Model& parent, const std::vector<Tensor>& latents, const AdaptOptions& options);

// Quality of a model on clips of audio (at its rate) whose latents are given (the encoder is shared by a parent
// and its child, so one encoding serves both).
struct AdaptQuality {
  double latent_mse = 0;  // mean over all frames and channels of |z - quantized(z)|^2 with n_q codebooks
  double mel = 0;         // mean over clips of mel_distance(x, decode(encode(x)))
  double stoi = 0;        // mean over clips of stoi(x, decode(encode(x)))
  int64_t frames = 0;
};
AdaptQuality measure_quality(const Model& m, const std::vector<std::vector<float>>& audio,
                             const std::vector<Tensor>& latents, int n_q, int bandwidth_id = 0);

// Old tokens: `tokens` (made by another model, e.g. the parent) decoded by m, scored against the audio they came
// from. Returns the mean over clips of STOI and of the mel distance.
struct TokenDecodeQuality {
  double stoi = 0;
  double mel = 0;
};
TokenDecodeQuality decode_quality(const Model& m, const std::vector<Tokens>& tokens,
                                  const std::vector<std::vector<float>>& audio, int bandwidth_id = 0);
// The same for the continuous latents decoded without quantization: what no codebook can improve on (the encoder
// and decoder are shared by a parent and its child).
TokenDecodeQuality unquantized_quality(const Model& m, const std::vector<Tensor>& latents,
                                       const std::vector<std::vector<float>>& audio, int bandwidth_id = 0);

}  // namespace wavtok
