// The random-weight fixture model (../shared/fixtures/wavtokenizer-75) as the ptq/ tests use it: the model with
// its config.yaml, its input clip, and the clip's calibration statistics. Each is made once per test binary.
#pragma once

#include <algorithm>
#include <cstddef>
#include <limits>
#include <memory>
#include <vector>

#include "dsp/audio_io.h"
#include "models/model.h"
#include "ptq/calibrate.h"
#include "tests/testing/test_util.h"

namespace wavtok::testing {

// wavtokenizer-75/model.ckpt with its config.yaml, loaded once.
inline std::shared_ptr<const Model> fixture_wavtokenizer() {
  static const std::shared_ptr<const Model> m =
      Model::load(fixture("wavtokenizer-75/model.ckpt"), {fixture("wavtokenizer-75/config.yaml")});
  return m;
}

// wavtokenizer-75/speech.input.wav at 24 kHz, cut to its first max_samples samples.
inline std::vector<float> fixture_speech(size_t max_samples = std::numeric_limits<size_t>::max()) {
  std::vector<float> audio = read_audio(fixture("wavtokenizer-75/speech.input.wav"), 24000).samples;
  audio.resize(std::min(audio.size(), max_samples));
  return audio;
}

// The fixture model, its whole clip, and that clip's calibration statistics (512 samples a layer).
struct FixtureModel {
  std::shared_ptr<const Model> model;
  std::vector<float> audio;
  CalibStats stats;
};

inline const FixtureModel& fixture_model() {
  static const FixtureModel f = [] {
    FixtureModel x;
    x.model = fixture_wavtokenizer();
    x.audio = fixture_speech();
    x.stats = calibrate(*x.model, {x.audio}, 0, 512);
    return x;
  }();
  return f;
}

}  // namespace wavtok::testing
