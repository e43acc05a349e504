// Per-token int8 activations on the SEANet encoder convs (recipe key `act_range: token`, NAME.act_dynamic, docs/PTQ.md
// "Per-token activations"): what the recipe writes, the file round trip, the latents against float next to the same
// convs with one static min-max range each, and the refusal of malformed markers.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/util.h"
#include "dsp/audio_io.h"
#include "io/model_file.h"
#include "models/model.h"
#include "models/quantized.h"
#include "ptq/calibrate.h"
#include "tests/testing/model_file_testing.h"
#include "tests/testing/test_util.h"

namespace wavtok {
namespace {

using namespace wavtok::testing;

constexpr const char* kEncoderConvs =
    R"('encoder\.model\.\d+\.(conv\.conv|block\.\d+\.conv\.conv|shortcut\.conv\.conv)$')";

std::string recipe_text(const std::string& act_range) {
  return std::string("rules:\n  - match: ") + kEncoderConvs + "\n    act_range: " + act_range + "\n";
}

double latent_snr(const Model& f, const Model& q, const std::vector<float>& audio) {
  const Tensor a = f.encode_latents(audio.data(), int64_t(audio.size()));
  const Tensor b = q.encode_latents(audio.data(), int64_t(audio.size()));
  return snr_db(std::vector<float>(a.data(), a.data() + a.numel()), std::vector<float>(b.data(), b.data() + b.numel()));
}

double token_agreement(const Model& f, const Model& q, const std::vector<float>& audio) {
  const Tokens a = f.encode(audio.data(), int64_t(audio.size()), 1);
  const Tokens b = q.encode(audio.data(), int64_t(audio.size()), 1);
  int64_t same = 0;
  for (size_t i = 0; i < a.codes.size(); ++i) same += a.codes[i] == b.codes[i];
  return double(same) / double(a.codes.size());
}

// Model::from_weights of these weights (with m's config) must throw an Error containing `needle`.
void expect_weights_refused(const Model& m, WeightMap w, const std::string& needle) {
  try {
    Model::from_weights(m.config(), std::move(w));
    ADD_FAILURE() << "accepted (" << needle << ")";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

// Clears feature `bit` in the header of the file at `path` (a hand-edited header), then expects Model::load to refuse
// it with a message containing `what`.
void expect_refused_without_bit(const std::string& path, uint32_t bit, const std::string& what) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  uint32_t feats = 0;
  f.seekg(12);
  f.read(reinterpret_cast<char*>(&feats), 4);
  ASSERT_EQ(feats & bit, bit);
  feats &= ~bit;
  f.seekp(12);
  f.write(reinterpret_cast<const char*>(&feats), 4);
  f.close();
  try {
    Model::load(path);
    ADD_FAILURE() << path << " without feature bit " << bit << " was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
  }
}

class PtqToken : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = Model::load(fixture("wavtokenizer-75/model.ckpt"), {fixture("wavtokenizer-75/config.yaml")});
    audio_ = read_audio(fixture("wavtokenizer-75/speech.input.wav"), 24000).samples;
    stats_ = new CalibStats(calibrate(*model_, {audio_}, 0, 1024));
  }
  static void TearDownTestSuite() {
    delete stats_;
    model_.reset();
  }
  static std::shared_ptr<const Model> model_;
  static std::vector<float> audio_;
  static CalibStats* stats_;
};
std::shared_ptr<const Model> PtqToken::model_;
std::vector<float> PtqToken::audio_;
CalibStats* PtqToken::stats_ = nullptr;

TEST_F(PtqToken, WavTokenizerEncoderConvsBeatStaticRanges) {
  const Model& m = *model_;
  const WeightMap qt = apply_recipe(m, parse_recipe(recipe_text("token"), "token"), *stats_);
  const WeightMap qs = apply_recipe(m, parse_recipe(recipe_text("minmax"), "minmax"), *stats_);
  int marked = 0;
  for (const auto& [name, st] : *stats_) {
    if (!qt.has(name + ".act_dynamic")) {
      EXPECT_FALSE(qt.has(name + ".act_quant")) << name;  // only the encoder convs are quantized
      continue;
    }
    ++marked;
    EXPECT_EQ(qt.get(name + ".act_dynamic").shape(), std::vector<int64_t>{1});
    EXPECT_EQ(qt.get(name + ".act_dynamic")[0], 1.0f);
    const Tensor& a = qt.get(name + ".act_quant");
    EXPECT_EQ(a[0], 1.0f) << name;
    EXPECT_EQ(a[1], 0.0f) << name;
    EXPECT_FALSE(qt.has(name + ".act_shift")) << name;
    EXPECT_EQ(qt.get(name + ".weight_scale").numel(), qt.get(name + ".weight").dim(0)) << name;
    EXPECT_TRUE(qs.has(name + ".act_quant") && !qs.has(name + ".act_dynamic")) << name;
  }
  EXPECT_EQ(marked, 18);  // first + 4 x (2 residual + shortcut + down) + last
  EXPECT_EQ(required_model_features(qt) & kModelFeatureTokenAct, kModelFeatureTokenAct);
  EXPECT_EQ(required_model_features(qs) & kModelFeatureTokenAct, 0u);

  auto mt = Model::from_weights(m.config(), qt);
  auto ms = Model::from_weights(m.config(), qs);
  const double snr_t = latent_snr(m, *mt, audio_), snr_s = latent_snr(m, *ms, audio_);
  const double agr_t = token_agreement(m, *mt, audio_), agr_s = token_agreement(m, *ms, audio_);
  std::printf(
      "WavTokenizer fixture, 18 int8 encoder convs: latent SNR per-token %.2f dB (tokens %.1f%%), static "
      "min-max %.2f dB (tokens %.1f%%)\n",
      snr_t, 100 * agr_t, snr_s, 100 * agr_s);
  // The fixture's random-weight encoder ends in a conv whose bias cancels most of its output (see the note above
  // PtqSeanet.EncodecEndToEnd): the int8 weights alone leave ~6 dB of latent SNR whatever the activations do, so
  // the activations' own error is measured against the same int8 weights with float activations.
  auto mw = Model::from_weights(m.config(), with_int8_weights_float_acts(qt));
  const WeightMap wq = with_int8_weights_float_acts(qs);
  for (const char* n : {"feature_extractor.encodec.encoder.model.0.conv.conv.weight",
                        "feature_extractor.encodec.encoder.model.15.conv.conv.weight"}) {  // the same int8 weights
    const Tensor &a = wq.get(n), &b = mw->weights().get(n);
    ASSERT_EQ(a.numel(), b.numel());
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), size_t(a.numel()) * sizeof(float))) << n;
  }
  const double act_t = latent_snr(*mw, *mt, audio_), act_s = latent_snr(*mw, *ms, audio_);
  std::printf("  against the int8 weights with float activations: per-token %.2f dB, static min-max %.2f dB\n", act_t,
              act_s);
  // Measured 8.01 vs 7.76 dB: the random weights' activations have no quiet stretches or row-to-row level changes
  // for per-token ranges to exploit past the first conv (the shipped model's do: tests/token_quant_test.cc).
  EXPECT_GT(act_t, act_s);
  EXPECT_GT(snr_t, snr_s);
  // The first conv reads the audio itself, whose level does vary over time: alone in int8, per-token keeps the
  // latents much closer to float (measured 54.99 vs 43.81 dB).
  {
    auto rt = [&](const char* ar) {
      return std::string("rules:\n  - match: 'encoder\\.model\\.0\\.conv\\.conv$'\n    act_range: ") + ar + "\n";
    };
    auto a = Model::from_weights(m.config(), apply_recipe(m, parse_recipe(rt("token"), "t"), *stats_));
    auto b = Model::from_weights(m.config(), apply_recipe(m, parse_recipe(rt("minmax"), "t"), *stats_));
    const double first_t = latent_snr(m, *a, audio_), first_s = latent_snr(m, *b, audio_);
    std::printf("  first conv alone: per-token %.2f dB, static min-max %.2f dB\n", first_t, first_s);
    EXPECT_GT(first_t, first_s + 6.0);
  }

  // Through the file: the marker and the feature bit are written, the reloaded model gives the same bits.
  const std::string dir = scratch_dir("ptq_token");
  write_model_file(dir + "/q.wtk", m.config(), qt);
  auto md = Model::load(dir + "/q.wtk");
  EXPECT_TRUE(md->weights().has("feature_extractor.encodec.encoder.model.0.conv.conv.act_dynamic"));
  const Tensor la = mt->encode_latents(audio_.data(), int64_t(audio_.size()));
  const Tensor lb = md->encode_latents(audio_.data(), int64_t(audio_.size()));
  ASSERT_EQ(la.shape(), lb.shape());
  EXPECT_EQ(0, std::memcmp(la.data(), lb.data(), size_t(la.numel()) * sizeof(float)));
}

// A recipe asking for per-token activations where they cannot run names the layer.
TEST_F(PtqToken, RecipeRefusesTokenWhereItCannotRun) {
  const Model& m = *model_;
  auto expect_refused = [&](const std::string& yaml, const std::string& needle) {
    try {
      apply_recipe(m, parse_recipe(yaml, "r"), *stats_);
      ADD_FAILURE() << "accepted: " << yaml;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_refused(recipe_text("token") + "    transform: sqb\n", "encoder.model.0.conv.conv");
  expect_refused("rules:\n  - match: 'encoder\\.model\\.\\d+\\.lstm$'\n    act_range: token\n", "LSTM");
  expect_refused("rules:\n  - match: 'convnext\\.\\d+\\.pwconv1$'\n    act_range: token\n", "not a convolution");
  EXPECT_THROW(parse_recipe("rules:\n  - match: x\n    act_range: tokens\n", "r"), Error);
}

// Malformed markers in a file are refused when loading, naming the file and the tensor.
TEST_F(PtqToken, BadMarkersAreRefusedWhenLoading) {
  const Model& m = *model_;
  const WeightMap qt = apply_recipe(m, parse_recipe(recipe_text("token"), "token"), *stats_);
  const std::string conv = "feature_extractor.encodec.encoder.model.0.conv.conv";
  const std::string dir = scratch_dir("ptq_token_bad");
  auto expect_refused = [&](WeightMap w, const std::string& needle) {
    expect_weights_refused(m, std::move(w), needle);
  };
  {
    WeightMap w = qt;
    w.set(conv + ".act_dynamic", Tensor({1}, std::vector<float>{2.0f}));
    expect_refused(w, conv + ".act_dynamic");
  }
  {
    WeightMap w = qt;
    w.set(conv + ".act_dynamic", Tensor({2}, std::vector<float>{1.0f, 1.0f}));
    expect_refused(w, conv + ".act_dynamic");
  }
  {
    WeightMap w = qt;
    w.set(conv + ".act_quant", Tensor({2}, std::vector<float>{0.01f, 3.0f}));
    expect_refused(w, "act_quant must be [1, 0]");
  }
  {
    WeightMap w = qt;
    w.set(conv + ".weight_scale", Tensor({3}, std::vector<float>{1.0f, 1.0f, 1.0f}));
    expect_refused(w, conv + ".weight_scale");
  }
  {
    WeightMap w = m.weights();  // a marker on a float conv (no act_quant): it would be ignored
    w.set(conv + ".act_dynamic", Tensor({1}, std::vector<float>{1.0f}));
    expect_refused(w, "has no act_quant");
  }
  {
    WeightMap w = qt;  // on a Linear (2-D weight)
    const std::string pw = "backbone.convnext.0.pwconv1";
    const int64_t co = w.get(pw + ".weight").dim(0);
    w.set(pw + ".act_quant", Tensor({2}, std::vector<float>{1.0f, 0.0f}));
    w.set(pw + ".weight_scale", Tensor({co}, std::vector<float>(size_t(co), 0.01f)));
    w.set(pw + ".act_dynamic", Tensor({1}, std::vector<float>{1.0f}));
    expect_refused(w, "not a channels-last Conv1d");
  }
  // A file holding a marker without the feature bit (a hand-edited header) is refused by the reader.
  write_model_file(dir + "/q.wtk", m.config(), qt);
  expect_refused_without_bit(dir + "/q.wtk", kModelFeatureTokenAct, "per-token feature");
}

// Per-step, per-group ranges (recipe key act_group, NAME.act_group, Int8Params::act_group): what the recipe writes
// (the group, or the conv's channel count where it has fewer), the per-group kernel running (other latents than
// per-token, still close to float), the file round trip with feature bit 7, and the refusal of malformed markers.
TEST_F(PtqToken, GroupRangesLoadRunAndAreChecked) {
  const Model& m = *model_;
  const WeightMap qt = apply_recipe(m, parse_recipe(recipe_text("token"), "token"), *stats_);
  const WeightMap qg = apply_recipe(m, parse_recipe(recipe_text("token") + "    act_group: 4\n", "group"), *stats_);
  int marked = 0;
  for (const auto& [k, t] : qg.all()) {
    if (k.size() <= 10 || k.compare(k.size() - 10, 10, ".act_group") != 0) continue;
    const std::string layer = k.substr(0, k.size() - 10);
    const int64_t cin = qg.get(layer + ".weight").dim(1);
    EXPECT_EQ(t[0], float(std::min<int64_t>(4, cin))) << layer;
    EXPECT_TRUE(qg.has(layer + ".act_dynamic")) << layer;
    ++marked;
  }
  EXPECT_EQ(marked, 18);
  EXPECT_EQ(required_model_features(qg) & kModelFeatureGroupAct, kModelFeatureGroupAct);
  // what `wavtok info` prints of it
  const std::string summary = quantization_summary(qg);
  EXPECT_EQ(summary.rfind("int8 in ", 0), 0u) << summary;
  EXPECT_NE(summary.find("18 convs with per-token activation ranges, of which "), std::string::npos) << summary;
  EXPECT_NE(summary.find("per step and group of 4 channels"), std::string::npos) << summary;
  EXPECT_EQ(quantization_summary(qt).find("group"), std::string::npos) << quantization_summary(qt);
  EXPECT_EQ(quantization_summary(m.weights()), "");
  EXPECT_EQ(required_model_features(qt) & kModelFeatureGroupAct, 0u);
  auto mt = Model::from_weights(m.config(), qt);
  auto mg = Model::from_weights(m.config(), qg);
  const double snr_t = latent_snr(m, *mt, audio_), snr_g = latent_snr(m, *mg, audio_);
  const double t_g = latent_snr(*mt, *mg, audio_);
  std::printf(
      "WavTokenizer fixture, 18 int8 encoder convs: latent SNR per-token %.2f dB, per step and group of 4 "
      "%.2f dB; the two %.2f dB apart\n",
      snr_t, snr_g, t_g);
  EXPECT_LT(t_g, 60.0);  // the per-group kernel ran: other latents than per-token
  // Measured 9.94 against 6.18 dB: finer ranges keep the latents closer to float.
  EXPECT_GT(snr_g, snr_t + 2.0);

  const std::string dir = scratch_dir("ptq_group");
  write_model_file(dir + "/g.wtk", m.config(), qg);
  auto md = Model::load(dir + "/g.wtk");
  const Tensor la = mg->encode_latents(audio_.data(), int64_t(audio_.size()));
  const Tensor lb = md->encode_latents(audio_.data(), int64_t(audio_.size()));
  ASSERT_EQ(la.shape(), lb.shape());
  EXPECT_EQ(0, std::memcmp(la.data(), lb.data(), size_t(la.numel()) * sizeof(float)));

  const std::string conv = "feature_extractor.encodec.encoder.model.3.conv.conv";  // a downsampling conv
  const int64_t cin = qg.get(conv + ".weight").dim(1);
  ASSERT_GE(cin, 4);
  auto expect_refused = [&](WeightMap w, const std::string& needle) {
    expect_weights_refused(m, std::move(w), needle);
  };
  for (float bad : {0.0f, -4.0f, 2.5f, float(cin + 1), float(cin - 1)}) {
    WeightMap w = qg;
    w.set(conv + ".act_group", Tensor({1}, std::vector<float>{bad}));
    expect_refused(w, conv + ".act_group");
  }
  {
    WeightMap w = qg;
    w.set(conv + ".act_group", Tensor({2}, std::vector<float>{4.0f, 4.0f}));
    expect_refused(w, conv + ".act_group");
  }
  {
    WeightMap w = qg;  // a group without per-token ranges
    w.all().erase(conv + ".act_dynamic");
    expect_refused(w, "without .act_dynamic");
  }
  EXPECT_THROW(parse_recipe(recipe_text("minmax") + "    act_group: 4\n", "r"), Error);
  EXPECT_THROW(parse_recipe(recipe_text("token") + "    act_group: -1\n", "r"), Error);
  // A file holding act_group without feature bit 7 is refused by the reader.
  expect_refused_without_bit(dir + "/g.wtk", kModelFeatureGroupAct, "per-group feature");
}

}  // namespace
}  // namespace wavtok
