// Frame lines, the token stream format on pipes: what parses, what is refused, and that writing and reading agree.
#include "codec/token_file.h"

#include <gtest/gtest.h>

#include "codec/error.h"

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

}  // namespace
}  // namespace wavtok
