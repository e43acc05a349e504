// `wavtok adapt` at the library level (codec/adapt.h) with the shipped default model: a synthetic drift (FM bell
// tones, a sound the model never heard: it was trained on speech, GM music and noise), and the lineage of the
// adapted model (tokens of parent and child decode with each other, with a warning; others stay refused).
#include "codec/adapt.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>

#include "codec/default_model.h"
#include "core/error.h"
#include "io/model_file.h"
#include "io/token_file.h"
#include "tests/testing/test_util.h"
#include "vq/rvq.h"

namespace wavtok {
namespace {

using namespace wavtok::testing;

// FM bells: notes on a chromatic grid over two octaves from 220 Hz, a decaying modulation index, overlapping.
std::vector<float> fm_bells(uint32_t seed, double seconds, int rate) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> dur(0.2, 0.6);
  std::uniform_int_distribution<int> semitone(0, 23);
  const int64_t n = int64_t(seconds * rate);
  std::vector<double> x(static_cast<size_t>(n), 0.0);
  for (int64_t t0 = 0; t0 < n;) {
    const int64_t len = std::min<int64_t>(int64_t(dur(rng) * rate), n - t0);
    const double f = 220.0 * std::pow(2.0, semitone(rng) / 12.0);
    for (int64_t i = 0; i < len; ++i) {
      const double t = double(i) / rate;
      x[size_t(t0 + i)] +=
          std::sin(2 * M_PI * f * t + 3 * std::exp(-4 * t) * std::sin(2 * M_PI * 3.5 * f * t)) * std::exp(-5 * t);
    }
    t0 += std::max<int64_t>(1, len * 7 / 10);
  }
  double e = 0;
  for (double v : x) e += v * v;
  const double g = 0.1 / std::sqrt(e / double(n));
  std::vector<float> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out[size_t(i)] = float(std::clamp(x[size_t(i)] * g, -0.97, 0.97));
  return out;
}

struct Drift {
  std::shared_ptr<const Model> parent;
  std::vector<std::vector<float>> train, held;
  std::vector<Tensor> train_lat, held_lat;
  AdaptResult child;
};

const Drift& drift() {
  static const Drift d = [] {
    Drift r;
    r.parent = load_embedded_default_model();
    for (uint32_t s = 0; s < 4; ++s) r.train.push_back(fm_bells(s, 5.0, r.parent->sample_rate()));
    for (uint32_t s = 100; s < 102; ++s) r.held.push_back(fm_bells(s, 3.0, r.parent->sample_rate()));
    for (const auto& a : r.train) r.train_lat.push_back(r.parent->encode_latents(a.data(), int64_t(a.size())));
    for (const auto& a : r.held) r.held_lat.push_back(r.parent->encode_latents(a.data(), int64_t(a.size())));
    r.child = adapt_model(*r.parent, r.train_lat, AdaptOptions{});  // the command's defaults
    return r;
  }();
  return d;
}

TEST(Adapt, SyntheticDriftLowersErrorAndKeepsOldTokens) {
  const Drift& d = drift();
  ASSERT_TRUE(has_embedded_default_model());
  const Model& parent = *d.parent;
  const Model& child = *d.child.model;
  ASSERT_EQ(d.child.levels.size(), 1u);
  const AdaptQuality before = measure_quality(parent, d.train, d.train_lat, 1);
  const AdaptQuality after = measure_quality(child, d.train, d.train_lat, 1);
  EXPECT_LE(after.latent_mse, 0.8 * before.latent_mse) << before.latent_mse << " -> " << after.latent_mse;
  EXPECT_LT(after.mel, before.mel);
  // The level's own statistics are the same quantity measured the other way round.
  EXPECT_NEAR(d.child.levels[0].stats.mse_before, before.latent_mse, 1e-4 * before.latent_mse);
  EXPECT_NEAR(d.child.levels[0].stats.mse_after, after.latent_mse, 1e-4 * after.latent_mse);
  std::printf("adaptation: latent MSE %.4f -> %.4f, mel %.4f -> %.4f\n", before.latent_mse, after.latent_mse,
              before.mel, after.mel);
  // Held-out audio of the same kind: the codebook generalises.
  const AdaptQuality hb = measure_quality(parent, d.held, d.held_lat, 1);
  const AdaptQuality ha = measure_quality(child, d.held, d.held_lat, 1);
  EXPECT_LE(ha.latent_mse, 0.8 * hb.latent_mse) << hb.latent_mse << " -> " << ha.latent_mse;
  std::printf("held-out: latent MSE %.4f -> %.4f, mel %.4f -> %.4f\n", hb.latent_mse, ha.latent_mse, hb.mel, ha.mel);
  // Tokens stored before the adaptation decode with the adapted model nearly as with the parent.
  for (const auto* set : {&d.train, &d.held}) {
    const auto& lat = set == &d.train ? d.train_lat : d.held_lat;
    std::vector<Tokens> old;
    for (const Tensor& z : lat) old.push_back(parent.quantize(z, 1));
    const TokenDecodeQuality by_parent = decode_quality(parent, old, *set);
    const TokenDecodeQuality by_child = decode_quality(child, old, *set);
    EXPECT_NEAR(by_child.stoi, by_parent.stoi, 0.01) << (set == &d.train ? "adaptation" : "held-out") << " audio";
    std::printf("%s: old tokens STOI %.4f (parent) -> %.4f (adapted)\n", set == &d.train ? "adaptation" : "held-out",
                by_parent.stoi, by_child.stoi);
    // Consistency with measure_quality: the parent's own tokens are what it measured.
    if (set == &d.train) EXPECT_NEAR(by_parent.stoi, before.stoi, 1e-9);
  }
  // Only the codebook changed.
  for (const auto& [name, t] : parent.weights().all()) {
    const Tensor& u = d.child.weights.get(name, t.shape());
    const bool same = std::equal(t.data(), t.data() + t.numel(), u.data());
    EXPECT_EQ(same, name != codebook_tensor_name(parent.config(), 0)) << name;
  }
}

TEST(Adapt, ChildRecordsItsParentAndRoundTripsThroughAFile) {
  const Drift& d = drift();
  const Model& child = *d.child.model;
  EXPECT_EQ(child.parent_fingerprint(), d.parent->fingerprint());
  EXPECT_NE(child.fingerprint(), d.parent->fingerprint());
  EXPECT_EQ(d.parent->parent_fingerprint(), 0u);  // the shipped model predates lineage and loads as before
  const std::string dir = scratch_dir("adapt_roundtrip");
  write_model_file(dir + "/child.wtk", d.child.config, d.child.weights);
  auto back = Model::load(dir + "/child.wtk");
  EXPECT_EQ(back->fingerprint(), child.fingerprint());
  EXPECT_EQ(back->parent_fingerprint(), d.parent->fingerprint());
  const Tensor& a = child.quantizer().codebook(0);
  const Tensor& b = back->quantizer().codebook(0);
  ASSERT_EQ(a.shape(), b.shape());
  EXPECT_TRUE(std::equal(a.data(), a.data() + a.numel(), b.data()));
  // The YAML carries the parent as 0x + 16 hex digits; a decimal integer (as PyYAML would re-write it) is read too.
  const std::string yaml = d.child.config.to_yaml();
  EXPECT_NE(yaml.find("parent_fingerprint: " + std::string("0x") + fingerprint_str(d.parent->fingerprint())),
            std::string::npos)
      << yaml;
  ModelConfig c = d.parent->config();
  const std::string plain = c.to_yaml();
  EXPECT_EQ(plain.find("parent_fingerprint"), std::string::npos);  // no key, no change to old fingerprints
  EXPECT_EQ(ModelConfig::from_yaml(plain + "\nparent_fingerprint: 12345\n", "t").parent_fingerprint, 12345u);
  EXPECT_THROW(ModelConfig::from_yaml(plain + "\nparent_fingerprint: banana\n", "t"), Error);
  EXPECT_THROW(ModelConfig::from_yaml(plain + "\nparent_fingerprint: 0x1234567890abcdef0\n", "t"), Error);
}

TEST(Adapt, TokensOfParentAndChildDecodeWithEachOtherWithAWarning) {
  const Drift& d = drift();
  const Model& parent = *d.parent;
  const Model& child = *d.child.model;
  const std::string dir = scratch_dir("adapt_lineage");
  // Tokens written by each model; the child's carry its parent's fingerprint (token file version 2).
  write_tokens(dir + "/p.wtt", token_file_for(parent, parent.quantize(d.held_lat[0], 1)), TokenFormat::Native);
  write_tokens(dir + "/c.wtt", token_file_for(child, child.quantize(d.held_lat[0], 1)), TokenFormat::Native);
  const TokenFile p = read_tokens(dir + "/p.wtt"), c = read_tokens(dir + "/c.wtt");
  EXPECT_EQ(p.parent_fingerprint, 0u);
  EXPECT_EQ(c.fingerprint, child.fingerprint());
  EXPECT_EQ(c.parent_fingerprint, parent.fingerprint());
  EXPECT_EQ(check_tokens_for_model(p, parent, "p.wtt"), "");
  EXPECT_EQ(check_tokens_for_model(c, child, "c.wtt"), "");
  for (const auto& [tf, m] : {std::pair{&p, &child}, std::pair{&c, &parent}}) {
    const std::string w = check_tokens_for_model(*tf, *m, "x.wtt");
    EXPECT_NE(w.find(fingerprint_str(parent.fingerprint())), std::string::npos) << w;
    EXPECT_NE(w.find(fingerprint_str(child.fingerprint())), std::string::npos) << w;
    EXPECT_EQ(m->decode(tf->tokens).size(), size_t(tf->tokens.frames * m->hop()));
  }
  // A sibling (the same parent adapted differently) and an unrelated model are refused.
  AdaptOptions other;
  other.codebook.anchor = 0;
  other.codebook.iterations = 2;
  const AdaptResult sib = adapt_model(parent, {d.train_lat[0]}, other);
  ASSERT_NE(sib.model->fingerprint(), child.fingerprint());
  const TokenFile s = token_file_for(*sib.model, sib.model->quantize(d.held_lat[0], 1));
  EXPECT_THROW(check_tokens_for_model(s, child, "s.wtt"), Error);
  EXPECT_NO_THROW(check_tokens_for_model(s, parent, "s.wtt"));  // but the parent knows it
  TokenFile u = p;
  u.fingerprint ^= 0x5a;
  try {
    check_tokens_for_model(u, child, "u.wtt");
    FAIL() << "unrelated tokens accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("different model"), std::string::npos) << e.what();
  }
  EXPECT_THROW(check_tokens_for_model(u, parent, "u.wtt"), Error);

  // The C API's check: capi/adapt_lineage_test.cc.
}

TEST(Adapt, ResidualLevelsOfAnEncodecModel) {
  // The EnCodec fixture (random weights, 32 codebooks): adapt level 1 only, encoding with 2 codebooks.
  auto m = Model::load(fixture("encodec-24k/model.th"));
  const auto audio = fm_bells(7, 2.0, m->sample_rate());
  const Tensor z = m->encode_latents(audio.data(), int64_t(audio.size()));
  AdaptOptions o;
  o.n_q = 2;
  o.levels = {1};
  const AdaptResult r = adapt_model(*m, {z}, o);
  ASSERT_EQ(r.levels.size(), 1u);
  EXPECT_EQ(r.levels[0].level, 1);
  for (int q = 0; q < m->max_n_q(); ++q) {
    const Tensor& a = m->quantizer().codebook(q);
    const Tensor& b = r.model->quantizer().codebook(q);
    EXPECT_EQ(std::equal(a.data(), a.data() + a.numel(), b.data()), q != 1) << "codebook " << q;
  }
  // Level 1 was fitted to the residual of level 0, as the greedy search codes it.
  Tensor q0;
  m->quantize(z, 1, &q0);
  Tensor res = z;
  for (int64_t i = 0; i < res.numel(); ++i) res[i] -= q0[i];
  EXPECT_NEAR(r.levels[0].stats.mse_before, codebook_mse(m->quantizer().codebook(1), res.data(), res.dim(1)), 1e-6);
  const AdaptQuality before = measure_quality(*m, {audio}, {z}, 2), after = measure_quality(*r.model, {audio}, {z}, 2);
  EXPECT_LT(after.latent_mse, before.latent_mse);
  EXPECT_THROW(adapt_model(*m, {z}, AdaptOptions{{}, {2}, 2}), Error);  // level 2 is not used at 2 codebooks
}

TEST(Adapt, BadRequestsAreRefused) {
  const Drift& d = drift();
  AdaptOptions o;
  o.levels = {1};  // the default model has one codebook
  EXPECT_THROW(adapt_model(*d.parent, d.train_lat, o), Error);
  EXPECT_THROW(adapt_model(*d.parent, {}, AdaptOptions{}), Error);
  EXPECT_THROW(adapt_model(*d.parent, {Tensor({3, 10})}, AdaptOptions{}), Error);
  Tensor bad = d.train_lat[0];
  bad[5] = std::nanf("");
  EXPECT_THROW(adapt_model(*d.parent, {bad}, AdaptOptions{}), Error);
}

}  // namespace
}  // namespace wavtok
