#!/usr/bin/env python3
"""examples/ray_serve on a local Ray cluster (ctest label `ray`): two CPU replicas, both used.

    ray_serve_test.py LIB_DIR

Ray Serve comes from PyPI ("ray[serve]") into its own venv, ~/.cache/twistedpic/ray-venv (TP_RAY_VENV), made
once and kept; twistedpic is the source tree's package (bindings/python) over LIB_DIR/libtwistedpic.so, which
the replicas import. When Ray cannot be installed (no PyPI), the test exits 77: ctest reports it skipped.

It starts Ray with 2 CPUs, deploys examples/ray_serve/app.py with two CPU replicas of the tiny default model,
sends requests 4 at a time until both replicas (two different pids) have answered, at most 24 requests and
within 240 s, and checks every answer: 200, OpenAI's JSON with one 32x32 PNG, the replica and pid named, the
X-Request-Id echoed. Bad JSON gets OpenAI's 400. Then Serve and Ray shut down.
"""
import os
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
SKIP = 77


def ray_python():
    venv = pathlib.Path(os.environ.get("TP_RAY_VENV", pathlib.Path.home() / ".cache" / "twistedpic" / "ray-venv"))
    python = venv / "bin" / "python"
    ok = python.exists() and subprocess.run([python, "-c", "import ray.serve, starlette"],
                                            capture_output=True).returncode == 0
    if not ok:
        print(f"== installing ray[serve] from PyPI into {venv}", flush=True)
        try:
            r = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True)
            r = r.returncode == 0 and subprocess.run(
                [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "ray[serve]"],
                capture_output=True, text=True, timeout=480)
        except subprocess.TimeoutExpired:
            r = None
        if not r or r.returncode != 0:
            print(f"SKIP: ray[serve] cannot be installed: {getattr(r, 'stderr', 'timed out')[-500:]}")
            sys.exit(SKIP)
    return python


DRIVER = r'''
import base64, concurrent.futures, json, os, socket, sys, time, urllib.request, urllib.error
import ray
from ray import serve
from app import build_app  # examples/ray_serve/app.py, on PYTHONPATH for the replicas too

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
env = {k: os.environ[k] for k in ("PYTHONPATH", "TWISTEDPIC_LIBRARY")}
t0 = time.time()
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
serve.start(http_options={"host": "127.0.0.1", "port": port})
serve.run(build_app({"cpu_replicas": 2}), route_prefix="/", name="twistedpic")
print(f"ray: deployed 2 CPU replicas in {time.time() - t0:.1f} s", flush=True)
url = f"http://127.0.0.1:{port}/v1/images/generations"

def post(i, body=None):
    data = body if body is not None else json.dumps({"model": "tiny", "prompt": "a red circle on a white background",
                                                     "size": "32x32", "steps": 2, "seed": i}).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json",
                                                          "X-Request-Id": f"ray-test-{i}"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, json.loads(e.read())

pids, answers, t0 = set(), 0, time.time()
with concurrent.futures.ThreadPoolExecutor(4) as pool:
    i = 0
    while len(pids) < 2 and answers < 24 and time.time() - t0 < 240:
        for status, headers, out in pool.map(post, range(i, i + 4)):
            assert status == 200, (status, out)
            png = base64.b64decode(out["data"][0]["b64_json"])
            assert png[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(png[16:20], "big") == 32, "not a 32x32 PNG"
            t = out["twistedpic"]
            assert t["pid"] and t["replica"] and t["request_id"].startswith("ray-test-"), t
            assert headers.get("x-request-id") == t["request_id"], headers
            pids.add(t["pid"])
            answers += 1
        i += 4
took = time.time() - t0
status, _, out = post(0, b'{"prompt": ')
assert status == 400 and out["error"]["code"] == "invalid_json", (status, out)
serve.shutdown()
ray.shutdown()
assert len(pids) == 2, f"only {len(pids)} replica(s) answered {answers} requests in {took:.0f} s"
print(f"ray: {answers} requests in {took:.1f} s, answered by 2 replicas (pids {sorted(pids)}); bad JSON: 400")
'''


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    lib = pathlib.Path(sys.argv[1]).resolve() / "libtwistedpic.so"
    if not lib.exists():
        sys.exit(f"FAIL: {lib} does not exist")
    python = ray_python()
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'bindings' / 'python'}:{ROOT / 'examples' / 'ray_serve'}", "TWISTEDPIC_LIBRARY": str(lib),
           "TP_ROOT": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0", "RAY_DEDUP_LOGS": "0",
           "PYTHONDONTWRITEBYTECODE": "1"}
    r = subprocess.run([python, "-c", DRIVER], env=env, timeout=420)
    sys.exit(r.returncode)


if __name__ == "__main__":
    main()
