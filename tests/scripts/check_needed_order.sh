#!/usr/bin/env bash
# Usage: check_needed_order.sh LIB FIRST LATER
# Fails unless LIB's NEEDED list has FIRST (a prefix) before every entry starting with LATER.
# libtorch.so exports broken copies of std::filesystem functions; libstdc++ must come first.
set -euo pipefail
lib=$1 first=$2 later=$3
needed=$(readelf -d "$lib" | awk '/\(NEEDED\)/ {gsub(/[\[\]]/, "", $5); print $5}')
first_at=$(grep -n "^${first}" <<<"$needed" | head -1 | cut -d: -f1 || true)
later_at=$(grep -n "^${later}" <<<"$needed" | head -1 | cut -d: -f1 || true)
if [ -z "$first_at" ] || { [ -n "$later_at" ] && [ "$first_at" -gt "$later_at" ]; }; then
  echo "FAIL: $(basename "$lib") must NEED ${first}* before ${later}*; NEEDED is:" >&2
  echo "$needed" >&2
  exit 1
fi
echo "ok: $(basename "$lib") NEEDs ${first}* (#$first_at) before ${later}* (#${later_at:-none})"
