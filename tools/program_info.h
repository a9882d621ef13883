// What an installed program says of itself: --help, --version, and its
// manual page (section 1), all written from its flag definitions so that
// the page cannot drift from the program.
#ifndef DEMI_TOOLS_PROGRAM_INFO_H_
#define DEMI_TOOLS_PROGRAM_INFO_H_

#include <string>

namespace demi::tools {

struct ProgramInfo {
  // As installed in bin/: "demi-latency-probe".
  const char* name;
  // The manual's NAME line, without the name: "round-trip latency over ...".
  const char* summary;
  // The usages, one per line, each starting with `name`.
  const char* synopsis;
  // Paragraphs separated by blank lines; plain text.
  const char* description;
  // Other pages, as "ib_send_lat(1), demi-throughput(1)"; demi-rdma(7) is
  // always added.
  const char* see_also;
};

// Parses the command line (absl flags). --version prints "NAME VERSION" and
// exits; --man prints the manual page and exits; --help lists the
// program's own flags and those of the project's libraries it links.
void ParseProgramCommandLine(int argc, char** argv, const ProgramInfo& info);

// The manual page, in roff (man(7) macros): every flag the program links
// that is not Abseil's own, sorted by name, with its default and help.
std::string ManPage(const ProgramInfo& info);

}  // namespace demi::tools

#endif  // DEMI_TOOLS_PROGRAM_INFO_H_
