#include "tools/program_info.h"

#include <string>

#include "absl/flags/flag.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

ABSL_FLAG(int, test_rounds, 7, "rounds to run");
ABSL_FLAG(bool, test_switch, false, "a switch");
ABSL_FLAG(std::string, test_name, "a-b", "a name");

namespace demi::tools {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const ProgramInfo kInfo = {
    "demi-test-tool", "tests the page",
    "demi-test-tool --server\ndemi-test-tool --client ADDR",
    "First paragraph.\n\n.A line that roff would take for a request.",
    "ib_send_lat(1)"};

TEST(ManPageTest, ListsEveryFlagWithItsDefault) {
  std::string page = ManPage(kInfo);
  EXPECT_THAT(page, HasSubstr(".B \\-\\-test_rounds=N\nrounds to run "
                              "(default: 7).\n"));
  EXPECT_THAT(page, HasSubstr(".B \\-\\-test_name=TEXT\na name (default: "
                              "\"a\\-b\").\n"));
  // A switch that is off says nothing of its default.
  EXPECT_THAT(page, HasSubstr(".B \\-\\-test_switch\na switch.\n"));
  EXPECT_THAT(page, HasSubstr("\\-\\-man"));
  // Abseil's own flags are one fixed paragraph, not listed one by one.
  EXPECT_THAT(page, Not(HasSubstr(".B \\-\\-flagfile")));
}

TEST(ManPageTest, HeaderSynopsisAndDescription) {
  std::string page = ManPage(kInfo);
  EXPECT_THAT(page, HasSubstr(".TH DEMI\\-TEST\\-TOOL 1 \"\" \"demi-rdma "));
  EXPECT_THAT(page,
              HasSubstr(".SH NAME\ndemi\\-test\\-tool \\- tests the page\n"));
  EXPECT_THAT(page,
              HasSubstr(".nf\ndemi\\-test\\-tool \\-\\-client ADDR\n.fi\n"));
  EXPECT_THAT(page, HasSubstr(".PP\nFirst paragraph.\n.PP\n\\&.A line"));
  EXPECT_THAT(page, HasSubstr("ib_send_lat(1), demi\\-rdma(7)\n"));
}

}  // namespace
}  // namespace demi::tools
