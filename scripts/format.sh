#!/usr/bin/env bash
# Formats the C/C++ sources in place with the project's .clang-format (clang-format from Debian's clang-format
# package, or CLANG_FORMAT=...). Python sources are not touched.
#
#   bash scripts/format.sh            every tracked *.h, *.cc, *.c
#   bash scripts/format.sh FILE...    only these files
#   bash scripts/format.sh --check    lists the files that would change, exits 1 if any
set -euo pipefail
cd "$(dirname "$0")/.."
CF=${CLANG_FORMAT:-$(command -v clang-format || command -v clang-format-14 || true)}
if [ -z "$CF" ]; then
  echo "format: clang-format not found (apt-get install -y clang-format, or set CLANG_FORMAT)" >&2
  exit 2
fi
check=0
if [ "${1:-}" = --check ]; then
  check=1
  shift
fi
if [ $# -gt 0 ]; then
  files=("$@")
else
  mapfile -t files < <(git ls-files '*.h' '*.cc' '*.c' | grep -v '^python/')
fi
if [ "$check" = 1 ]; then
  changed=0
  for f in "${files[@]}"; do
    if ! "$CF" --style=file "$f" | cmp -s - "$f"; then
      echo "$f"
      changed=1
    fi
  done
  exit "$changed"
fi
"$CF" --style=file -i "${files[@]}"
