#!/bin/bash
# Usage: version_header.sh VERSION_FILE OUT_H
# Writes the header of //tools:version from the release version.
set -euo pipefail
version=$(tr -d ' \n' < "$1")
cat > "$2" <<H
// Generated from VERSION by tools/version_header.sh.
#ifndef DEMI_TOOLS_VERSION_H_
#define DEMI_TOOLS_VERSION_H_

namespace demi {
inline constexpr char kDemiRdmaVersion[] = "$version";
}  // namespace demi

#endif  // DEMI_TOOLS_VERSION_H_
H
