#!/usr/bin/env python3
"""`twistedpic serve` against the C++ API, on loopback, in the same run (issue #21's benchmark).

    bench_serve.py BUILD_DIR [--requests 6] [--min-rounds 3] [--max-rounds 8] [--threads 1]

Both sides run models/tiny-sd3 (32x32, the model's steps, fp32) from one config (preset balanced: the networks
stay resident between requests), the same prompt and seeds:
  server  BUILD/twistedpic serve --port 0: POST /v1/images/generations, b64_json, one client, the wall time of
          each request (HTTP, JSON, queueing, generation, PNG, base64);
  direct  BUILD/bench/overhead_cpp: tp::Pipeline::generate in one process, the wall time of each call.
Each side makes REQUESTS timed calls per round after a warm-up; the sides swap order every round, and each round
gives the ratio of the medians. Rounds go on until the spread is at most 10 % (scripts/bench_ratio.py):
  RESULT serve_overhead=<server p50 / direct p50 at 1 client>   (target <= 1.05)
Then, for information, requests per second and p50/p95 latency with 1 and 8 concurrent clients
(--concurrency 1: the 8 clients queue, as the server's bounded queue lets them).
"""
import argparse
import base64
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench_ratio import measure_rounds, result_line

REPO = Path(__file__).resolve().parents[1]
PROMPT = "a red circle on a white background"


class Server:
    def __init__(self, cli: Path, config: Path, env):
        self.proc = subprocess.Popen([str(cli), "-q", "--config", str(config), "serve", "--port", "0",
                                      "--concurrency", "1", "--queue", "64"], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, env=env)
        line = self.proc.stdout.readline()
        if not line.startswith("listening on http://"):
            self.proc.kill()
            sys.exit(f"bench_serve: the server did not start ({line!r})")
        self.port = int(line.strip().rsplit(":", 1)[1])

    def generate(self, seed: int) -> float:
        body = json.dumps({"model": "default", "prompt": PROMPT, "size": "32x32", "response_format": "b64_json",
                           "seed": seed})
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
        try:
            t0 = time.perf_counter()
            conn.request("POST", "/v1/images/generations", body=body, headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            data = r.read()
            elapsed = time.perf_counter() - t0
        finally:
            conn.close()
        if r.status != 200:
            sys.exit(f"bench_serve: status {r.status}: {data[:300]!r}")
        png = base64.b64decode(json.loads(data)["data"][0]["b64_json"])
        if png[:4] != b"\x89PNG":
            sys.exit("bench_serve: the answer is not a PNG")
        return elapsed

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build", type=Path)
    ap.add_argument("--requests", type=int, default=6)
    ap.add_argument("--min-rounds", type=int, default=3)
    ap.add_argument("--max-rounds", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS for both sides")
    args = ap.parse_args()
    build = args.build.resolve()
    cli, direct = build / "twistedpic", build / "bench" / "overhead_cpp"
    for f in (cli, direct):
        if not f.exists():
            sys.exit(f"{f} does not exist: build first (make bench builds bench/overhead_cpp)")
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    with tempfile.TemporaryDirectory(prefix="tp_bench_serve_") as tmp:
        config = Path(tmp) / "models.json"
        config.write_text(json.dumps({"preset": "balanced", "models": {"default": {
            "path": str(REPO / "models" / "tiny-sd3"), "pipeline_type": "sd3", "dtype": "fp32"}}}))
        server = Server(cli, config, env)
        try:
            server.generate(0)  # warm-up: the loads
            served, direct_calls = [], []

            def serve_side():
                times = [server.generate(seed) for seed in range(1, args.requests + 1)]
                served.extend(times)
                return statistics.median(times)

            def direct_side():
                out = subprocess.run([str(direct), str(config), "default", PROMPT, "1", str(args.requests + 1)],
                                     check=True, capture_output=True, text=True, env=env).stdout
                times = [json.loads(line)["wall_s"] for line in out.splitlines() if line.startswith("{")][1:]
                direct_calls.extend(times)
                return statistics.median(times)

            def one_round(r):
                order = [("server", serve_side), ("direct", direct_side)]
                got = {name: run() for name, run in (order if r % 2 == 0 else order[::-1])}
                return {"serve_overhead": got["server"] / got["direct"]}

            ratios = measure_rounds(one_round, args.min_rounds, args.max_rounds)
            print(f"one tiny-sd3 image (32x32, fp32, CPU, {args.threads} thread(s)), {len(ratios['serve_overhead'])} "
                  f"rounds x {args.requests} requests, sides alternated")
            for name, xs in (("server, 1 client", served), ("direct C++ call", direct_calls)):
                print(f"  {name:<18} p50 {statistics.median(xs) * 1e3:8.1f} ms   p95 {percentile(xs, 0.95) * 1e3:8.1f} ms"
                      f"   {len(xs) / sum(xs):6.2f} req/s")
            # 8 concurrent clients (queued by the server's concurrency 1), for information.
            latencies, lock = [], threading.Lock()

            def client(i):
                for k in range(args.requests):
                    t = server.generate(1000 + i * 100 + k)
                    with lock:
                        latencies.append(t)

            t0 = time.perf_counter()
            threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - t0
            print(f"  {'server, 8 clients':<18} p50 {statistics.median(latencies) * 1e3:8.1f} ms   p95 "
                  f"{percentile(latencies, 0.95) * 1e3:8.1f} ms   {len(latencies) / wall:6.2f} req/s")
        finally:
            server.stop()
    for key, values in ratios.items():
        print(result_line(key, values))
    return 0


if __name__ == "__main__":
    sys.exit(main())
