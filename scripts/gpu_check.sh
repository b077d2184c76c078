#!/usr/bin/env bash
# GPU validation. On a machine with an NVIDIA GPU it runs the gpu-labelled
# tests for real; without one it runs them in dry mode (they skip cleanly), so
# CI proves the command works end to end. Writes a JSON and a Markdown report.
#
#   scripts/gpu_check.sh BUILD_DIR [OUT_DIR]
set -euo pipefail
build=${1:-build}
out=${2:-${OUT:-out/gpu-check}}
mkdir -p "$out"

mode=dry
smi=""
if command -v nvidia-smi >/dev/null 2>&1 && smi=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null); then
  mode=gpu
fi
echo "gpu-check: mode=$mode ${smi:+($smi)}"

junit="$out/gpu-tests.xml"
set +e
(cd "$build" && ctest -L gpu --output-on-failure --output-junit "$(realpath -m "../$junit")" 2>&1) | tee "$out/ctest.log"
rc=${PIPESTATUS[0]}
set -e
passed=$(grep -oE '[0-9]+% tests passed, [0-9]+ tests failed out of [0-9]+' "$out/ctest.log" | tail -1 || true)
skipped=$(grep -c "Skipped" "$out/ctest.log" || true)

python3 - "$out" "$mode" "$smi" "$rc" "$passed" "$skipped" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" <<'PY'
import json, sys, datetime
out, mode, smi, rc, passed, skipped, commit = sys.argv[1:]
report = {"date": datetime.datetime.utcnow().isoformat(timespec="seconds") + "Z", "commit": commit, "mode": mode,
          "device": smi, "ctest_exit": int(rc), "summary": passed, "skipped": int(skipped)}
open(f"{out}/report.json", "w").write(json.dumps(report, indent=2) + "\n")
open(f"{out}/report.md", "w").write(
    f"# gpu-check {report['date']}\n\n- commit: {commit}\n- mode: {mode}\n- device: {smi or 'none'}\n"
    f"- tests: {passed} ({skipped} skipped)\n")
print(f"gpu-check: reports in {out}/report.json and {out}/report.md")
PY
exit "$rc"
