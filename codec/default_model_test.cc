// The shipped default model: C++ engine against the PyTorch reference (models/wtk_io.py loads the same .wtk
// into models/wavtok_ref), and the bridge itself against the upstream fixture.
#include <filesystem>

#include <gtest/gtest.h>

#include "codec/default_model.h"
#include "codec/model.h"
#include "codec/model_file.h"
#include "tests/reference_check.h"
#include "tests/test_util.h"

namespace wavtok {
namespace {

using namespace wavtok::testing;

const std::string kShipped = source_dir() + "/models/default/wavtok-default.wtk";

// The .wtk -> PyTorch bridge reproduces the upstream fixture, so it can serve as the reference below.
TEST(DefaultModel, WtkBridgeReproducesUpstreamFixture) {
  const std::string dir = scratch_dir("wtk_bridge");
  auto m = Model::load(fixture("wavtokenizer-75/model.ckpt"));
  write_model_file(dir + "/m.wtk", m->config(), m->weights());
  ASSERT_EQ(run_python(source_dir() + "/models/reference_outputs.py --model " + dir + "/m.wtk --input " +
                       fixture("wavtokenizer-75/speech.input.wav") + " --out " + dir),
            0);
  EXPECT_EQ(npy_ints(dir + "/speech.codes.npy"), npy_ints(fixture("wavtokenizer-75/speech.codes.npy")));
  auto ref = read_audio(fixture("wavtokenizer-75/speech.decoded.wav"), 24000).samples;
  auto got = read_audio(dir + "/speech.decoded.wav", 24000).samples;
  EXPECT_GE(snr_db(ref, got), 60.0);
}

TEST(DefaultModel, ShippedModelIsEmbeddedAndMatchesReference) {
  ASSERT_TRUE(std::filesystem::exists(kShipped)) << kShipped << " is missing";
  ASSERT_TRUE(has_embedded_default_model());
  auto embedded = load_embedded_default_model();
  auto file = Model::load(kShipped);
  EXPECT_EQ(embedded->fingerprint(), file->fingerprint());
  EXPECT_LT(std::filesystem::file_size(kShipped), 20u << 20);
  // Real speech (the fixture clip) through both implementations.
  const std::string dir = scratch_dir("default_ref");
  ASSERT_EQ(run_python(source_dir() + "/models/reference_outputs.py --model " + kShipped + " --input " +
                       fixture("wavtokenizer-75/speech.input.wav") + " --out " + dir),
            0);
  check_against(*embedded, dir);
}

}  // namespace
}  // namespace wavtok
