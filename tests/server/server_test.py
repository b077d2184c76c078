#!/usr/bin/env python3
"""`twistedpic serve` against loopback, with real clients (ctest label `server`).

    server_test.py CLI CASE WORKDIR

CLI is the twistedpic binary; the server runs the shipped default model
(models/tiny-sd3, 32x32, CPU) from a registry config written to WORKDIR, on a
free port (--port 0; the port is read from its "listening on" line). CASE:

  curl      curl against every route: /healthz, /v1/models, a generation
            (b64_json decoded to a 32x32 PNG), /api/ps, keep_alive 0 (every
            network on disk right after), /api/unload, /metrics; then SIGTERM
            drains and the exit status is 0.
  openai    the official `openai` package with an API key: images.generate
            with b64_json, n=2 and the seed/steps extensions; the PNGs are
            decoded and classified by scripts/shape_meaning.py (shape and colours).
  bad       bad requests get a 4xx JSON error with a message, and the server
            keeps serving: malformed JSON, a wrong content type, an unknown
            model, odd sizes, n=10000, negative steps, a 10 MB prompt, a body
            that stops half-way (read timeout), a missing or wrong API key, a
            path outside the API, a wrong method, unknown fields.
  load      32 clients x 2 requests against --concurrency 1 --queue 2: every
            answer is 200 or 429 (with Retry-After), none is lost, both kinds
            occur, within 150 s; the server's RSS (sampled from /proc every
            50 ms) grows less than RSS_GROWTH_LIMIT over the warm server's;
            after the idle timeout (keep_alive 1 s) the device bytes in
            /metrics and /api/ps are back to the start's; the server still
            answers and drains afterwards.
  events    GET /api/events: a generation's queued/running/done, residency (load) and per-step events
            arrive in order, tagged with the client's X-Request-Id (echoed in the header and the JSON);
            ?request_id= filters; a stalled reader is dropped, not waited for.
  ollama    a polite neighbour to Ollama, against a stand-in (OllamaStandIn: a real Ollama cannot be
            installed here): a load that does not fit unloads Ollama's idle model only, none while
            Ollama is busy, none when the load fits; decisions logged and in /metrics.
  config    the config file's "server" object; flags override it; errors name the field.
  drain     SIGTERM while a generation runs: it still gets its 200, a new
            request is refused, the exit status is 0 and every model is unloaded.

Exit status 0 when the case passes; a failure prints what went wrong.
"""
import base64
import http.client
import io
import json
import os
import pathlib
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "tiny-sd3"
KEY = "test-key-123"


class Server:
    """A `twistedpic serve` child process on a free loopback port."""

    def __init__(self, cli, workdir, *args, api_key=None, env=None, config_extra=None):
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "models.json"
        config.write_text(json.dumps({
            "preset": "balanced",
            "models": {"tiny": {"path": str(MODEL), "pipeline_type": "sd3", "dtype": "fp32"}},
            **(config_extra or {}),
        }))
        self.log_path = workdir / "server.log"
        self.log = open(self.log_path, "w")
        cmd = [cli, "-q", "--config", str(config), "serve", "--port", "0", *args]
        if api_key:
            cmd += ["--api-key", api_key]
        self.api_key = api_key
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     env={**os.environ, **(env or {})})
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        line = ""
        deadline = time.time() + 60
        while time.time() < deadline and not line:
            if sel.select(timeout=1):
                line = self.proc.stdout.readline()
                if not line:
                    break
            if self.proc.poll() is not None:
                break
        if not line.startswith("listening on http://"):
            self.fail_with_log(f"the server did not start (first line {line!r})")
        self.port = int(line.strip().rsplit(":", 1)[1])

    def fail_with_log(self, message):
        self.log.flush()
        sys.stderr.write(f"FAIL: {message}\n--- server log ---\n{self.log_path.read_text()[-4000:]}\n")
        if self.proc.poll() is None:
            self.proc.kill()
        sys.exit(1)

    def request(self, method, path, body=None, headers=None, auth=True, timeout=120):
        """(status, headers, body bytes); JSON bodies are sent as application/json."""
        h = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        if auth and self.api_key:
            h.setdefault("Authorization", f"Bearer {self.api_key}")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def json(self, method, path, body=None, expect=200, **kw):
        status, headers, data = self.request(method, path, body, **kw)
        if status != expect:
            self.fail_with_log(f"{method} {path}: status {status}, expected {expect}: {data[:500]!r}")
        return json.loads(data) if data and headers.get("content-type", "").startswith("application/json") else data

    def stop(self, expect_rc=0, timeout=60):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.fail_with_log("SIGTERM: the server did not exit")
        if rc != expect_rc:
            self.fail_with_log(f"SIGTERM: exit status {rc}, expected {expect_rc}")
        self.log.close()
        return self.log_path.read_text()


def check(cond, message, server=None):
    if not cond:
        if server:
            server.fail_with_log(message)
        sys.stderr.write(f"FAIL: {message}\n")
        sys.exit(1)


def png_size(data):
    check(data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def generation(prompt="a red circle on a white background", **extra):
    return {"model": "tiny", "prompt": prompt, "n": 1, "size": "32x32", "response_format": "b64_json",
            "steps": 4, "seed": 1, **extra}


def case_curl(cli, workdir):
    s = Server(cli, workdir)
    base = f"http://127.0.0.1:{s.port}"

    def curl(*args):
        r = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", *args], capture_output=True, text=True, timeout=120)
        check(r.returncode == 0, f"curl {args}: {r.stderr}", s)
        body, _, code = r.stdout.rpartition("\n")
        return int(code), body

    code, body = curl(f"{base}/healthz")
    check(code == 200 and json.loads(body)["status"] == "ok", f"/healthz: {code} {body}", s)
    code, body = curl(f"{base}/v1/models")
    models = json.loads(body)
    check(code == 200 and models["object"] == "list" and [m["id"] for m in models["data"]] == ["tiny"],
          f"/v1/models: {body}", s)
    code, body = curl(f"{base}/api/ps")
    ps = json.loads(body)["models"]
    check(code == 200 and ps and all(m["tier"] == "disk" and m["state"] == "unloaded" for m in ps),
          f"/api/ps at start: {body}", s)
    names = sorted(m["name"] for m in ps)

    code, body = curl(f"{base}/v1/images/generations", "-H", "Content-Type: application/json",
                      "-d", json.dumps(generation(n=2, seed=7)))
    check(code == 200, f"generation: {code} {body[:300]}", s)
    out = json.loads(body)
    check(len(out["data"]) == 2 and out["twistedpic"]["seed"] == 7 and out["twistedpic"]["steps"] == 4,
          f"generation: {body[:300]}", s)
    for item in out["data"]:
        check(png_size(base64.b64decode(item["b64_json"])) == (32, 32), "generation: not a 32x32 PNG", s)

    code, body = curl(f"{base}/api/ps")
    ps = {m["name"]: m for m in json.loads(body)["models"]}
    check(any(m["tier"] == "device" for m in ps.values()), f"/api/ps after a generation (balanced): {body}", s)
    check(all(m["leases"] == 0 for m in ps.values()), f"/api/ps: leases left: {body}", s)
    devices = json.loads(body)["devices"]
    check(len(devices) == 1 and devices[0]["total_bytes"] > 0
          and devices[0]["held_bytes"] == sum(m["device_bytes"] for m in ps.values()),
          f"/api/ps: devices {devices} do not add up to the models' device bytes", s)
    check(all(m["device"] == devices[0]["name"] for m in ps.values()), f"/api/ps: models off the device list: {body}", s)
    device_name = devices[0]["name"]

    # keep_alive 5m: an expires_at; keep_alive 0: every network on disk when the answer comes.
    code, body = curl(f"{base}/v1/images/generations", "-H", "Content-Type: application/json",
                      "-d", json.dumps(generation(keep_alive="5m")))
    check(code == 200, f"keep_alive 5m: {code}", s)
    ps = json.loads(curl(f"{base}/api/ps")[1])["models"]
    check(any(m["expires_at"] for m in ps), f"keep_alive 5m: no expires_at in {ps}", s)
    code, body = curl(f"{base}/v1/images/generations", "-H", "Content-Type: application/json",
                      "-d", json.dumps(generation(keep_alive=0)))
    check(code == 200, f"keep_alive 0: {code}", s)
    ps = json.loads(curl(f"{base}/api/ps")[1])["models"]
    check(all(m["tier"] == "disk" and m["device_bytes"] == 0 for m in ps), f"keep_alive 0: {ps}", s)

    # /api/unload of a pipeline after loading it again.
    code, _ = curl(f"{base}/v1/images/generations", "-H", "Content-Type: application/json",
                   "-d", json.dumps(generation()))
    code, body = curl(f"{base}/api/unload", "-H", "Content-Type: application/json", "-d", '{"model": "tiny"}')
    unloaded = json.loads(body)
    check(code == 200 and unloaded["unloaded"] and not unloaded["busy"], f"/api/unload: {code} {body}", s)
    ps = json.loads(curl(f"{base}/api/ps")[1])["models"]
    check(all(m["tier"] == "disk" for m in ps), f"/api/ps after /api/unload: {ps}", s)
    check(sorted(m["name"] for m in ps) == names, "/api/ps: the models changed", s)

    code, body = curl(f"{base}/metrics")
    check(code == 200, f"/metrics: {code}", s)
    for needle in ('twistedpic_generations_total{pipeline="tiny",outcome="ok"} 4',
                   'twistedpic_images_total{pipeline="tiny"} 5',
                   'twistedpic_evictions_total{reason="explicit"}', "twistedpic_loads_total ",
                   "twistedpic_device_bytes 0", 'twistedpic_queue_depth{pipeline="tiny"} 0',
                   'twistedpic_generation_duration_seconds_count{pipeline="tiny"} 4',
                   'twistedpic_http_requests_total{route="/v1/images/generations",status="200"} 4',
                   "twistedpic_admission_queue 0", "twistedpic_admission_waits_total ",
                   "twistedpic_cache_bytes_returned_total ", "twistedpic_device_bytes_other_processes ",
                   "twistedpic_device_headroom_bytes ",
                   f'twistedpic_device_memory_bytes{{device="{device_name}",kind="models"}} 0',
                   f'twistedpic_device_memory_bytes{{device="{device_name}",kind="total"}} '):
        check(needle in body, f"/metrics lacks {needle!r}:\n{body}", s)
    loads = int(next(l for l in body.splitlines() if l.startswith("twistedpic_loads_total ")).split()[1])
    check(loads >= 2 * len(names) - 1, f"/metrics: {loads} loads", s)

    log = s.stop()
    check("drained" in log, f"no drain in the log:\n{log}")
    print(f"curl: every route answered; {loads} loads; SIGTERM drained, exit 0")


def case_openai(cli, workdir):
    import numpy as np
    from openai import OpenAI
    from PIL import Image
    sys.path.insert(0, str(ROOT / "scripts"))
    from shape_meaning import classify

    s = Server(cli, workdir, api_key=KEY)
    client = OpenAI(base_url=f"http://127.0.0.1:{s.port}/v1", api_key=KEY, max_retries=0, timeout=120)
    listed = [m.id for m in client.models.list()]
    check(listed == ["tiny"], f"models.list: {listed}", s)
    right = 0
    cases = [("a red circle on a white background", ("red", "circle", "white"), 100),
             ("a blue square on a yellow background", ("blue", "square", "yellow"), 101)]
    for prompt, expected, seed in cases:
        result = client.images.generate(model="tiny", prompt=prompt, n=2, size="32x32", response_format="b64_json",
                                        extra_body={"seed": seed, "steps": 10})  # half the default: faster, still right
        check(len(result.data) == 2, f"{prompt}: {len(result.data)} images", s)
        for item in result.data:
            image = Image.open(io.BytesIO(base64.b64decode(item.b64_json)))
            check(image.size == (32, 32), f"{prompt}: size {image.size}", s)
            v = classify(np.asarray(image.convert("RGB")))
            print(f"openai: {prompt!r} -> {v}")
            right += (v.colour, v.shape, v.background) == expected
    check(right >= 3, f"openai: only {right} of 4 pictures show what was asked", s)
    # The client's own error types for the server's errors.
    import openai
    try:
        client.images.generate(model="nope", prompt="x", response_format="b64_json")
        check(False, "an unknown model was accepted", s)
    except openai.NotFoundError as e:
        check("nope" in str(e), f"unknown model: {e}", s)
    bad = OpenAI(base_url=f"http://127.0.0.1:{s.port}/v1", api_key="wrong", max_retries=0)
    try:
        bad.models.list()
        check(False, "a wrong API key was accepted", s)
    except openai.AuthenticationError:
        pass
    s.stop()
    print(f"openai: {right} of 4 pictures right; errors mapped to the client's exceptions")


def raw(port, data, read_timeout=10):
    """Sends raw bytes; returns what came back (b"" if the server closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while True:
                c = sock.recv(65536)
                if not c:
                    break
                chunks.append(c)
        except socket.timeout:
            pass
        return b"".join(chunks)


def case_bad(cli, workdir):
    s = Server(cli, workdir, "--read-timeout", "1", api_key=KEY)

    def expect_error(status, method, path, body=None, headers=None, auth=True, what=""):
        got, hdrs, data = s.request(method, path, body, headers, auth=auth)
        check(got == status, f"{what or path}: status {got}, expected {status}: {data[:300]!r}", s)
        check(hdrs.get("content-type", "").startswith("application/json"), f"{what}: not JSON: {hdrs}", s)
        err = json.loads(data)["error"]
        check(isinstance(err["message"], str) and err["message"] and err["type"], f"{what}: {err}", s)
        print(f"bad: {what:<22} {got} {err['code']}: {err['message'][:90]}")
        return err

    gen = "/v1/images/generations"
    expect_error(400, "POST", gen, b'{"prompt": "x",', {"Content-Type": "application/json"}, what="malformed JSON")
    expect_error(400, "POST", gen, b'[1, 2]', {"Content-Type": "application/json"}, what="not an object")
    expect_error(400, "POST", gen, b"[" * 200000 + b"]" * 200000, {"Content-Type": "application/json"},
                 what="nested 200000 deep")
    expect_error(400, "POST", gen, b'{"prompt": "\\ud800"}', {"Content-Type": "application/json"},
                 what="lone surrogate")
    expect_error(400, "POST", gen, b'{"prompt": "a\xff"}', {"Content-Type": "application/json"}, what="not UTF-8")
    expect_error(415, "POST", gen, json.dumps(generation()).encode(), {"Content-Type": "text/plain"},
                 what="wrong content type")
    e = expect_error(404, "POST", gen, generation(model="nope"), what="unknown model")
    check(e["code"] == "model_not_found" and "nope" in e["message"], f"unknown model: {e}", s)
    for size in ("31x32", "32", "axb", "-32x32", "100000x32", "32x32x32", ""):
        e = expect_error(400, "POST", gen, generation(size=size), what=f"size {size!r}")
        check(e["param"] == "size", f"size {size!r}: {e}", s)
    e = expect_error(400, "POST", gen, generation(n=10000), what="n=10000")
    check(e["param"] == "n", f"n: {e}", s)
    expect_error(400, "POST", gen, generation(n=0), what="n=0")
    e = expect_error(400, "POST", gen, generation(steps=-5), what="negative steps")
    check(e["param"] == "steps", f"steps: {e}", s)
    expect_error(400, "POST", gen, generation(steps=2.5), what="fractional steps")
    expect_error(400, "POST", gen, generation(seed=-1), what="negative seed")
    expect_error(400, "POST", gen, generation(guidance_scale="high"), what="guidance string")
    expect_error(400, "POST", gen, generation(keep_alive="soon"), what="bad keep_alive")
    expect_error(400, "POST", gen, generation(response_format="url"), what="response_format url")
    expect_error(400, "POST", gen, generation(num_steps=3), what="unknown field")
    expect_error(400, "POST", gen, generation(options={"true_cfg_scale": 2}), what="option sd3 lacks")
    expect_error(400, "POST", gen, {"model": "tiny"}, what="no prompt")
    expect_error(400, "POST", gen, generation(prompt=""), what="empty prompt")
    expect_error(400, "POST", gen, generation(prompt=17), what="prompt a number")
    e = expect_error(400, "POST", gen, generation(prompt="x" * 20000), what="20 kB prompt")
    check(e["code"] == "prompt_too_long", f"long prompt: {e}", s)
    e = expect_error(413, "POST", gen, generation(prompt="x" * (10 << 20)), what="10 MB prompt")
    check(e["code"] == "body_too_large", f"10 MB: {e}", s)
    expect_error(401, "POST", gen, generation(), auth=False, what="missing API key")
    expect_error(401, "POST", gen, generation(), {"Authorization": "Bearer wrong"}, what="wrong API key")
    expect_error(401, "GET", "/api/ps", headers={"Authorization": "Basic dGVzdA=="}, what="Basic auth")
    expect_error(404, "GET", "/v2/whatever", what="path outside the API")
    expect_error(404, "GET", "/../../etc/passwd", what="path traversal")
    expect_error(405, "GET", gen, what="wrong method")
    expect_error(404, "POST", "/api/unload", {"model": "nope"}, what="unload unknown")
    expect_error(400, "POST", "/api/unload", {"model": "tiny", "to": "device"}, what="unload to device")

    # A body that stops half-way: the read times out (1 s) and the connection is answered or closed.
    t0 = time.time()
    reply = raw(s.port, b"POST /v1/images/generations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        b"Authorization: Bearer " + KEY.encode() + b"\r\nConnection: close\r\nContent-Length: 1000\r\n\r\n"
                        b"{\"prompt\": \"a",
                read_timeout=15)
    took = time.time() - t0
    check(took < 10, f"half a body: the server waited {took:.1f} s (read timeout 1 s)", s)
    check(reply == b"" or reply.split(b" ")[1][:1] == b"4", f"half a body: {reply[:200]!r}", s)
    first = reply.split(b"\r\n")[0] if reply else b"(no answer)"
    print(f"bad: half a body            closed after {took:.1f} s: {first!r}")
    # Garbage instead of HTTP.
    reply = raw(s.port, b"\x00\x01\x02 not http\r\n\r\n", read_timeout=5)
    check(reply == b"" or reply.split(b" ")[1][:1] == b"4", f"garbage: {reply[:200]!r}", s)

    # Still serving.
    out = s.json("POST", gen, generation())
    check(png_size(base64.b64decode(out["data"][0]["b64_json"])) == (32, 32), "after the bad requests", s)
    check(s.json("GET", "/healthz", auth=False)["status"] == "ok", "healthz", s)
    metrics = s.json("GET", "/metrics").decode()
    check('twistedpic_http_requests_total{route="other",status="404"}' in metrics, "metrics: 404s not counted", s)
    s.stop()
    print("bad: every bad request got a 4xx JSON error; the server kept serving and drained")


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def device_bytes(s):
    """(twistedpic_device_bytes from /metrics, the sum of size_vram in /api/ps)."""
    metrics = s.json("GET", "/metrics").decode()
    held = int(next(l for l in metrics.splitlines() if l.startswith("twistedpic_device_bytes ")).split()[1])
    return held, sum(m["size_vram"] for m in s.json("GET", "/api/ps")["models"])


RSS_GROWTH_LIMIT = 192 << 20  # what 32 concurrent clients may add to the warm server's resident memory


def case_load(cli, workdir, clients=32, per_client=2):
    # keep_alive 1 s: idle networks leave the device a second after the last generation.
    s = Server(cli, workdir, "--concurrency", "1", "--queue", "2", "--keep-alive", "1")
    at_start = device_bytes(s)
    check(at_start == (0, 0), f"load: device bytes at start {at_start}", s)
    s.json("POST", "/v1/images/generations", generation(steps=2))  # warm: weights loaded, allocator grown
    rss_warm = rss_bytes(s.proc.pid)
    rss_peak, sampling = [rss_warm], threading.Event()

    def sample():
        while not sampling.wait(0.05):
            try:
                rss_peak[0] = max(rss_peak[0], rss_bytes(s.proc.pid))
            except (OSError, StopIteration):
                return

    sampler = threading.Thread(target=sample)
    sampler.start()
    results, lock = [], threading.Lock()
    start = threading.Barrier(clients)

    def client(i):
        start.wait()
        for j in range(per_client):
            try:
                status, headers, data = s.request("POST", "/v1/images/generations",
                                                  generation(seed=i * 10 + j, steps=2), timeout=120)
                ok = status == 200 and len(json.loads(data)["data"]) == 1
                retry = headers.get("retry-after")
                err = None if status == 200 else json.loads(data)["error"]["code"]
            except Exception as e:  # a lost request
                status, ok, retry, err = None, False, None, repr(e)
            with lock:
                results.append((status, ok, retry, err))

    t0 = time.time()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    took = time.time() - t0
    sampling.set()
    sampler.join()
    check(not any(t.is_alive() for t in threads), "load: a client hangs (deadlock?)", s)
    check(took < 150, f"load: {clients} x {per_client} took {took:.0f} s", s)
    check(len(results) == clients * per_client, f"load: {len(results)} answers for {clients * per_client}", s)
    statuses = [r[0] for r in results]
    check(all(st in (200, 429) for st in statuses), f"load: statuses {statuses} ({results})", s)
    check(all(r[1] for r in results if r[0] == 200), "load: a 200 without an image", s)
    check(all(r[2] and int(r[2]) >= 1 and r[3] == "queue_full" for r in results if r[0] == 429),
          f"load: a 429 without Retry-After: {results}", s)
    n200, n429 = statuses.count(200), statuses.count(429)
    check(n200 >= 1 and n429 >= 1, f"load: {n200} x 200, {n429} x 429 (expected both)", s)
    check(s.json("GET", "/healthz")["status"] == "ok", "load: healthz after", s)
    metrics = s.json("GET", "/metrics").decode()
    check(f'twistedpic_rejected_total{{pipeline="tiny",reason="queue_full"}} {n429}' in metrics,
          "load: rejected_total does not match", s)
    check('twistedpic_queue_depth{pipeline="tiny"} 0' in metrics, "load: the queue is not empty after", s)
    growth = rss_peak[0] - rss_warm
    check(growth < RSS_GROWTH_LIMIT, f"load: RSS grew {growth >> 20} MiB under load (limit "
                                     f"{RSS_GROWTH_LIMIT >> 20} MiB): {rss_warm >> 20} -> {rss_peak[0] >> 20} MiB", s)
    print(f"load: {clients} clients x {per_client}: {n200} x 200, {n429} x 429, none lost, {took:.1f} s; "
          f"RSS {rss_warm >> 20} MiB warm, {rss_peak[0] >> 20} MiB peak (+{growth >> 20}, limit "
          f"{RSS_GROWTH_LIMIT >> 20})")
    t0 = time.time()
    while device_bytes(s) != at_start:
        check(time.time() - t0 < 15, f"load: device bytes {device_bytes(s)} after the idle timeout, "
                                     f"{at_start} at start", s)
        time.sleep(0.1)
    print(f"load: {time.time() - t0:.1f} s after the last answer, device bytes back to {at_start[0]} "
          f"(/metrics and /api/ps)")

    # Clients that disconnect leave the queue, or cancel their generation.
    def send(steps):
        body = json.dumps(generation(steps=steps)).encode()
        sock = socket.create_connection(("127.0.0.1", s.port))
        sock.sendall(b"POST /v1/images/generations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        return sock

    def wait_for(needle, what, limit=30):
        t0 = time.time()
        while needle not in s.json("GET", "/metrics").decode():
            check(time.time() - t0 < limit, f"disconnect: {what}", s)
            time.sleep(0.05)
        return time.time() - t0

    running = send(1000)
    wait_for('twistedpic_generations_running{pipeline="tiny"} 1', "the generation never started", 60)
    queued = send(4)
    wait_for('twistedpic_queue_depth{pipeline="tiny"} 1', "the second request never queued")
    queued.close()
    left = wait_for('twistedpic_queue_depth{pipeline="tiny"} 0', "a queued client that left stays queued", 5)
    running.close()
    cancelled = wait_for('outcome="disconnected"} 2', "the generation of a client that left was not cancelled", 20)
    check(s.json("POST", "/v1/images/generations", generation())["data"], "disconnect: no answer after", s)
    print(f"load: clients that disconnected left the queue in {left:.2f} s and cancelled a generation in "
          f"{cancelled:.2f} s; the next request was served")
    s.stop()


class EventReader:
    """A /api/events client on a thread: collects (event, data) pairs."""

    def __init__(self, s, query=""):
        self.events, self.lock = [], threading.Lock()
        self.conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=120)
        h = {"Authorization": f"Bearer {s.api_key}"} if s.api_key else {}
        self.conn.request("GET", "/api/events" + query, headers=h)
        self.response = self.conn.getresponse()
        check(self.response.status == 200, f"/api/events: status {self.response.status}", s)
        check(self.response.getheader("Content-Type", "").startswith("text/event-stream"),
              f"/api/events: {self.response.getheaders()}", s)
        self.ended = threading.Event()
        threading.Thread(target=self.read, daemon=True).start()
        self.wait(lambda e: e[0] == "hello", "no hello event", s)

    def read(self):
        name, data = None, []
        try:
            for raw_line in self.response:
                line = raw_line.decode().rstrip("\n")
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    data.append(line[6:])
                elif line == "" and name:
                    with self.lock:
                        self.events.append((name, json.loads("".join(data))))
                    name, data = None, []
        except (OSError, ValueError, AttributeError):  # AttributeError: http.client after close()
            pass
        self.ended.set()

    def wait(self, pred, what, s, limit=60):
        deadline = time.time() + limit
        while time.time() < deadline:
            with self.lock:
                found = [e for e in self.events if pred(e)]
            if found:
                return found
            time.sleep(0.02)
        s.fail_with_log(f"events: {what}; got {self.events[-20:]}")

    def close(self):
        self.conn.close()


def case_events(cli, workdir):
    """GET /api/events: a generation's request, residency and step events arrive in order, tagged with its
    request id (sent as X-Request-Id, returned in the header and the JSON); a stalled reader is dropped
    while the generation goes on."""
    s = Server(cli, workdir, "--event-buffer", "64")
    everything = EventReader(s)
    mine = EventReader(s, "?request_id=client-7")
    status, headers, data = s.request("POST", "/v1/images/generations", generation(steps=5),
                                      headers={"X-Request-Id": "client-7"})
    check(status == 200, f"events: generation {status} {data[:200]!r}", s)
    check(headers.get("x-request-id") == "client-7", f"events: X-Request-Id {headers}", s)
    check(json.loads(data)["twistedpic"]["request_id"] == "client-7", "events: request_id not in the JSON", s)
    done = everything.wait(lambda e: e[0] == "request" and e[1]["state"] == "done", "no done event", s)
    check(done[0][1]["request_id"] == "client-7" and done[0][1]["status"] == 200, f"events: {done}", s)
    mine.wait(lambda e: e[0] == "request" and e[1]["state"] == "done", "filtered stream: no done event", s)
    with everything.lock:
        evs = list(everything.events)
    loads = [d for n, d in evs if n == "residency" and d["event"] == "load"]
    check(loads and all(d["request_id"] == "client-7" and d["to"] == "device" and d["bytes"] > 0 for d in loads),
          f"events: load events {loads}", s)
    steps = [d["step"] for n, d in evs if n == "progress" and d["stage"] == "denoise"]
    check(steps == [1, 2, 3, 4, 5], f"events: denoise steps {steps}", s)
    check(all(d.get("request_id") == "client-7" for n, d in evs if n in ("progress", "request")),
          "events: an untagged progress event", s)
    order = [(n, d.get("state") or d.get("stage") or d.get("event")) for n, d in evs if n != "hello"]
    first = lambda what: next(i for i, x in enumerate(order) if x == what)
    check(first(("request", "queued")) < first(("request", "running")) < first(("residency", "load"))
          < first(("progress", "denoise")) < first(("progress", "decode")) < first(("request", "done")),
          f"events: out of order: {order}", s)
    with mine.lock:
        check([e for e in mine.events if e[0] != "hello"] == [e for e in evs if e[1].get("request_id") == "client-7"],
              "events: the filtered stream differs from the tagged events of the full one", s)
    unload = s.json("POST", "/api/unload", {"model": "tiny"})
    everything.wait(lambda e: e[0] == "residency" and e[1]["event"] == "unload" and e[1]["reason"] == "explicit",
                    "no unload event", s)
    print(f"events: {len(evs)} events; {len(loads)} loads, steps {steps}, tagged client-7, in order; unload seen")

    # A reader that never reads (a tiny receive window): it is dropped once 64 events wait, and a long
    # generation is not slowed down by it.
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    stalled.connect(("127.0.0.1", s.port))
    stalled.sendall(b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n")
    t0 = time.time()
    status, _, data = s.request("POST", "/v1/images/generations", generation(steps=300), timeout=120)
    took = time.time() - t0
    check(status == 200, f"events: with a stalled reader: {status}", s)
    metrics = s.json("GET", "/metrics").decode()
    dropped = int(next(l for l in metrics.splitlines() if l.startswith("twistedpic_event_clients_dropped_total ")
                       ).split()[1])
    check(dropped >= 1, f"events: the stalled reader was not dropped:\n{metrics}", s)
    everything.wait(lambda e: e[0] == "progress" and e[1]["step"] == 300, "the live reader missed step 300", s)
    stalled.close()
    everything.close()
    mine.close()
    s.stop()
    print(f"events: a stalled reader was dropped ({dropped}); the 300-step generation took {took:.1f} s")


class OllamaStandIn:
    """A stand-in for Ollama (a real one cannot be installed here), implementing what twistedpic uses of
    Ollama's documented API: GET /api/ps ({"models": [{"name", "model", "size", "size_vram", "digest",
    "details", "expires_at"}]}) and POST /api/generate {"model": NAME, "keep_alive": 0}, which answers
    {"model", "created_at", "response": "", "done": true, "done_reason": "unload"} and unloads the model
    in the background (here after 0.2 s). A model marked busy has its expires_at pushed forward every
    0.3 s, as Ollama does each time a request for it ends; a pinned one (keep_alive -1) expires in 2318."""

    def __init__(self, models):
        import http.server
        self.models = {m["name"]: dict(m) for m in models}
        self.unload_requests, self.lock, self.stop_flag = [], threading.Lock(), threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def reply(self, code, obj):
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path != "/api/ps":
                    return self.reply(404, {"error": "not found"})
                with outer.lock:
                    listed = [{"name": m["name"], "model": m["name"], "size": m["size"], "size_vram": m["size_vram"],
                               "digest": "0" * 64, "details": {"format": "gguf", "family": "llama"},
                               "expires_at": m["expires_at"]} for m in outer.models.values()]
                self.reply(200, {"models": listed})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if self.path != "/api/generate" or body.get("keep_alive") != 0 or "prompt" in body:
                    return self.reply(400, {"error": f"the stand-in only unloads: {body}"})
                with outer.lock:
                    outer.unload_requests.append(body["model"])
                    known = body["model"] in outer.models
                if not known:
                    return self.reply(404, {"error": f"model '{body['model']}' not found"})
                threading.Timer(0.2, outer.drop, args=(body["model"],)).start()
                self.reply(200, {"model": body["model"], "created_at": "2026-12-05T23:00:00Z", "response": "",
                                 "done": True, "done_reason": "unload"})

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        threading.Thread(target=self.tick, daemon=True).start()

    def drop(self, name):
        with self.lock:
            self.models.pop(name, None)

    def tick(self):
        while not self.stop_flag.wait(0.3):
            with self.lock:
                for m in self.models.values():
                    if m.get("busy"):
                        t = time.gmtime(time.time() + 300)
                        m["expires_at"] = time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{int(time.time() * 1e6) % 10**6:06d}Z"

    def close(self):
        self.stop_flag.set()
        self.httpd.shutdown()


def case_ollama(cli, workdir):
    """A polite neighbour: before a load that does not fit (a device budget of 1 KiB, so never), the server
    reads Ollama's /api/ps and asks it to unload only the idle model; the busy one and the pinned one
    stay; with nothing idle left it asks nothing ("busy"); a load that fits never touches Ollama."""
    GiB = 1 << 30
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 240))
    ollama = OllamaStandIn([
        {"name": "llama3.1:8b", "size": 6 * GiB, "size_vram": 5 * GiB, "expires_at": later},
        {"name": "qwen2.5:7b", "size": 5 * GiB, "size_vram": 4 * GiB, "expires_at": later, "busy": True},
        {"name": "nomic-embed-text:latest", "size": GiB // 2, "size_vram": GiB // 2,
         "expires_at": "2318-11-12T03:00:00.000000Z"},
    ])
    neighbour = {"url": ollama.url, "busy_window_s": 1.5, "unload_wait_s": 5, "timeout_s": 2}
    s = Server(cli, workdir / "tight", config_extra={"device_budget_bytes": 1024,
                                                      "server": {"neighbours": {"ollama": neighbour}}})
    time.sleep(4.5)  # the server looks at /api/ps every 2 s: it sees qwen's expires_at move
    status, _, data = s.request("POST", "/v1/images/generations", generation())
    check(status >= 400, f"ollama: a 1 KiB budget served a generation: {status}", s)
    with ollama.lock:
        asked = list(ollama.unload_requests)
    check(asked == ["llama3.1:8b"], f"ollama: unload requests {asked} (expected only the idle llama3.1:8b)", s)
    metrics = s.json("GET", "/metrics").decode()
    for needle in ('twistedpic_ollama_decisions_total{outcome="unloaded"} 1', "twistedpic_ollama_unload_requests_total 1",
                   f"twistedpic_ollama_freed_bytes_total {5 * GiB}", "twistedpic_ollama_up 1"):
        check(needle in metrics, f"ollama: /metrics lacks {needle!r}:\n{metrics}", s)
    status, _, _ = s.request("POST", "/v1/images/generations", generation())
    metrics = s.json("GET", "/metrics").decode()
    check('twistedpic_ollama_decisions_total{outcome="busy"} 1' in metrics and
          "twistedpic_ollama_unload_requests_total 1" in metrics, f"ollama: busy: {metrics}", s)
    with ollama.lock:
        check(ollama.unload_requests == ["llama3.1:8b"], f"ollama: busy, yet asked {ollama.unload_requests}", s)
        left = sorted(ollama.models)
    log = s.stop()
    check("Ollama unloaded llama3.1:8b" in log and "Ollama is busy" in log, f"ollama: decisions not logged:\n{log}")
    print(f"ollama: a load that did not fit unloaded the idle llama3.1:8b (5 GiB); kept {left}; then 'busy'")

    # A load that fits: Ollama is left alone.
    s = Server(cli, workdir / "fits", config_extra={"server": {"neighbours": {"ollama": ollama.url}}})
    s.json("POST", "/v1/images/generations", generation())
    metrics = s.json("GET", "/metrics").decode()
    check("twistedpic_ollama_unload_requests_total 0" in metrics, f"ollama: a load that fits asked Ollama: {metrics}", s)
    s.stop()
    ollama.close()
    print("ollama: a load that fits left Ollama alone")


def case_config(cli, workdir):
    """The config's "server" object, the flags over it, and errors that name the field."""
    def bad(server, needle):
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "bad.json"
        config.write_text(json.dumps({"models": {"tiny": {"path": str(MODEL), "pipeline_type": "sd3"}},
                                      "server": server}))
        r = subprocess.run([cli, "-q", "--config", str(config), "serve", "--port", "0"], capture_output=True,
                           text=True, timeout=60, env={k: v for k, v in os.environ.items() if k != "TP_NO_KEY"})
        check(r.returncode != 0 and needle in r.stderr, f"config {server}: rc {r.returncode}, stderr {r.stderr!r}")
        print(f"config: {json.dumps(server):<60} -> {r.stderr.strip()[:110]}")

    bad({"port": 70000}, "server.port")
    bad({"queue_depth": "eight"}, "server.queue_depth")
    bad({"read_timeout_s": -1}, "server.read_timeout_s")
    bad({"api_key_env": "TP_NO_KEY"}, "server.api_key_env")
    bad({"neighbours": {"ollama": "localhost:11434"}}, "server.neighbours.ollama")
    bad({"neighbours": {"ollama": {"url": "http://x", "unload": True}}}, "server.neighbours.ollama.unload")
    bad({"prot": 1}, "server.prot")
    bad([], "server")

    # From the config: an API key from the environment, a prompt limit of 100 bytes, a queue of 0.
    s = Server(cli, workdir / "file", env={"MY_KEY": KEY}, config_extra={
        "server": {"api_key_env": "MY_KEY", "max_prompt_bytes": 100, "keep_alive": "1s", "port": 1}})
    s.api_key = KEY
    status, _, data = s.request("POST", "/v1/images/generations", generation(prompt="x" * 200))
    check(status == 400 and json.loads(data)["error"]["code"] == "prompt_too_long", f"config: {status} {data!r}", s)
    status, _, _ = s.request("GET", "/api/ps", auth=False)
    check(status == 401, f"config: api_key_env not applied ({status})", s)
    s.stop()
    # The flag wins over the file (and --port 0 over "port": 1 above).
    s = Server(cli, workdir / "flag", "--max-prompt-bytes", "1000", config_extra={"server": {"max_prompt_bytes": 100}})
    status, _, data = s.request("POST", "/v1/images/generations", generation(prompt="x" * 200, size="31x32"))
    check(status == 400 and json.loads(data)["error"]["param"] == "size", f"config: flag not over file: {data!r}", s)
    s.stop()
    print("config: server settings read from the file, flags override them, errors name the field")


def start_slow(s, steps):
    """Starts a generation of `steps` steps on a thread; returns when it runs."""
    box = {}

    def slow():
        box["answer"] = s.request("POST", "/v1/images/generations", generation(steps=steps), timeout=180)
        box["at"] = time.time()

    t = threading.Thread(target=slow)
    t.start()
    deadline = time.time() + 60
    while time.time() < deadline:  # wait until it runs
        metrics = s.json("GET", "/metrics").decode()
        if 'twistedpic_generations_running{pipeline="tiny"} 1' in metrics:
            return t, box
        time.sleep(0.05)
    s.fail_with_log("drain: the generation never started")


def case_drain(cli, workdir):
    # Past the grace period, a generation is cancelled (503 "cancelled") and the exit is still 0.
    s = Server(cli, workdir / "cancel", "--drain-grace", "0.2")
    t, box = start_slow(s, 1000)
    t0 = time.time()
    s.proc.send_signal(signal.SIGTERM)
    t.join(timeout=60)
    status, _, data = box.get("answer", (None, None, b"{}"))
    check(status == 503 and json.loads(data)["error"]["code"] == "cancelled",
          f"drain grace 0.2 s: the running request got {status} {data[:200]!r}", s)
    rc = s.proc.wait(timeout=60)
    check(rc == 0 and time.time() - t0 < 30, f"drain grace 0.2 s: exit status {rc} after {time.time() - t0:.1f} s", s)
    print(f"drain: past the grace period the generation was cancelled (503), exit 0 after {time.time() - t0:.1f} s")

    # Within the grace period, it finishes.
    s = Server(cli, workdir / "finish", "--drain-grace", "120")
    t, box = start_slow(s, 20)
    sigterm_at = time.time()
    s.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    try:
        status, _, data = s.request("POST", "/v1/images/generations", generation(), timeout=10)
        check(status == 503, f"drain: a new request got {status}: {data[:200]!r}", s)
    except (ConnectionError, OSError):
        pass  # the listener already closed
    t.join(timeout=180)
    check("answer" in box and box["answer"][0] == 200, f"drain: the running request got {box.get('answer')}", s)
    check(box["at"] > sigterm_at, "drain: the generation ended before SIGTERM; nothing was drained", s)
    rc = s.proc.wait(timeout=60)
    s.log.close()
    log = s.log_path.read_text()
    check(rc == 0, f"drain: exit status {rc}\n{log}")
    check("drained, every model unloaded" in log, f"drain: {log}")
    print("drain: SIGTERM let the running generation finish (200), refused new work, exit 0")


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    cli, case, workdir = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
    cases = {"curl": case_curl, "openai": case_openai, "bad": case_bad, "load": case_load, "drain": case_drain,
             "events": case_events, "ollama": case_ollama, "config": case_config}
    if case not in cases:
        sys.exit(f"unknown case {case!r}: one of {', '.join(cases)}")
    cases[case](cli, workdir / case)


if __name__ == "__main__":
    main()
