#include "tools/program_info.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "tools/version.h"

ABSL_FLAG(bool, man, false,
          "print this program's manual page (roff, section 1) and exit");

namespace demi::tools {
namespace {

// Abseil's own flags (--help, --flagfile, ...) are described once, in a
// fixed paragraph, not flag by flag.
bool IsOurs(absl::string_view file) {
  return !absl::StrContains(file, "absl/");
}

// Text as roff reads it literally: backslashes escaped, hyphens as minus
// signs (so --port copies as typed), no line taken for a request.
std::string Roff(absl::string_view text) {
  std::string out = absl::StrReplaceAll(text, {{"\\", "\\e"}, {"-", "\\-"}});
  std::string guarded;
  for (absl::string_view line : absl::StrSplit(out, '\n')) {
    if (!guarded.empty()) guarded += '\n';
    if (absl::StartsWith(line, ".") || absl::StartsWith(line, "'")) {
      guarded += "\\&";
    }
    absl::StrAppend(&guarded, line);
  }
  return guarded;
}

std::vector<absl::CommandLineFlag*> OurFlags() {
  std::vector<absl::CommandLineFlag*> flags;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (!flag->IsRetired() && IsOurs(flag->Filename())) flags.push_back(flag);
  }
  std::sort(flags.begin(), flags.end(),
            [](auto* a, auto* b) { return a->Name() < b->Name(); });
  return flags;
}

// What the synopsis of an option shows after "=".
std::string ValueName(const absl::CommandLineFlag& flag) {
  if (flag.IsOfType<bool>()) return "";
  if (flag.IsOfType<int>() || flag.IsOfType<int64_t>() ||
      flag.IsOfType<uint32_t>() || flag.IsOfType<uint64_t>()) {
    return "=N";
  }
  if (flag.IsOfType<double>()) return "=NUMBER";
  if (flag.IsOfType<std::vector<std::string>>()) return "=LIST";
  return "=TEXT";
}

}  // namespace

std::string ManPage(const ProgramInfo& info) {
  std::string upper = absl::AsciiStrToUpper(info.name);
  std::string page = absl::StrCat(
      ".\\\" Generated from the program's flag definitions (", info.name,
      " --man).\n.TH ", Roff(upper), " 1 \"\" \"demi-rdma ", kDemiRdmaVersion,
      "\" \"User Commands\"\n.SH NAME\n", Roff(info.name), " \\- ",
      Roff(info.summary), "\n.SH SYNOPSIS\n");
  for (absl::string_view usage :
       absl::StrSplit(info.synopsis, '\n', absl::SkipEmpty())) {
    absl::StrAppend(&page, ".nf\n", Roff(absl::StripAsciiWhitespace(usage)),
                    "\n.fi\n");
  }
  absl::StrAppend(&page, ".SH DESCRIPTION\n");
  for (absl::string_view paragraph :
       absl::StrSplit(info.description, "\n\n", absl::SkipEmpty())) {
    absl::StrAppend(&page, ".PP\n", Roff(paragraph), "\n");
  }
  absl::StrAppend(&page, ".SH OPTIONS\n");
  for (absl::CommandLineFlag* flag : OurFlags()) {
    std::string form = absl::StrCat("--", flag->Name(), ValueName(*flag));
    std::string value = flag->DefaultValue();
    if (flag->IsOfType<std::string>()) value = absl::StrCat("\"", value, "\"");
    absl::StrAppend(&page, ".TP\n.B ", Roff(form), "\n", Roff(flag->Help()));
    // A switch that is off unless given needs no default.
    if (!flag->IsOfType<bool>() || value != "false") {
      absl::StrAppend(&page, " (default: ", Roff(value), ")");
    }
    absl::StrAppend(&page, ".\n");
  }
  absl::StrAppend(
      &page, ".TP\n.B \\-\\-help\n",
      "List the options and exit; \\-\\-helpfull also lists Abseil's.\n",
      ".TP\n.B \\-\\-version\nPrint the program's name and version and exit.\n",
      ".PP\nA boolean option is turned off with \\-\\-noNAME or "
      "\\-\\-NAME=false.\n",
      ".SH ENVIRONMENT\n",
      "The library reads DEMI_SPIN_US, DEMI_POOL_LIMIT_MB, "
      "DEMI_KEEPALIVE_MS and DEMI_LOG_LEVEL; see demi\\-rdma(7).\n",
      ".SH EXIT STATUS\n0 on success; otherwise nonzero, with the reason on "
      "standard error.\n",
      ".SH SEE ALSO\n", Roff(info.see_also),
      info.see_also[0] != '\0' ? ", " : "", "demi\\-rdma(7)\n");
  return page;
}

void ParseProgramCommandLine(int argc, char** argv, const ProgramInfo& info) {
  static const ProgramInfo* program = &info;
  absl::FlagsUsageConfig config;
  config.contains_help_flags = [](absl::string_view file) {
    return IsOurs(file);
  };
  config.version_string = [] {
    return absl::StrCat(program->name, " ", kDemiRdmaVersion, "\n");
  };
  absl::SetFlagsUsageConfig(config);
  absl::SetProgramUsageMessage(
      absl::StrCat(info.name, ": ", info.summary, ".\n", info.synopsis));
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_man)) {
    std::fputs(ManPage(info).c_str(), stdout);
    std::exit(0);
  }
}

}  // namespace demi::tools
