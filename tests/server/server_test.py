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
  load      16 clients x 2 requests against --concurrency 1 --queue 2: every
            answer is 200 or 429 (with Retry-After), none is lost, both kinds
            occur, and the server still answers and drains afterwards.
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

    def __init__(self, cli, workdir, *args, api_key=None, env=None):
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "models.json"
        config.write_text(json.dumps({
            "preset": "balanced",
            "models": {"tiny": {"path": str(MODEL), "pipeline_type": "sd3", "dtype": "fp32"}},
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
                   'twistedpic_http_requests_total{route="/v1/images/generations",status="200"} 4'):
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


def case_load(cli, workdir, clients=16, per_client=2):
    s = Server(cli, workdir, "--concurrency", "1", "--queue", "2")
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
    check(not any(t.is_alive() for t in threads), "load: a client hangs (deadlock?)", s)
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
    print(f"load: {clients} clients x {per_client}: {n200} x 200, {n429} x 429, none lost, {took:.1f} s")

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
    cases = {"curl": case_curl, "openai": case_openai, "bad": case_bad, "load": case_load, "drain": case_drain}
    if case not in cases:
        sys.exit(f"unknown case {case!r}: one of {', '.join(cases)}")
    cases[case](cli, workdir / case)


if __name__ == "__main__":
    main()
