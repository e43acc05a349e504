// Checks a model against reference outputs laid out like ../shared/fixtures/wavtokenizer-75
// (speech.input.wav, speech.latents.npy, speech.features.npy, speech.codes.npy, speech.decoded.wav),
// with the fixture README's tolerances.
#pragma once

#include <algorithm>
#include <cmath>

#include <gtest/gtest.h>

#include "dsp/audio_io.h"
#include "models/model.h"
#include "tests/testing/test_util.h"

namespace wavtok::testing {

struct Expect {
  std::vector<float> latents, features, decoded;
  std::vector<int64_t> codes;
};

inline Expect load_expected(const std::string& dir) {
  Expect e;
  e.latents = npy_floats(dir + "/speech.latents.npy");
  e.features = npy_floats(dir + "/speech.features.npy");
  e.codes = npy_ints(dir + "/speech.codes.npy");
  e.decoded = read_audio(dir + "/speech.decoded.wav", 24000).samples;
  return e;
}

// The fixture README's tolerances: codes >= 99% equal, latents/features <= 1e-3, audio >= 50 dB SNR.
inline void check_against(const Model& m, const std::string& dir) {
  const Expect e = load_expected(dir);
  Audio in = read_audio(dir + "/speech.input.wav", m.sample_rate());
  Tensor lat = m.encode_latents(in.samples.data(), int64_t(in.samples.size()));
  ASSERT_EQ(lat.numel(), int64_t(e.latents.size())) << "latent shape " << shape_str(lat.shape());
  EXPECT_LE(max_abs(lat.data(), e.latents), 1e-3) << "latents";
  Tensor q;
  Tokens tk = m.quantize(lat, 1, &q);
  ASSERT_EQ(tk.codes.size(), e.codes.size());
  size_t same = 0;
  for (size_t i = 0; i < e.codes.size(); ++i) same += tk.codes[i] == e.codes[i];
  EXPECT_GE(double(same) / e.codes.size(), 0.99) << same << " of " << e.codes.size() << " codes equal";
  // Features are the chosen codewords: compare them on the frames whose code agrees (a frame whose code
  // flipped on a near-tie, within the 1% allowed above, carries another codeword by definition).
  const int64_t F = int64_t(e.codes.size()), D = lat.dim(0);
  double worst = 0;
  for (int64_t d = 0; d < D; ++d)
    for (int64_t f = 0; f < F; ++f)
      if (tk.codes[f] == e.codes[f]) worst = std::max(worst, double(std::abs(q[d * F + f] - e.features[d * F + f])));
  EXPECT_LE(worst, 1e-3) << "features";
  // Decode the fixture's codes (not ours) so decoding is checked on its own.
  Tokens ref;
  ref.n_q = 1;
  ref.frames = int64_t(e.codes.size());
  ref.codes.assign(e.codes.begin(), e.codes.end());
  std::vector<float> audio = m.decode(ref);
  ASSERT_EQ(audio.size(), e.decoded.size());
  EXPECT_GE(snr_db(e.decoded, audio), 50.0);
}

}  // namespace wavtok::testing
