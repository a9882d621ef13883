#!/bin/bash
# Usage: install_test.sh INSTALL_SH
# A relative --prefix is the caller's, not the tree's that tools/install.sh
# changes to: --uninstall with one removes what the manifest there lists.
set -euo pipefail
install=$PWD/${1:?usage: install_test.sh INSTALL_SH}
work=${TEST_TMPDIR:-/tmp}/install_test
rm -rf "$work"
mkdir -p "$work/opt/bin" "$work/opt/share/demi"
touch "$work/opt/bin/demi-latency-probe"
echo bin/demi-latency-probe > "$work/opt/share/demi/installed"
cd "$work"
"$install" --prefix opt --uninstall
if [ -e opt/bin/demi-latency-probe ] || [ -e opt/share/demi/installed ]; then
  echo "FAIL: --prefix opt did not uninstall $work/opt" >&2
  exit 1
fi
echo PASS
