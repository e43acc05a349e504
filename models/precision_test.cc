// bfloat16 mode against float32 on the same model.
#include <gtest/gtest.h>

#include "core/dnnl_util.h"
#include "core/error.h"
#include "dsp/audio_io.h"
#include "models/model.h"
#include "models/models.h"
#include "tests/testing/test_util.h"

namespace wavtok {
namespace {

using namespace wavtok::testing;

TEST(Precision, Bf16TokensAgreeWithF32) {
  if (!bf16_supported()) {
    EXPECT_THROW(set_precision(Precision::BF16), Error);
    GTEST_SKIP() << "this CPU has no AVX512-BF16/AMX; bf16 mode correctly refused";
  }
  auto m = Model::load(fixture("wavtokenizer-75/model.ckpt"));
  Audio in = read_audio(fixture("wavtokenizer-75/speech.input.wav"), 24000);
  set_precision(Precision::F32);
  Tokens a = m->encode(in.samples.data(), int64_t(in.samples.size()), 1);
  std::vector<float> ya = m->decode(a);
  set_precision(Precision::BF16);
  Tokens b = m->encode(in.samples.data(), int64_t(in.samples.size()), 1);
  std::vector<float> yb = m->decode(a);
  set_precision(Precision::F32);
  size_t same = 0;
  for (size_t i = 0; i < a.codes.size(); ++i) same += a.codes[i] == b.codes[i];
  EXPECT_GE(double(same) / a.codes.size(), 0.98);
  EXPECT_NE(ya, yb);  // bf16 really ran (results differ in the last bits)
  EXPECT_GE(snr_db(ya, yb), 20.0);
}

}  // namespace
}  // namespace wavtok
