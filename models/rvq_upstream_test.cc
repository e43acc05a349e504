// Residual VQ codes against upstream EnCodec's (../shared/fixtures/encodec-24k), level by level, at every EnCodec
// bitrate. Upstream's RVQ is greedy, so its codes at 3 and 12 kbps are the first 4 and 16 rows of its 24 kbps codes:
// the fixture's bw24 file gives all five bitrates (1.5/3/6/12/24 kbps = 2/4/8/16/32 codebooks); the bw1.5 and bw6
// files are checked to be such prefixes. Two inputs: upstream's own encoder output (speech.emb.npy: the search alone)
// and this engine's encoder output (what `wavtok encode` does: encoder and search together).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <memory>

#include <gtest/gtest.h>

#include "core/settings.h"
#include "dsp/audio_io.h"
#include "models/model.h"
#include "tests/testing/test_util.h"

namespace wavtok {
namespace {

using namespace wavtok::testing;

struct LevelAgreement {
  std::vector<double> per_level;  // fraction of frames equal, per codebook
  double overall = 0;
};

LevelAgreement compare(const Tokens& got, const std::vector<int64_t>& ref, int nq, int64_t frames) {
  LevelAgreement a;
  int64_t same_all = 0;
  for (int q = 0; q < nq; ++q) {
    int64_t same = 0;
    for (int64_t f = 0; f < frames; ++f) same += got.codes[size_t(q * frames + f)] == ref[size_t(q * frames + f)];
    a.per_level.push_back(double(same) / double(frames));
    same_all += same;
  }
  a.overall = double(same_all) / double(nq * frames);
  return a;
}

class EncodecUpstreamCodes : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model = Model::load(fixture("encodec-24k/model.th"));
    const RawTensor e = read_npy(fixture("encodec-24k/speech.emb.npy"));  // (1, 32, 300)
    upstream_emb = std::make_unique<Tensor>(std::vector<int64_t>{e.shape.at(1), e.shape.at(2)}, e.to_float());
    Audio in = read_audio(fixture("encodec-24k/speech.input.wav"), 24000);
    our_emb = std::make_unique<Tensor>(model->encode_latents(in.samples.data(), int64_t(in.samples.size())));
    set_precision(Precision::F64);  // the encoder's convolutions accumulate in float64
    our_emb64 = std::make_unique<Tensor>(model->encode_latents(in.samples.data(), int64_t(in.samples.size())));
    set_precision(Precision::F32);
    ref24 = std::make_unique<std::vector<int64_t>>(npy_ints(fixture("encodec-24k/speech.bw24.codes.npy")));
  }
  static void TearDownTestSuite() {
    upstream_emb.reset();
    our_emb.reset();
    our_emb64.reset();
    ref24.reset();
    model.reset();
  }
  static std::shared_ptr<const Model> model;
  static std::unique_ptr<Tensor> upstream_emb, our_emb, our_emb64;
  static std::unique_ptr<std::vector<int64_t>> ref24;  // (32, 1, 300)
};
std::shared_ptr<const Model> EncodecUpstreamCodes::model;
std::unique_ptr<Tensor> EncodecUpstreamCodes::upstream_emb;
std::unique_ptr<Tensor> EncodecUpstreamCodes::our_emb;
std::unique_ptr<Tensor> EncodecUpstreamCodes::our_emb64;
std::unique_ptr<std::vector<int64_t>> EncodecUpstreamCodes::ref24;

TEST_F(EncodecUpstreamCodes, LowerBitratesArePrefixesOf24k) {
  ASSERT_EQ(ref24->size(), size_t(32 * 300));
  for (const char* bw : {"1.5", "6"}) {
    const std::vector<int64_t> r = npy_ints(fixture(std::string("encodec-24k/speech.bw") + bw + ".codes.npy"));
    ASSERT_LE(r.size(), ref24->size());
    EXPECT_TRUE(std::equal(r.begin(), r.end(), ref24->begin())) << bw << " kbps";
  }
}

// Precision::F64 brings the latents nearer upstream's (upstream itself is float32, 2.0e-8 rms from a float64 run).
TEST_F(EncodecUpstreamCodes, F64EncoderLatentsAreNearerUpstream) {
  auto dist = [&](const Tensor& t, double* worst) {
    double s = 0;
    *worst = 0;
    for (int64_t i = 0; i < t.numel(); ++i) {
      const double d = double(t[i]) - double((*upstream_emb)[i]);
      s += d * d;
      *worst = std::max(*worst, std::abs(d));
    }
    return std::sqrt(s / double(t.numel()));
  };
  ASSERT_EQ(our_emb64->numel(), upstream_emb->numel());
  double max32 = 0, max64 = 0;
  const double rms32 = dist(*our_emb, &max32), rms64 = dist(*our_emb64, &max64);
  std::printf("latents vs upstream: f32 rms %.3g max %.3g; f64 rms %.3g max %.3g\n", rms32, max32, rms64, max64);
  EXPECT_LT(rms64, rms32);
}

TEST_F(EncodecUpstreamCodes, EveryLevelAtEveryBitrate) {
  const int64_t frames = 300;
  for (const double bw : {1.5, 3.0, 6.0, 12.0, 24.0}) {
    const int nq = model->config().n_q_for_bandwidth(bw);
    for (const int src : {0, 1, 2}) {  // upstream's latents, this engine's in f32, this engine's in f64
      const Tensor& emb = src == 0 ? *upstream_emb : src == 1 ? *our_emb : *our_emb64;
      const Tokens tk = model->quantize(emb, nq);
      ASSERT_EQ(tk.codes.size(), size_t(nq * frames));
      const LevelAgreement a = compare(tk, *ref24, nq, frames);
      std::printf("%5.1f kbps, %-18s %6.2f %%; per level:", bw,
                  src == 0 ? "upstream emb:" : src == 1 ? "our encoder (f32):" : "our encoder (f64):", 100 * a.overall);
      for (double l : a.per_level) std::printf(" %.1f", 100 * l);
      std::printf("\n");
      if (src == 0) {
        // From upstream's own latents the search is the only difference. Issue 23 asks >= 99.5 % at every bitrate;
        // the exact search gives every code at every level (measured: 100 % everywhere).
        EXPECT_GE(a.overall, 0.995) << bw << " kbps, upstream's emb";
        for (int q = 0; q < nq; ++q) EXPECT_EQ(a.per_level[size_t(q)], 1.0) << bw << " kbps, level " << q;
      } else if (src == 1) {
        // From this engine's float32 encoder (latents within 2.7e-7 of upstream's, rms 4.6e-8), the deep levels meet
        // ties finer than that: at level 9, frame 70, the two nearest codewords are 8e-14 apart in |r - e|^2 (1.2e-7
        // of |r|^2), so a 9e-8 change of the latent makes the other one truly nearer, and every later level of that
        // frame follows. No search arithmetic can recover those (the float64 nearest code of *our* latent differs
        // from upstream's). Measured: 100 % up to 6 kbps, 99.92 % at 12, 99.49 % at 24 kbps: >= 99.5 % is asserted
        // up to 12 kbps and the fixture README's >= 99 % at 24 kbps.
        EXPECT_GE(a.overall, bw <= 12.0 ? 0.995 : 0.99) << bw << " kbps, our encoder (f32)";
      } else {
        // Precision::F64: the encoder's convolutions accumulate in float64, so our latents are about as far from
        // upstream's as upstream's float32 rounding (rms 2e-8 from a float64 run), and the near-ties fall as they do
        // for a float64 run of the reference (which itself matches upstream on 99.875 % at 24 kbps). Measured:
        // 100 % up to 6 kbps, 99.94 % at 12, 99.68 % at 24 kbps. Issue 23's >= 99.5 % at every bitrate.
        EXPECT_GE(a.overall, 0.995) << bw << " kbps, our encoder (f64)";
      }
    }
  }
}

}  // namespace
}  // namespace wavtok
