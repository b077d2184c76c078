#!/usr/bin/env bash
# Usage: check_needed.sh LIB NEEDED_PREFIX
# Fails unless LIB's dynamic section lists a NEEDED entry starting with NEEDED_PREFIX.
set -euo pipefail
lib=$1 want=$2
needed=$(readelf -d "$lib" | awk '/\(NEEDED\)/ {gsub(/[\[\]]/, "", $5); print $5}')
if grep -q "^${want}" <<<"$needed"; then
  echo "ok: $(basename "$lib") NEEDs $(grep "^${want}" <<<"$needed" | head -1)"
else
  echo "FAIL: $(basename "$lib") does not NEED ${want}; NEEDED is:" >&2
  echo "$needed" >&2
  exit 1
fi
