"""twistedpic on Ray Serve: one replica per GPU, each with its own registry and memory policy, behind the same
OpenAI Images route as `twistedpic serve` (POST /v1/images/generations, same JSON in and out).

    pip install "ray[serve]" .          # twistedpic's Python package and Ray, in one venv
    serve run examples.ray_serve.app:app config=models.json      # or: python examples/ray_serve/app.py models.json
    curl -s localhost:8000/v1/images/generations -H 'Content-Type: application/json' \\
         -d '{"model": "sd35_large", "prompt": "a red circle", "size": "1024x1024"}'

Replicas: one per GPU of the Ray cluster (`num_gpus=1` each: Ray sets CUDA_VISIBLE_DEVICES, so every replica's
config says device 0), or `cpu_replicas` CPU replicas (default 2) when the cluster has no GPU. Ray Serve routes
each request to a replica; twistedpic does no scheduling across replicas (docs/scaling.md). Each answer names
its replica and process in "twistedpic": {"replica", "pid"}.

Arguments (serve run ... key=value, or build_app's dict): config (a registry config file; default: the shipped
tiny model, models/tiny-sd3), cpu_replicas (2), max_ongoing_requests (4 per replica: one generates, the rest
wait in the replica).
"""

import asyncio
import base64
import json
import os
import random
import threading
import time

from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse

KNOWN = {"model", "prompt", "n", "size", "response_format", "negative_prompt", "steps", "guidance_scale", "seed",
         "options", "user", "quality", "style", "keep_alive"}


def error(status, message, param=None, code="invalid_value", kind="invalid_request_error"):
    """OpenAI's error shape, as `twistedpic serve` sends it."""
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}},
                        status_code=status)


class ImageReplica:
    """One Ray Serve replica: a twistedpic Registry (its own policy, its own GPU) and a Pipeline per configured
    pipeline. Generations run one at a time per replica, on a worker thread."""

    def __init__(self, config_json: str):
        import twistedpic  # in the replica's process, after Ray assigned its GPU
        self.twistedpic = twistedpic
        self.registry = twistedpic.Registry.from_string(config_json)
        names = list(json.loads(config_json)["models"])
        self.pipelines = {}
        for name in names:
            try:
                self.pipelines[name] = self.registry.pipeline(name)
            except twistedpic.TwistedpicError:
                pass  # a model that is not a pipeline (a shared network)
        self.default = next(iter(self.pipelines))
        self.lock = threading.Lock()
        self.replica = serve.get_replica_context().replica_id.unique_id
        self.count = 0

    def generate(self, body):
        pipeline = self.pipelines[body.get("model") or self.default]
        width = height = None
        size = body.get("size")
        if size and size != "auto":
            width, height = (int(x) for x in size.split("x"))
        seed = body.get("seed")
        with self.lock:  # one generation at a time on this replica's device
            started = time.time()
            images = pipeline.generate(body["prompt"], body.get("negative_prompt"), width=width, height=height,
                                       steps=body.get("steps"), guidance_scale=body.get("guidance_scale"),
                                       seed=random.getrandbits(63) if seed is None else seed,
                                       images_per_prompt=body.get("n", 1), options=body.get("options"))
            self.count += 1
            return [base64.b64encode(i.png_bytes()).decode() for i in images], time.time() - started, images

    async def __call__(self, request: Request):
        if request.url.path.rstrip("/") == "/v1/models":
            return JSONResponse({"object": "list", "data": [{"id": n, "object": "model", "owned_by": "twistedpic"}
                                                            for n in self.pipelines]})
        if request.url.path.rstrip("/") != "/v1/images/generations":
            return error(404, f"no route {request.url.path}; this app answers /v1/images/generations and /v1/models",
                         code="not_found")
        if request.method != "POST":
            return error(405, "use POST", code="method_not_allowed")
        try:
            body = json.loads(await request.body())
        except ValueError:
            return error(400, "the body is not valid JSON", code="invalid_json")
        if not isinstance(body, dict):
            return error(400, "the body must be a JSON object", code="invalid_json")
        unknown = sorted(set(body) - KNOWN)
        if unknown:
            return error(400, f"unknown field '{unknown[0]}'", unknown[0], "unknown_parameter")
        if not isinstance(body.get("prompt"), str) or not body["prompt"]:
            return error(400, "'prompt' is required", "prompt", "missing_required_parameter")
        if body.get("model") is not None and body["model"] not in self.pipelines:
            return error(404, f"the model '{body['model']}' does not exist", "model", "model_not_found")
        if body.get("response_format", "b64_json") != "b64_json":
            return error(400, "'response_format' must be \"b64_json\"", "response_format", "unsupported_value")
        size = body.get("size")
        if size not in (None, "auto") and (not isinstance(size, str) or size.count("x") != 1
                                           or not all(p.isdigit() for p in size.split("x"))):
            return error(400, "'size' must be \"WIDTHxHEIGHT\"", "size")
        request_id = request.headers.get("x-request-id") or f"ray-{os.getpid()}-{random.getrandbits(32):08x}"
        try:
            data, seconds, images = await asyncio.to_thread(self.generate, body)
        except self.twistedpic.InvalidArgumentError as e:
            return error(400, str(e))
        except self.twistedpic.ResourceExhaustedError as e:
            return error(507, str(e), code="insufficient_storage", kind="server_error")
        except self.twistedpic.TwistedpicError as e:
            return error(500, str(e), code="internal", kind="server_error")
        return JSONResponse({"created": int(time.time()), "data": [{"b64_json": d} for d in data],
                             "twistedpic": {"request_id": request_id, "model": body.get("model") or self.default,
                                            "replica": self.replica, "pid": os.getpid(),
                                            "width": images[0].width, "height": images[0].height,
                                            "timings": {"request_s": seconds}}},
                            headers={"X-Request-Id": request_id})


def build_app(args: dict):
    """The Ray Serve application (`serve run examples.ray_serve.app:app key=value ...` calls this)."""
    import ray
    config = args.get("config")
    if config:
        with open(config) as f:
            config_json = f.read()
    else:
        import twistedpic
        config_json = json.dumps({"preset": "balanced", "models": {"tiny": {
            "path": twistedpic.default_model_dir(), "pipeline_type": "sd3", "dtype": "fp32"}}})
    gpus = int(ray.cluster_resources().get("GPU", 0)) if ray.is_initialized() else 0
    if gpus:
        replicas, actor = gpus, {"num_gpus": 1}
    else:
        replicas, actor = int(args.get("cpu_replicas", 2)), {"num_cpus": float(args.get("cpus_per_replica", 0.5))}
    deployment = serve.deployment(ImageReplica, name="twistedpic", num_replicas=replicas, ray_actor_options=actor,
                                  max_ongoing_requests=int(args.get("max_ongoing_requests", 4)))
    return deployment.bind(config_json)


app = build_app  # an application builder: `serve run examples.ray_serve.app:app config=models.json`


if __name__ == "__main__":
    import sys
    import ray
    ray.init()
    serve.run(build_app({"config": sys.argv[1]} if len(sys.argv) > 1 else {}), route_prefix="/")
    print("serving on http://127.0.0.1:8000/v1/images/generations; Ctrl-C stops")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        serve.shutdown()
