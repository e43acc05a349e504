// The text token formats: frame lines (the token stream on pipes) and .txt files (one line per codebook). What
// parses, what is refused, and that writing and reading agree.
#include "io/token_file.h"

#include <gtest/gtest.h>

#include <fstream>

#include "core/error.h"
#include "tests/testing/test_util.h"

namespace wavtok {
namespace {

TEST(TokenLines, RoundTripAndWhitespace) {
  const std::vector<int32_t> codes = {0, 4095, 17, 3};
  EXPECT_EQ(token_line(codes.data(), 4), "0 4095 17 3");
  std::vector<int32_t> out;
  EXPECT_EQ(parse_token_line(token_line(codes.data(), 4), 4096, out, "t"), 4);
  EXPECT_EQ(out, codes);
  out.clear();
  EXPECT_EQ(parse_token_line("\t 12  7\r", 4096, out, "t"), 2);  // tabs, repeated spaces, a CRLF line end
  EXPECT_EQ(out, (std::vector<int32_t>{12, 7}));
  EXPECT_EQ(parse_token_line(" \r", 4096, out, "t"), 0);  // blank: no frame
  EXPECT_EQ(out.size(), 2u);
}

TEST(TokenLines, RefusesWhatIsNotACode) {
  std::vector<int32_t> out;
  auto message = [&](const std::string& line, int bins, int max_n_q = 1024) -> std::string {
    try {
      parse_token_line(line, bins, out, "stdin line 9", max_n_q);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_EQ(message("1 2 4096", 4096), "stdin line 9: token 4096 is outside this model's codebook (0..4095)");
  EXPECT_EQ(message("1 -2", 4096), "stdin line 9: '-2' is not a token (expected one frame per line: n_q codes)");
  EXPECT_EQ(message("+2", 4096), "stdin line 9: '+2' is not a token (expected one frame per line: n_q codes)");
  EXPECT_EQ(message("3.5", 4096), "stdin line 9: '3.5' is not a token (expected one frame per line: n_q codes)");
  EXPECT_NE(message("99999999999999999999999", 4096).find("is not a token"), std::string::npos);
  EXPECT_NE(message("1,2", 4096).find("is not a token"), std::string::npos);
  EXPECT_EQ(message("1 2 3", 4096, 2), "stdin line 9: more than 2 codes on one line (one per codebook)");
  EXPECT_EQ(message("1 2", 4096, 2), "");
}

// .txt: one line per codebook. Read back what write_tokens wrote, and refuse malformed files naming the line.
TEST(TokenTxt, RoundTripAndErrors) {
  const std::string dir = testing::scratch_dir("token_txt");
  TokenFile t;
  t.tokens.n_q = 2;
  t.tokens.frames = 3;
  t.tokens.codes = {0, 7, 4095, 1, 2147483647, 5};  // [n_q][F]; the txt format itself caps codes at INT32_MAX
  write_tokens(dir + "/a.txt", t, TokenFormat::Txt);
  const TokenFile r = read_tokens(dir + "/a.txt");
  EXPECT_EQ(r.tokens.n_q, 2);
  EXPECT_EQ(r.tokens.frames, 3);
  EXPECT_EQ(r.tokens.codes, t.tokens.codes);
  EXPECT_EQ(r.fingerprint, 0u);

  auto message = [&](const std::string& text, const TokenLimits& limits = {}) -> std::string {
    const std::string path = dir + "/b.txt";
    std::ofstream(path, std::ios::binary) << text;
    try {
      const TokenFile got = read_tokens(path, limits);
      return "read " + std::to_string(got.tokens.n_q) + "x" + std::to_string(got.tokens.frames);
    } catch (const Error& e) {
      const std::string m = e.what();
      return m.rfind(path, 0) == 0 ? m.substr(path.size()) : m;  // without the path
    }
  };
  EXPECT_EQ(message("\n1 2\r\n\n\t3 4\n"), "read 2x2");  // blank lines skipped, CRLF and tabs allowed
  EXPECT_EQ(message("1 2\n3 x\n"),
            " line 2: 'x' is not a token (not a wavtok token file? expected one line per codebook)");
  EXPECT_EQ(message("1 -2\n"),
            " line 1: '-2' is not a token (not a wavtok token file? expected one line per codebook)");
  EXPECT_EQ(message("1 2147483648\n"), " line 1: token 2147483648 is outside 0..2147483647");
  EXPECT_EQ(message("1 2 3\n4 5\n"), ": codebook lines have different lengths (truncated?)");
  EXPECT_EQ(message(" \n\n"), ": token file is empty");
  TokenLimits small;
  small.max_frames = 2;
  small.max_n_q = 2;
  EXPECT_EQ(message("1 2\n3 4\n", small), "read 2x2");
  EXPECT_EQ(message("1 2 3\n", small), " line 1: too many frames");
  EXPECT_EQ(message("1\n2\n3\n", small), ": too many codebook lines");
}

}  // namespace
}  // namespace wavtok
