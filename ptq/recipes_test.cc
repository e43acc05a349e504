// Every recipe shipped in configs/quant/ parses, and the issue-23 recipes say what their names promise.
#include <filesystem>

#include <gtest/gtest.h>

#include "ptq/calibrate.h"
#include "tests/testing/test_util.h"

namespace wavtok {
namespace {

using namespace wavtok::testing;

TEST(PtqRecipes, EveryShippedRecipeParses) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(source_dir() + "/configs/quant")) {
    if (e.path().extension() != ".yaml") continue;
    const PtqRecipe r = load_recipe(e.path().string());  // throws on a bad file
    EXPECT_EQ(r.name, e.path().stem().string()) << e.path();
    EXPECT_FALSE(r.rules.empty()) << e.path();
    ++n;
  }
  EXPECT_GE(n, 12);
  const std::string dir = source_dir() + "/configs/quant/";
  for (const auto& [file, kind] : {std::pair{"w8a8-all-adalog4", "adalog"}, std::pair{"w8a8-all-tanq4", "tanq"}}) {
    const PtqRecipe r = load_recipe(dir + file + ".yaml");
    EXPECT_EQ(r.softmax, kind);
    EXPECT_EQ(r.softmax_bits, 4);
  }
  const PtqRecipe dc = load_recipe(dir + "w4a8-pw-dualclip.yaml"), base = load_recipe(dir + "w4a8-pw.yaml");
  ASSERT_EQ(dc.rules.size(), base.rules.size());
  EXPECT_EQ(dc.rules[0].act_range, "dualclip");
  EXPECT_EQ(dc.rules[0].transform, "repq");
  for (const auto* r : {&dc, &base}) {
    EXPECT_EQ(r->rules[0].weight_bits, 4);
    EXPECT_EQ(r->rules[1].weight_bits, 4);
  }
}

}  // namespace
}  // namespace wavtok
