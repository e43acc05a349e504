// `wavtok adapt` from the command line, on the small WavTokenizer fixture: the adapted model, its lineage through
// encode/decode/info, and bad input (exit codes, messages, no partial output).
#include <sndfile.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include <cstdio>

#include <gtest/gtest.h>

#include "apps/cli_test_util.h"
#include "dsp/audio_io.h"
#include "io/token_file.h"
#include "models/model.h"
#include "tests/testing/test_util.h"

namespace wavtok {
namespace {

namespace fs = std::filesystem;
using namespace wavtok::testing;

const std::string kCkpt = fixture("wavtokenizer-75/model.ckpt");
const std::string kCfg = fixture("wavtokenizer-75/config.yaml");
const std::string kWav = fixture("wavtokenizer-75/speech.input.wav");

class AdaptCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = scratch_dir(std::string("adapt_cli_") + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(path("audio"));
    fs::copy_file(kWav, path("audio/a.wav"));
  }
  std::string path(const std::string& n) const { return dir + "/" + n; }
  std::string dir;
};

TEST_F(AdaptCli, AdaptsAndTokensOfParentAndChildDecodeWithEachOther) {
  fs::create_directories(path("eval"));
  fs::copy_file(kWav, path("eval/b.wav"));
  auto r = run_cli({"adapt", kCkpt, "--config", kCfg, "--audio", path("audio"), "--eval", path("eval"), "-o",
                    path("child.wtk"), "--iterations", "4", "-q"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto parent = Model::load(kCkpt), child = Model::load(path("child.wtk"));
  EXPECT_EQ(child->parent_fingerprint(), parent->fingerprint());
  for (const std::string& needle : {fingerprint_str(parent->fingerprint()), fingerprint_str(child->fingerprint()),
                                    std::string("latent MSE"), std::string("mel distance"), std::string("old tokens"),
                                    std::string("held-out audio"), std::string("no quantization")})
    EXPECT_NE(r.err.find(needle), std::string::npos) << needle << " missing in\n" << r.err;
  {  // the note about codewords vs latents appears exactly where the unquantized mel is no better than the parent's
    const std::string out = r.err;
    size_t at = 0;
    int sets = 0;
    while ((at = out.find("  mel distance", at)) != std::string::npos) {
      double before = 0, after = 0, unq = 0, stoi = 0;
      ASSERT_EQ(std::sscanf(out.c_str() + at, "  mel distance %lf -> %lf", &before, &after), 2);
      const size_t u = out.find("no quantization:", at);
      ASSERT_NE(u, std::string::npos);
      ASSERT_EQ(std::sscanf(out.c_str() + u, "no quantization:  STOI %lf, mel %lf", &stoi, &unq), 2);
      const size_t next = out.find("  mel distance", u);
      const bool noted = out.substr(u, next == std::string::npos ? std::string::npos : next - u).find("note: the parent "
                                                                                                        "decodes") !=
                         std::string::npos;
      EXPECT_EQ(noted, unq >= before) << "mel " << before << ", unquantized " << unq;
      at = u;
      ++sets;
    }
    EXPECT_EQ(sets, 2);  // the adaptation audio and the held-out folder
  }
  r = run_cli({"info", path("child.wtk")});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.err.find("adapted from: " + fingerprint_str(parent->fingerprint())), std::string::npos) << r.err;

  // Parent tokens -> child, child tokens -> parent: decoded, with a warning naming both fingerprints.
  ASSERT_EQ(run_cli({"encode", kWav, "-m", kCkpt, "--config", kCfg, "-o", path("p.wtt"), "-q"}).code, 0);
  ASSERT_EQ(run_cli({"encode", kWav, "-m", path("child.wtk"), "-o", path("c.wtt"), "-q"}).code, 0);
  for (const auto& [tokens, model] : {std::pair{path("p.wtt"), path("child.wtk")}, std::pair{path("c.wtt"), kCkpt}}) {
    std::vector<std::string> args = {"decode", tokens, "-m", model, "-o", path("y.wav"), "-q"};
    if (model == kCkpt) args.insert(args.end(), {"--config", kCfg});
    r = run_cli(args);
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.err.find("warning"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(fingerprint_str(parent->fingerprint())), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(fingerprint_str(child->fingerprint())), std::string::npos) << r.err;
    EXPECT_TRUE(fs::exists(path("y.wav")));
    fs::remove(path("y.wav"));
    args[0] = "stream-decode";
    r = run_cli(args);
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.err.find("warning"), std::string::npos) << r.err;
    fs::remove(path("y.wav"));
  }
  // Own tokens: no warning. Tokens of an unrelated model (the shipped one): refused as before.
  r = run_cli({"decode", path("c.wtt"), "-m", path("child.wtk"), "-o", path("y.wav"), "-q"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.err.find("warning"), std::string::npos) << r.err;
  ASSERT_EQ(run_cli({"encode", kWav, "-o", path("d.wtt"), "-q"}).code, 0);  // default model
  fs::remove(path("y.wav"));
  r = run_cli({"decode", path("d.wtt"), "-m", path("child.wtk"), "-o", path("y.wav"), "-q"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("different model"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(path("y.wav")));
}

TEST_F(AdaptCli, BadInputGivesAClearErrorAndNoOutput) {
  const std::vector<std::string> base = {"adapt", kCkpt, "--config", kCfg, "-q", "-o"};
  auto run_adapt = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = base;
    a.push_back(path("out.wtk"));
    a.insert(a.end(), extra.begin(), extra.end());
    return run_cli(a);
  };
  struct Case {
    std::vector<std::string> args;
    int code;
    std::string needle;
  };
  fs::create_directories(path("empty"));
  fs::create_directories(path("bad"));
  std::ofstream(path("bad/x.wav")) << "not audio at all";
  fs::create_directories(path("nan"));
  {
    SF_INFO info{};
    info.samplerate = 24000;
    info.channels = 1;
    info.format = SF_FORMAT_WAV | SF_FORMAT_FLOAT;
    SNDFILE* f = sf_open(path("nan/n.wav").c_str(), SFM_WRITE, &info);
    ASSERT_NE(f, nullptr);
    std::vector<float> x(24000, 0.1f);
    x[12345] = std::numeric_limits<float>::quiet_NaN();
    sf_write_float(f, x.data(), sf_count_t(x.size()));
    sf_close(f);
  }
  const std::vector<Case> cases = {
      {{"--audio", path("missing")}, 1, "not found"},
      {{"--audio", path("empty")}, 1, "no .wav"},
      {{"--audio", path("bad")}, 1, "x.wav"},
      {{"--audio", path("nan")}, 1, "NaN"},
      {{"--audio", path("audio"), "--eval", path("empty")}, 1, "no .wav"},
      {{"--audio", path("audio"), "--levels", "1"}, 1, "level 1"},
      {{"--audio", path("audio"), "--levels", "x"}, 1, "'x'"},
      {{"--audio", path("audio"), "--anchor", "nan"}, 2, "anchor"},
      {{"--audio", path("audio"), "--radius", "-1"}, 2, "radius"},
      {{}, 2, "--audio"},
  };
  for (const auto& c : cases) {
    auto r = run_adapt(c.args);
    EXPECT_EQ(r.code, c.code) << c.args.size() << ": " << r.err;
    EXPECT_NE(r.err.find(c.needle), std::string::npos) << c.needle << " missing in: " << r.err;
    EXPECT_FALSE(fs::exists(path("out.wtk")));
  }
  auto r = run_cli({"adapt", "--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.err.find("--anchor"), std::string::npos);
  // The output may not overwrite the model it adapts.
  fs::copy_file(path("audio/a.wav"), path("a_copy.wav"));
  r = run_cli({"adapt", path("a_copy.wav"), "--audio", path("audio"), "-o", path("a_copy.wav"), "-q"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("same file"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace wavtok
