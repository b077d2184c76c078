"""Generation on the shipped default model (models/tiny-sd3, 32x32 on the CPU or the GPU): pipelines, images,
progress, cancellation, Ctrl-C, threads and bad input. Mirrors tests/capi/pipeline_capi_test.cpp."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
import weakref

import pytest

import twistedpic
from twistedpic import Stage, Tier, _ffi
from conftest import collected

MODEL = pathlib.Path(twistedpic.default_model_dir())
CONFIG = json.dumps({"models": {"tiny": {"path": str(MODEL), "pipeline_type": "sd3", "dtype": "fp32"}}})
PROMPTS = ("a red circle on a white background", "an orange circle on a purple background")

pytestmark = pytest.mark.skipif(not (MODEL / "model_index.json").is_file(), reason=f"{MODEL} is missing")


@pytest.fixture(scope="module")
def registry():
    with twistedpic.Registry.from_string(CONFIG) as reg:
        yield reg


@pytest.fixture(scope="module")
def pipeline(registry):
    with registry.pipeline("tiny") as p:
        yield p


def pixels(pipeline, prompt=PROMPTS[0], seed=3, steps=2, **kwargs):
    [image] = pipeline.generate(prompt, seed=seed, steps=steps, **kwargs)
    return image.tobytes()


def test_a_pipeline_describes_itself_and_its_networks(registry, pipeline):
    assert (pipeline.name, pipeline.pipeline_type, pipeline.default_size, pipeline.size_multiple) == (
        "tiny", "sd3", (32, 32), 8)
    assert repr(pipeline) == "<twistedpic.Pipeline 'tiny' (sd3)>" and not pipeline.closed
    vae = registry.info("tiny/vae")  # the pipeline's networks are registry models
    assert (vae.name, vae.pipeline_type, vae.dtype) == ("tiny/vae", "sd3:vae", "fp32")
    plan = registry.plan("tiny/vae")
    assert plan.fits and plan.evictions == [] and plan.explanation
    with pytest.raises(twistedpic.NotFoundError, match="nope"):
        registry.plan("nope")
    with pytest.raises(twistedpic.NotFoundError, match="nope"):
        registry.info("nope")


def test_images_and_the_settings_that_ran(pipeline):
    images = pipeline.generate(list(PROMPTS), ["blurry", "dark"], seed=7, steps=2, images_per_prompt=2,
                               guidance_scale=3.0)
    assert [(i.index, i.width, i.height) for i in images] == [(n, 32, 32) for n in range(4)]
    info = images[0].info
    assert all(i.info is info for i in images)
    assert (info.image_count, info.width, info.height, info.steps, info.guidance_scale, info.seed) == (
        4, 32, 32, 2, 3.0, 7)
    assert info.total_s > 0 and info.warnings == ()
    data = [i.tobytes() for i in images]
    assert all(len(d) == 32 * 32 * 3 for d in data) and len(set(data)) == 4
    assert len(set(data[0])) > 1  # not a constant image
    # The model's defaults fill in what is not given.
    [default] = pipeline.generate(PROMPTS[0], steps=1)
    assert (default.info.guidance_scale, default.info.seed, default.info.steps) == (2.5, 0, 1)


def test_same_seed_same_pixels_and_pngs_agree(pipeline, tmp_path):
    a, b, c = (pipeline.generate(PROMPTS[1], seed=s, steps=2)[0] for s in (3, 3, 4))
    assert a.tobytes() == b.tobytes() != c.tobytes()
    a.save(tmp_path / "a.png")
    png = a.png_bytes()
    assert png[:4] == b"\x89PNG" and (tmp_path / "a.png").read_bytes() == png
    a.save(str(tmp_path / "b.png"))
    assert (tmp_path / "b.png").read_bytes() == png
    with pytest.raises(twistedpic.NotFoundError, match="/nonexistent/dir/x.png"):
        a.save("/nonexistent/dir/x.png")


def test_byte_identical_to_the_cli(pipeline, tmp_path):
    library = pathlib.Path(os.environ.get("TWISTEDPIC_LIBRARY", ""))
    cli = pathlib.Path(os.environ.get("TP_CLI") or library.parent / "twistedpic")
    if not (cli.is_file() and os.access(cli, os.X_OK)):
        pytest.skip(f"no twistedpic CLI next to the library ({cli}): build the `twistedpic` target")
    out = tmp_path / "cli"
    out.mkdir()
    run = subprocess.run([str(cli), "-q", "--model-dir", str(MODEL), "generate", PROMPTS[0], "--seed", "5", "-o",
                          str(out)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    [cli_png] = list(out.glob("*.png"))
    [image] = pipeline.generate(PROMPTS[0], seed=5)  # the model's defaults, as the CLI
    image.save(tmp_path / "python.png")
    assert (tmp_path / "python.png").read_bytes() == cli_png.read_bytes()


def test_progress_reaches_every_step(pipeline):
    seen = []
    pipeline.generate(PROMPTS[0], steps=5, on_step=seen.append)
    assert all(isinstance(p, twistedpic.Progress) and p.steps == 5 for p in seen)
    assert [p.step for p in seen if p.stage == Stage.DENOISE] == [1, 2, 3, 4, 5]
    assert seen[0].stage == Stage.ENCODE and str(seen[0].stage) == "encode"
    stages = [p.stage for p in seen]
    assert Stage.DENOISE not in stages[stages.index(Stage.DECODE):]  # decoding comes after every step
    assert all(p.model.startswith("tiny/") for p in seen if p.stage == Stage.WAITING)
    assert all(p.model == "" for p in seen if p.stage != Stage.WAITING)
    elapsed = [p.elapsed_s for p in seen]
    assert elapsed == sorted(elapsed)


def denoise_steps(seen):
    return [p.step for p in seen if p.stage == Stage.DENOISE]


def test_on_step_returning_false_cancels_and_the_next_call_works(pipeline):
    expected = pixels(pipeline, steps=6)
    seen = []

    def on_step(p):
        seen.append(p)
        return not (p.stage == Stage.DENOISE and p.step == 2)

    with pytest.raises(twistedpic.CancelledError) as e:
        pipeline.generate(PROMPTS[0], seed=3, steps=6, on_step=on_step)
    assert (e.value.code, e.value.code_name) == (_ffi.TP_CANCELLED, "CANCELLED")
    assert denoise_steps(seen) == [1, 2]
    assert pixels(pipeline, steps=6) == expected


def test_a_cancel_token_set_from_another_thread_cancels_mid_way(pipeline):
    token = twistedpic.CancelToken()
    first_step = threading.Event()
    canceller = threading.Thread(target=lambda: (first_step.wait(60), token.set()))
    canceller.start()
    seen = []

    def on_step(p):
        seen.append(p)
        if p.stage == Stage.DENOISE and p.step == 1:
            first_step.set()
            assert token.wait(60)  # set by the other thread, which cancelled the C call at once

    with pytest.raises(twistedpic.CancelledError):
        pipeline.generate(PROMPTS[0], steps=8, on_step=on_step, cancel=token)
    canceller.join()
    assert denoise_steps(seen) == [1]  # the library stopped at its next check: no report after the cancel
    with pytest.raises(twistedpic.CancelledError):  # a set token cancels a new call at once
        pipeline.generate(PROMPTS[0], steps=1, cancel=token)
    token.clear()
    assert len(pixels(pipeline, cancel=token)) == 32 * 32 * 3


def test_a_plain_event_cancels_at_the_next_progress_report(pipeline):
    stop = threading.Event()
    seen = []

    def on_step(p):
        seen.append(p)
        if p.stage == Stage.DENOISE and p.step == 3:
            stop.set()

    with pytest.raises(twistedpic.CancelledError):
        pipeline.generate(PROMPTS[0], steps=8, on_step=on_step, cancel=stop)
    assert denoise_steps(seen) == [1, 2, 3]


def test_an_exception_in_on_step_cancels_and_propagates(pipeline):
    def on_step(p):
        if p.stage == Stage.DENOISE:
            raise RuntimeError("on_step bug")

    with pytest.raises(RuntimeError, match="on_step bug"):
        pipeline.generate(PROMPTS[0], steps=4, on_step=on_step)
    with pytest.raises(KeyboardInterrupt):
        pipeline.generate(PROMPTS[0], steps=4, on_step=lambda p: (_ for _ in ()).throw(KeyboardInterrupt))
    assert len(pixels(pipeline)) == 32 * 32 * 3


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="needs the main thread")
def test_ctrl_c_cancels_the_call_and_raises_keyboard_interrupt(pipeline):
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    first_step, sent = threading.Event(), threading.Event()

    def press_ctrl_c():
        first_step.wait(60)
        os.kill(os.getpid(), signal.SIGINT)
        sent.set()

    seen, handlers = [], []

    def on_step(p):
        seen.append(p)
        if p.stage == Stage.DENOISE and p.step == 1:
            handlers.append(signal.getsignal(signal.SIGINT))
            first_step.set()
            assert sent.wait(60)
            handlers.append("not interrupted")  # SIGINT cancels the C call; it raises nothing inside on_step

    presser = threading.Thread(target=press_ctrl_c)
    presser.start()
    with pytest.raises(KeyboardInterrupt):
        pipeline.generate(PROMPTS[0], steps=8, on_step=on_step)
    presser.join()
    assert denoise_steps(seen) == [1]  # the C call was cancelled: no later step ran
    assert handlers[0] is not signal.default_int_handler and handlers[1] == "not interrupted"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    assert len(pixels(pipeline)) == 32 * 32 * 3


def generate_in_threads(jobs):
    """Runs each (pipeline, prompt, seed) on its own thread at once; returns their pixels."""
    results, errors = [None] * len(jobs), []
    barrier = threading.Barrier(len(jobs))

    def work(i, p, prompt, seed):
        try:
            barrier.wait()
            results[i] = pixels(p, prompt, seed)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i, *job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    return results


def test_threads_generate_at_once_on_one_pipeline_and_on_two(registry, pipeline):
    want = [pixels(pipeline, PROMPTS[0], 21), pixels(pipeline, PROMPTS[1], 22)]
    assert want[0] != want[1]
    assert generate_in_threads([(pipeline, PROMPTS[0], 21), (pipeline, PROMPTS[1], 22)]) == want
    with registry.pipeline("tiny") as second:
        assert generate_in_threads([(pipeline, PROMPTS[0], 21), (second, PROMPTS[1], 22)]) == want
    assert all(m.leases == 0 for m in registry.models())  # nothing stays leased


def test_the_gil_is_released_while_generating(pipeline):
    # A Python thread takes timestamps while the main thread generates with no callback, so no Python code runs
    # on the main thread during the C call. Were the GIL held through it, the thread would stand still for nearly
    # the whole call (tried with ctypes.PyDLL, which holds it: a gap of 95 % of the call); released, it never
    # stops for long (7 % with ctypes.CDLL on an idle machine).
    stamps, stop = [], threading.Event()

    def stamper():
        while not stop.is_set():
            stamps.append(time.perf_counter())

    thread = threading.Thread(target=stamper)
    thread.start()
    try:
        time.sleep(0.05)
        start = time.perf_counter()
        pipeline.generate(PROMPTS[0], seed=1, steps=20)
        end = time.perf_counter()
    finally:
        stop.set()
        thread.join()
    points = [start] + [t for t in stamps if start <= t <= end] + [end]
    longest_gap = max(b - a for a, b in zip(points, points[1:]))
    assert end - start > 0.05, "the call is too short to tell"
    assert longest_gap < 0.5 * (end - start), (longest_gap, end - start)


def test_bad_input_gets_the_typed_exception_with_its_code(registry, pipeline):
    with pytest.raises(twistedpic.InvalidArgumentError, match="no prompts") as e:
        pipeline.generate([])
    assert (e.value.code, e.value.code_name) == (_ffi.TP_INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert isinstance(e.value, ValueError)
    with pytest.raises(twistedpic.InvalidArgumentError, match="width 30 is not a positive multiple of 8"):
        pipeline.generate(PROMPTS[0], width=30, height=32)
    with pytest.raises(twistedpic.InvalidArgumentError, match="steps"):
        pipeline.generate(PROMPTS[0], steps=1001)
    with pytest.raises(twistedpic.UnimplementedError, match="true_cfg_scale") as e:
        pipeline.generate(PROMPTS[0], options={"true_cfg_scale": 4})
    assert e.value.code == _ffi.TP_UNIMPLEMENTED
    with pytest.raises(twistedpic.NotFoundError, match="nope") as e:
        registry.pipeline("nope")
    assert e.value.code == _ffi.TP_NOT_FOUND
    with pytest.raises(twistedpic.InvalidArgumentError, match="is the 'vae' network of a sd3 pipeline"):
        registry.pipeline("tiny/vae")
    with pytest.raises(TypeError, match="prompt must be a str or a list of str"):
        pipeline.generate(b"bytes")

    closed = registry.pipeline("tiny")
    closed.close()
    closed.close()  # idempotent
    with pytest.raises(twistedpic.InvalidArgumentError, match="the pipeline is closed") as e:
        closed.generate(PROMPTS[0])
    assert e.value.code == _ffi.TP_INVALID_ARGUMENT
    assert repr(closed) == "<twistedpic.Pipeline 'tiny' (sd3) closed>"
    assert len(pixels(pipeline, steps=1)) == 32 * 32 * 3  # the pipeline still works


def test_closing_a_pipeline_during_a_call_waits_for_it(registry):
    p = registry.pipeline("tiny")
    [image] = p.generate(PROMPTS[0], steps=2, on_step=lambda progress: p.close())
    assert p.closed and image.width == 32
    with pytest.raises(twistedpic.InvalidArgumentError, match="closed"):
        p.generate(PROMPTS[0])


def test_a_registry_closed_before_its_pipeline_lives_until_the_pipeline_closes():
    reg = twistedpic.Registry.from_string(CONFIG, text_encoder_offload=Tier.HOST)
    events = []
    reg.subscribe(events.append)
    pipeline = reg.pipeline("tiny")
    reg.close()
    assert reg.closed
    with pytest.raises(twistedpic.InvalidArgumentError, match="the registry is closed"):
        reg.pipeline("tiny")
    assert len(pixels(pipeline, steps=1)) == 32 * 32 * 3  # still works; the subscriber still hears
    assert {e.model for e in events} >= {"tiny/text_encoder", "tiny/transformer", "tiny/vae"}
    # text_encoder_offload=HOST sent the text encoders to the host after encoding.
    assert any(e.model == "tiny/text_encoder" and e.to_tier == Tier.HOST for e in events)
    pipeline.close()  # destroys the registry, and drops the subscriber


def test_text_encoder_offload_is_checked():
    with pytest.raises(twistedpic.InvalidArgumentError):
        twistedpic.Registry.from_string(CONFIG, text_encoder_offload=7)


def test_images_keep_their_result_alive_and_free_it_with_the_last_one(pipeline):
    images = pipeline.generate(PROMPTS, steps=1)
    result = weakref.ref(images[0]._result)
    first = images[0]
    del images
    assert not collected(result)
    data = first.tobytes()
    np = pytest.importorskip("numpy")
    array = np.asarray(first)
    del first
    assert not collected(result)  # the array holds the image, which holds the result
    assert array.tobytes() == data
    del array
    assert collected(result)


def test_numpy_sees_the_pixels_without_a_copy(pipeline):
    np = pytest.importorskip("numpy")
    [image] = pipeline.generate(PROMPTS[0], steps=1)
    array = np.asarray(image)
    assert (array.shape, array.dtype, array.flags.writeable) == ((32, 32, 3), np.uint8, False)
    assert array.ctypes.data == image.__array_interface__["data"][0]  # the library's memory
    assert array.tobytes() == image.tobytes()


def test_to_pil(pipeline, tmp_path):
    pil = pytest.importorskip("PIL.Image")
    [image] = pipeline.generate(PROMPTS[0], steps=1)
    picture = image.to_pil()
    assert (picture.mode, picture.size) == ("RGB", (32, 32))
    assert picture.tobytes() == image.tobytes()
    image.save(tmp_path / "x.png")
    with pil.open(tmp_path / "x.png") as decoded:
        assert decoded.convert("RGB").tobytes() == image.tobytes()


def test_the_package_imports_without_numpy_and_pillow():
    code = ("import sys; sys.modules['numpy'] = sys.modules['PIL'] = None\n"
            "import twistedpic\n"
            "assert 'numpy' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
            "print('ok')")
    path = os.pathsep.join([os.path.dirname(os.path.dirname(twistedpic.__file__))])
    run = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=path), capture_output=True,
                         text=True, timeout=60)
    assert (run.returncode, run.stdout) == (0, "ok\n"), run.stderr


def test_the_package_is_typed():
    assert (pathlib.Path(twistedpic.__file__).parent / "py.typed").is_file()
