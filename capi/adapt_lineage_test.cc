// The C API's lineage check (wavtok_model_check_tokens) on a model adapted from the shipped one (codec/adapt.h).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "capi/wavtok.h"
#include "codec/adapt.h"
#include "codec/default_model.h"
#include "io/model_file.h"
#include "io/token_file.h"
#include "tests/testing/test_util.h"

namespace wavtok {
namespace {

TEST(CApiLineage, ParentAndChildTokensAreAcceptedWithAWarningOthersRefused) {
  auto parent = load_embedded_default_model();
  // A gliding square wave (far from the model's training audio) to adapt on.
  std::vector<float> audio(size_t(parent->sample_rate()) * 2);
  double phase = 0;
  for (size_t i = 0; i < audio.size(); ++i) {
    phase += (300.0 + 900.0 * double(i) / double(audio.size())) / parent->sample_rate();
    audio[i] = std::fmod(phase, 1.0) < 0.5 ? 0.2f : -0.2f;
  }
  const Tensor z = parent->encode_latents(audio.data(), int64_t(audio.size()));
  const AdaptResult child = adapt_model(*parent, {z}, AdaptOptions{});
  const std::string path = testing::scratch_dir("capi_lineage") + "/child.wtk";
  write_model_file(path, child.config, child.weights);
  const uint64_t pf = parent->fingerprint(), cf = child.model->fingerprint();
  ASSERT_NE(pf, cf);

  wavtok_model* cm = wavtok_model_load(path.c_str(), nullptr);
  wavtok_model* pm = wavtok_model_load(nullptr, nullptr);
  ASSERT_TRUE(cm && pm) << wavtok_last_error();
  EXPECT_EQ(wavtok_model_fingerprint(cm), cf);
  EXPECT_EQ(wavtok_model_parent_fingerprint(cm), pf);
  EXPECT_EQ(wavtok_model_fingerprint(pm), pf);
  EXPECT_EQ(wavtok_model_parent_fingerprint(pm), 0u);
  EXPECT_EQ(wavtok_model_check_tokens(cm, cf, pf), 0);  // its own
  EXPECT_EQ(wavtok_model_check_tokens(pm, pf, 0), 0);
  EXPECT_EQ(wavtok_model_check_tokens(cm, pf, 0), 1);  // the parent's, with a warning naming both
  std::string w = wavtok_last_error();
  EXPECT_NE(w.find(fingerprint_str(pf)), std::string::npos) << w;
  EXPECT_NE(w.find(fingerprint_str(cf)), std::string::npos) << w;
  EXPECT_EQ(wavtok_model_check_tokens(pm, cf, pf), 1);         // the child's
  EXPECT_EQ(wavtok_model_check_tokens(cm, pf ^ 0x5a, 0), -1);  // unrelated
  EXPECT_NE(std::string(wavtok_last_error()).find("different model"), std::string::npos);
  EXPECT_EQ(wavtok_model_check_tokens(cm, pf ^ 0x5a, pf), -1);  // a sibling
  EXPECT_EQ(wavtok_model_check_tokens(nullptr, pf, 0), -1);
  EXPECT_EQ(wavtok_model_fingerprint(nullptr), 0u);
  wavtok_model_free(cm);
  wavtok_model_free(pm);
}

}  // namespace
}  // namespace wavtok
