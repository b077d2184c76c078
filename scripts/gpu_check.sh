#!/usr/bin/env bash
# GPU validation through the GPU bundle (`make gpu-bundle`, scripts/gpu_bundle/). It builds nothing and
# installs nothing (never scripts/setup.sh: a GPU machine has no network), so it runs where the bundle was
# carried. With a working NVIDIA driver it runs the bundle for real (GPU mode: a skipped test fails);
# without one, in dry mode (run.sh --dry-run: everything up to the first CUDA call). Writes, in OUT_DIR:
# the bundle's logs, the tests' XML reports (gtest's JUnit-style XML), results.txt, report.md (GPU mode),
# and report.json.
#
#   scripts/gpu_check.sh BUNDLE_DIR [OUT_DIR]      (OUT_DIR: relative to the current folder, or absolute)
set -euo pipefail
bundle=${1:?usage: gpu_check.sh BUNDLE_DIR [OUT_DIR]}
out=${2:-${OUT:-out/gpu-check}}
mkdir -p "$out"
out=$(cd "$out" && pwd)  # absolute from here on, whatever the caller gave
[ -x "$bundle/run.sh" ] || { echo "gpu-check: no bundle at $bundle: run make gpu-bundle (on the build machine) first" >&2; exit 2; }

mode=dry
smi=""
if command -v nvidia-smi >/dev/null 2>&1 && smi=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null); then
  mode=gpu
fi
echo "gpu-check: mode=$mode ${smi:+($smi)} bundle=$bundle out=$out"

set +e
if [ $mode = gpu ]; then
  bash "$bundle/run.sh" --out "$out" ${GPU_CHECK_ARGS:-} 2>&1 | tee "$out/run.log"
else
  bash "$bundle/run.sh" --dry-run --out "$out" ${GPU_CHECK_ARGS:-} 2>&1 | tee "$out/run.log"
fi
rc=${PIPESTATUS[0]}
set -e

python3 - "$out" "$mode" "$smi" "$rc" "$(sed -n 's/^commit=//p' "$bundle/BUILD_INFO" 2>/dev/null)" <<'PY'
import glob, json, sys, datetime
import xml.etree.ElementTree as ET
out, mode, smi, rc, commit = sys.argv[1:]
tests = {"tests": 0, "failures": 0, "skipped": 0}
for path in glob.glob(f"{out}/*.xml"):
    root = ET.parse(path).getroot()
    for case in root.iter("testcase"):
        tests["tests"] += 1
        tests["failures"] += case.find("failure") is not None
        tests["skipped"] += case.find("skipped") is not None or case.get("result") == "skipped"
results = {}
try:
    for line in open(f"{out}/results.txt"):
        if line.startswith("RESULT "):
            key, _, value = line[7:].partition("=")
            results[key] = value.split("  #")[0].strip()
except FileNotFoundError:
    pass
report = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "commit": commit or "unknown",
          "mode": mode, "device": smi, "exit": int(rc), "tests": tests, "results": results}
open(f"{out}/report.json", "w").write(json.dumps(report, indent=2) + "\n")
print(f"gpu-check: exit {rc}; reports in {out} (report.json{', report.md' if mode == 'gpu' else ''})")
PY
exit "$rc"
