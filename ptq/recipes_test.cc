// Every recipe shipped in configs/quant/ parses, and the issue-23 recipes say what their names promise.
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>

#include <gtest/gtest.h>

#include "core/error.h"
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

// The built-in recipes are the files of configs/quant/, byte for byte, and load by name where no such file exists.
TEST(PtqRecipes, BuiltInRecipesAreTheShippedFiles) {
  std::map<std::string, std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(source_dir() + "/configs/quant")) {
    if (e.path().extension() != ".yaml") continue;
    std::ifstream f(e.path());
    files[e.path().stem().string()] = std::string(std::istreambuf_iterator<char>(f), {});
  }
  std::map<std::string, std::string> built;
  for (const auto& r : builtin_recipes()) built[r.name] = r.text;
  EXPECT_EQ(built, files);
  const std::string cwd = std::filesystem::current_path().string();
  std::filesystem::current_path(scratch_dir("recipes_by_name"));  // no configs/ here: names resolve to built-ins
  const PtqRecipe r = load_recipe("int8-e2e-bf16"), y = load_recipe("int8-e2e-bf16.yaml");
  EXPECT_EQ(r.name, "int8-e2e-bf16");
  EXPECT_EQ(r.encoder_convs, "bf16");
  EXPECT_EQ(y.rules.size(), r.rules.size());
  try {
    load_recipe("int9-e2e");
    ADD_FAILURE() << "an unknown recipe name was accepted";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("int9-e2e: cannot open recipe"), std::string::npos) << m;
    EXPECT_NE(m.find("built in: "), std::string::npos) << m;
    EXPECT_NE(m.find("w4-slim"), std::string::npos) << m;
  }
  EXPECT_THROW(load_recipe("sub/int8-e2e"), Error);  // a path is never a name
  std::filesystem::current_path(cwd);
}

}  // namespace
}  // namespace wavtok
