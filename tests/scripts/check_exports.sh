#!/usr/bin/env bash
# Usage: check_exports.sh LIB
# Fails if LIB exports any defined dynamic symbol that is not tp_*.
set -euo pipefail
lib=$1
syms=$(nm -D --defined-only "$lib" | awk '{print $3}')
bad=$(grep -v '^tp_' <<<"$syms" || true)
count=$(grep -c '^tp_' <<<"$syms" || true)
if [ -n "$bad" ]; then
  echo "FAIL: $(basename "$lib") exports non-tp_ symbols:" >&2
  echo "$bad" | head -20 >&2
  exit 1
fi
[ "$count" -gt 0 ] || { echo "FAIL: $(basename "$lib") exports no tp_ symbol" >&2; exit 1; }
echo "ok: $(basename "$lib") exports $count tp_* symbols and nothing else"
