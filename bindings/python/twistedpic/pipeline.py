"""Text-to-image generation: ``Pipeline``, ``Image``, progress and cancellation, the idiomatic layer over tp.h.

    with twistedpic.Registry.from_string(config) as registry, registry.pipeline("tiny") as pipeline:
        [image] = pipeline.generate("a red circle on a white background", seed=5)
        image.save("circle.png")

Threading (tp.h @threadsafety):
  * ``Pipeline.generate`` may run on several threads at once, on one pipeline or on several. The GIL is released
    while the library works; ``on_step`` runs on the calling thread, between the library's steps.
  * ``Pipeline.close()`` may be called from any thread: a pipeline closed while calls run on it is destroyed when
    the last of them returns; new calls raise InvalidArgumentError.
  * ``Image`` is immutable: read it from any thread.

Cancellation: pass ``cancel=`` a ``threading.Event`` (checked at every progress report) or a ``CancelToken`` (an
Event that also cancels the running C call the moment it is set, even while a network loads); have ``on_step``
return False; or press Ctrl-C while ``generate`` runs on the main thread: the C call is cancelled and
KeyboardInterrupt raised once it has returned. The first two raise CancelledError.

Lifetimes: an ``Image`` borrows its pixels from the C result of its call, which is freed when the last ``Image``
of that call (and the last numpy array made from one) is gone. A pipeline keeps its registry's C object alive:
closing the registry first is allowed, and destroys it when the last pipeline closes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import math
import os
import signal
import threading
import weakref
from ctypes import POINTER, byref, c_int32, c_size_t, c_uint8, c_void_p, cast, sizeof, string_at
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from . import _ffi
from ._callbacks import finalize, objects, register
from ._errors import InvalidArgumentError, call, check

if TYPE_CHECKING:
    import PIL.Image

    from .registry import Registry


def _text(value):
    return value.encode() if isinstance(value, str) else value


def _closed(what):
    return InvalidArgumentError(_ffi.TP_INVALID_ARGUMENT, f"the {what} is closed")


# ---- progress ---------------------------------------------------------------------------------------------------

class Stage(enum.IntEnum):
    """What a generate call is doing (TP_STAGE_*); str() is the lower-case name."""

    ENCODE = _ffi.TP_STAGE_ENCODE  # the text encoders
    DENOISE = _ffi.TP_STAGE_DENOISE  # one denoising step done
    DECODE = _ffi.TP_STAGE_DECODE  # the VAE
    WAITING = _ffi.TP_STAGE_WAITING  # waiting for a network to load

    def __str__(self):
        return self.name.lower()

    def __format__(self, spec):
        return format(str(self), spec)


@dataclasses.dataclass(frozen=True)
class Progress:
    """One progress report (tp_progress). ``step`` is 1-based while denoising and 0 otherwise; ``model`` names
    the registry model being loaded while ``stage`` is WAITING, and is "" otherwise."""

    stage: Union[Stage, int]
    step: int
    steps: int
    elapsed_s: float
    model: str


class CancelToken(threading.Event):
    """A ``threading.Event`` that cancels the generate calls it is passed to (``cancel=token``) as soon as it is
    set, from any thread: the library stops at its next check (between steps, between networks, while waiting
    for a load) and ``generate`` raises CancelledError. A call started with a token already set is cancelled at
    once. One token may serve several calls, at once or in turn; ``clear()`` it to reuse it."""

    def __init__(self):
        super().__init__()
        self._guard = threading.Lock()
        self._requests: Dict[int, Any] = {}  # id -> tp_request* of the calls running with this token

    def set(self) -> None:
        with self._guard:
            super().set()
            for request in self._requests.values():
                _ffi.tp_request_cancel(request)

    def _attach(self, request):
        with self._guard:
            self._requests[id(request)] = request
            if self.is_set():
                _ffi.tp_request_cancel(request)

    def _detach(self, request):
        with self._guard:
            self._requests.pop(id(request), None)


class _Call:
    """The state of one generate call that its progress callback sees."""

    def __init__(self, request, on_step, cancel):
        self.request = request
        self.on_step = on_step
        self.cancel = cancel
        self.error: Optional[BaseException] = None  # raised by on_step (or a signal handler in it)
        self.interrupted = False  # Ctrl-C arrived during the call

    def report(self, p):
        try:
            if self.error is not None or self.interrupted:
                return 1
            if self.cancel is not None and self.cancel.is_set():
                return 1
            if self.on_step is not None:
                stage = p.stage
                try:
                    stage = Stage(stage)
                except ValueError:
                    pass  # a stage a newer library added
                report = Progress(stage, p.step, p.steps, p.elapsed_s, (p.model or b"").decode("utf-8", "replace"))
                if self.on_step(report) is False:
                    return 1
                if self.interrupted or (self.cancel is not None and self.cancel.is_set()):
                    return 1  # set during on_step
            return 0
        except BaseException as e:  # noqa: BLE001 - re-raised by generate() once the C call has returned
            self.error = e
            return 1


@_ffi.tp_progress_fn
def _on_progress(progress, key):
    # Runs on the thread that called tp_pipeline_generate, with the GIL (ctypes takes it). Never unwinds.
    try:
        state = objects.get(key)
        return 0 if state is None else state.report(progress.contents)
    except BaseException:  # noqa: BLE001
        return 1


@contextlib.contextmanager
def _ctrl_c_cancels(state):
    """On the main thread, with Python's default SIGINT handler installed: SIGINT cancels the C call instead of
    raising KeyboardInterrupt at some point inside a callback; the caller raises it once the call has returned."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return

    def on_sigint(signum, frame):
        state.interrupted = True
        _ffi.tp_request_cancel(state.request)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


# ---- results and images -----------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ResultInfo:
    """The settings a generate call ran with (the model's defaults filled in), its timings and warnings (a
    truncated prompt, ...). ``acquire_s``, the time spent waiting for networks to load, is part of the others."""

    image_count: int
    width: int
    height: int
    steps: int
    guidance_scale: float
    seed: int
    encode_s: float
    denoise_s: float
    decode_s: float
    acquire_s: float
    total_s: float
    warnings: Tuple[str, ...]


class _Result:
    """Owns a tp_result*; freed when the last object referring to it (its Images) is gone."""

    def __init__(self, handle):
        self.handle = handle
        self._finalizer = weakref.finalize(self, _ffi.tp_result_free, handle)
        info = _ffi.tp_result_info(struct_size=sizeof(_ffi.tp_result_info))
        call(_ffi.tp_result_get_info, byref(info), handle)
        warnings = tuple(_ffi.tp_result_warning(handle, i).decode("utf-8", "replace")
                         for i in range(info.warning_count))
        self.info = ResultInfo(**{f.name: getattr(info, f.name) for f in dataclasses.fields(ResultInfo)
                                  if f.name != "warnings"}, warnings=warnings)

    def free(self):
        self._finalizer()


class Image:
    """One RGB8 image of a generate call, ``height`` rows of ``width`` pixels.

    Pixels stay in the library's memory: ``numpy.asarray(image)`` is a read-only ``(height, width, 3)`` uint8
    view of them, without a copy, that keeps the image alive. ``tobytes()`` copies them, ``to_pil()`` makes a
    Pillow image, ``save()`` and ``png_bytes()`` encode a PNG. ``info`` describes the call that made it.
    """

    def __init__(self, result: _Result, index: int):
        """Private: images come from Pipeline.generate()."""
        image = _ffi.tp_image(struct_size=sizeof(_ffi.tp_image))
        call(_ffi.tp_result_get_image, byref(image), result.handle, index)
        self._result = result  # keeps the pixels alive
        self._image = image
        self.index: int = index
        self.width: int = image.width
        self.height: int = image.height
        self.info: ResultInfo = result.info

    @property
    def _address(self) -> int:
        return cast(self._image.pixels, c_void_p).value

    @property
    def __array_interface__(self) -> Dict[str, Any]:
        stride = self._image.stride
        return {"version": 3, "shape": (self.height, self.width, 3), "typestr": "|u1",
                "data": (self._address, True),  # read-only: the library's memory
                "strides": None if stride == self.width * 3 else (stride, 3, 1)}

    def tobytes(self) -> bytes:
        """The pixels, row-major RGB8 without padding: ``height * width * 3`` bytes (a copy)."""
        stride, row = self._image.stride, self.width * 3
        if stride == row:
            return string_at(self._address, row * self.height)
        return b"".join(string_at(self._address + y * stride, row) for y in range(self.height))

    def to_pil(self) -> "PIL.Image.Image":
        """A Pillow image (mode "RGB") with a copy of the pixels. Raises ImportError without Pillow."""
        from PIL import Image as PILImage

        return PILImage.frombytes("RGB", (self.width, self.height), self.tobytes())

    def save(self, path: Union[str, "os.PathLike[str]"]) -> None:
        """Writes the image as a PNG file, whole or not at all. Raises the file's errors (NotFoundError for a
        missing folder, ...), naming the path."""
        call(_ffi.tp_image_write_png, byref(self._image), os.fsencode(path))

    def png_bytes(self) -> bytes:
        """The image encoded as PNG: the bytes ``save()`` writes."""
        size = c_size_t()
        err = POINTER(_ffi.tp_error)()
        code = _ffi.tp_image_encode_png(byref(size), None, 0, byref(self._image), byref(err))
        if code != _ffi.TP_RESOURCE_EXHAUSTED:  # asked with capacity 0: the size comes back with this code
            check(code, err)
        else:
            _ffi.tp_error_free(err)
        buffer = bytearray(size.value)
        call(_ffi.tp_image_encode_png, byref(size), (c_uint8 * len(buffer)).from_buffer(buffer), len(buffer),
             byref(self._image))
        return bytes(buffer[:size.value])

    def __repr__(self):
        return f"<twistedpic.Image {self.width}x{self.height} seed {self.info.seed}>"


# ---- pipelines --------------------------------------------------------------------------------------------------

_open_pipelines: "weakref.WeakSet[Pipeline]" = weakref.WeakSet()

ProgressCallback = Callable[[Progress], Optional[bool]]


class Pipeline:
    """A text-to-image pipeline of a registry (``registry.pipeline(name)``): a configured model with a
    pipeline_type, whose networks are registry models, leased while they run.

    Use it as a context manager or call ``close()`` (idempotent; a pipeline still open is closed when
    garbage-collected). ``generate`` may run on several threads at once.
    """

    def __init__(self, registry: "Registry", name: str):
        """Private: use Registry.pipeline()."""
        self._handle = None
        self._registry = registry
        registry_handle = registry._open_pipeline()  # the C registry outlives this pipeline
        try:
            handle = POINTER(_ffi.tp_pipeline)()
            call(_ffi.tp_pipeline_create, byref(handle), registry_handle, _text(name))
        except BaseException:
            registry._close_pipeline()
            raise
        self._handle = handle
        self._lock = threading.Lock()
        self._running: Dict[int, Any] = {}  # id -> tp_request* of the calls running on this pipeline
        self._closed = False
        self.name: str = _ffi.tp_pipeline_name(handle).decode()
        self.pipeline_type: str = _ffi.tp_pipeline_type(handle).decode()
        width, height, multiple = c_int32(), c_int32(), c_int32()
        call(_ffi.tp_pipeline_sizes, byref(width), byref(height), byref(multiple), handle)
        self.default_size: Tuple[int, int] = (width.value, height.value)
        self.size_multiple: int = multiple.value
        _open_pipelines.add(self)

    @property
    def closed(self) -> bool:
        return self._handle is None or self._closed

    def close(self) -> None:
        """Closes the pipeline (idempotent, any thread). Calls running on it finish first: it is destroyed when
        the last one returns."""
        with self._lock:
            if self._handle is None or self._closed:
                return
            self._closed = True
            if self._running:
                return  # the last call destroys it
        self._destroy()

    def _destroy(self):
        handle, self._handle = self._handle, None
        _ffi.tp_pipeline_destroy(handle)
        self._registry._close_pipeline()

    def _cancel_running(self):
        with self._lock:
            for request in self._running.values():
                _ffi.tp_request_cancel(request)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_handle", None) is not None:
            finalize(self.close)  # never during a call on it: a running call holds a reference

    def __repr__(self):
        state = " closed" if self.closed else ""
        return f"<twistedpic.Pipeline {self.name!r} ({self.pipeline_type}){state}>"

    def generate(self, prompt: Union[str, Sequence[str]], negative_prompt: Union[None, str, Sequence[str]] = None,
                 *, width: Optional[int] = None, height: Optional[int] = None, steps: Optional[int] = None,
                 guidance_scale: Optional[float] = None, seed: int = 0, images_per_prompt: int = 1,
                 max_sequence_length: Optional[int] = None, options: Optional[Mapping[str, Any]] = None,
                 on_step: Optional[ProgressCallback] = None,
                 cancel: Optional[threading.Event] = None) -> List[Image]:
        """Generates images; returns them prompt-major (every image of the first prompt first).

        prompt: one prompt or a list of them (at least one).
        negative_prompt: None, one for every prompt, or a list with one per prompt.
        width, height: pixels, multiples of ``size_multiple``; None takes ``default_size``.
        steps: denoising steps (1..1000); guidance_scale: classifier-free guidance, 1 or less turns it off;
            None takes the model's defaults. max_sequence_length: T5 tokens (1..512; default: the model's,
            256 for SD3, 512 for Flux).
        seed: the seed of the initial noise, as torch.Generator().manual_seed(seed).
        options: pipeline-specific settings by name, passed as text (True -> "true"); an unknown name raises
            UnimplementedError.
        on_step: called with a ``Progress`` at every stage and denoising step, on this thread; returning False
            cancels the call (CancelledError). An exception it raises cancels the call and is re-raised here.
        cancel: a ``threading.Event``: once set, the call is cancelled at its next progress report (a
            ``CancelToken`` cancels it at once) and raises CancelledError.
        Raises InvalidArgumentError for bad settings (no prompt, a size that is no multiple, ...) or a closed
        pipeline, ResourceExhaustedError when a network cannot fit, the registry's errors for a failed load,
        and KeyboardInterrupt when Ctrl-C cancelled a call made on the main thread.
        """
        prompts = _strings("prompt", prompt)
        negatives = None if negative_prompt is None else _strings("negative_prompt", negative_prompt)
        request = POINTER(_ffi.tp_request)()
        call(_ffi.tp_request_create, byref(request))
        try:
            for p in prompts:
                call(_ffi.tp_request_add_prompt, request, p)
            for n in negatives or ():
                call(_ffi.tp_request_add_negative_prompt, request, n)
            call(_ffi.tp_request_set_images_per_prompt, request, images_per_prompt)
            if width is not None or height is not None:
                call(_ffi.tp_request_set_size, request, width or 0, height or 0)
            if steps is not None:
                call(_ffi.tp_request_set_steps, request, steps)
            call(_ffi.tp_request_set_guidance, request, math.nan if guidance_scale is None else guidance_scale)
            call(_ffi.tp_request_set_seed, request, seed)
            if max_sequence_length is not None:
                call(_ffi.tp_request_set_max_sequence_length, request, max_sequence_length)
            for key, value in (options or {}).items():
                value = ("true" if value else "false") if isinstance(value, bool) else str(value)
                call(_ffi.tp_request_set_option, request, _text(key), _text(value))
            return self._run(request, _Call(request, on_step, cancel))
        finally:
            _ffi.tp_request_destroy(request)

    def _run(self, request, state):
        with self._lock:
            if self._handle is None or self._closed:
                raise _closed("pipeline")
            self._running[id(request)] = request
        key = register(state)
        token = state.cancel if isinstance(state.cancel, CancelToken) else None
        result = POINTER(_ffi.tp_result)()
        err = POINTER(_ffi.tp_error)()
        try:
            call(_ffi.tp_request_set_progress, request, _on_progress, key)
            if token is not None:
                token._attach(request)
            if state.cancel is not None and state.cancel.is_set():
                _ffi.tp_request_cancel(request)
            with _ctrl_c_cancels(state):
                code = _ffi.tp_pipeline_generate(byref(result), self._handle, request, byref(err))
        finally:
            if token is not None:
                token._detach(request)
            objects.pop(key, None)
            with self._lock:
                del self._running[id(request)]
                destroy = self._closed and not self._running
            if destroy:
                self._destroy()
        owned = _Result(result) if result else None
        if state.error is not None or state.interrupted:
            _ffi.tp_error_free(err)
            if owned is not None:
                owned.free()
            if state.error is not None:
                raise state.error
            raise KeyboardInterrupt
        check(code, err)
        return [Image(owned, i) for i in range(owned.info.image_count)]


def _strings(what, value):
    """A str or a sequence of str as a list of UTF-8 bytes."""
    if isinstance(value, str):
        return [value.encode()]
    values = list(value) if isinstance(value, (list, tuple)) else None
    if values is None or not all(isinstance(v, str) for v in values):
        raise TypeError(f"{what} must be a str or a list of str, not {value!r}")
    return [v.encode() for v in values]


def _close_open_pipelines():
    """At interpreter exit, before the registries close: cancels running calls and closes every pipeline."""
    for pipeline in list(_open_pipelines):
        pipeline._cancel_running()
        pipeline.close()
