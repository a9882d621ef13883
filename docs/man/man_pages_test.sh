#!/bin/bash
# Usage: man_pages_test.sh MAN_TAR CHECK_MAN HEADER...
# Every public function has its page with every errno its header names,
# and man renders each page without a warning.
set -euo pipefail
tar=$1 check=$2
shift 2
dir=${TEST_TMPDIR:-/tmp}/man
rm -rf "$dir" && mkdir -p "$dir"
tar -C "$dir" -xf "$tar"
python3 "$check" "$dir" "$@"
for page in "$dir"/man3/*.3 "$dir"/man7/*.7; do
  warnings=$(MANWIDTH=80 man --warnings -l "$page" 2>&1 > /dev/null || true)
  if [ -n "$warnings" ]; then
    echo "$page: $warnings"
    exit 1
  fi
done
echo "man_pages_test: $(ls "$dir"/man3 | wc -l) pages in section 3, rendered"
