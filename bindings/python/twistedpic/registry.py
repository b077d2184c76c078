"""The model registry, leases, residency events and host memory policies: the idiomatic layer over tp.h.

Threading (tp.h @threadsafety):
  * ``Registry`` is thread-safe: every method may be called from any thread, except ``close()``, which must not
    run concurrently with other calls on the same registry.
  * ``Lease`` has a single owner, who releases it exactly once (``release()`` or the end of its ``with``
    block); while it is live, ``name`` and ``device_bytes`` may be read from any thread.
  * Callbacks (events, memory policies) run on library threads; exceptions they raise are logged to the
    ``"twistedpic"`` logger and never propagate into C.

Lifetimes: the C library holds no Python object. Its callbacks are module-level CFUNCTYPE objects, which live as
long as the interpreter, and their ``user_data`` is an integer key into a table of Python objects that is cleared
when the library says it is done with the object (a policy's ``destroy``, ``unsubscribe``, ``close``).
"""

from __future__ import annotations

import atexit
import dataclasses
import enum
import os
import threading
import weakref
from ctypes import POINTER, byref, c_int32, c_int64, c_uint32, c_uint64, sizeof
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from . import _ffi
from ._callbacks import finalize, guarded, objects, register
from ._errors import InvalidArgumentError, call
from .pipeline import Pipeline, _close_open_pipelines


# ---- vocabulary -------------------------------------------------------------------------------------------------

class _Named(enum.IntEnum):
    """An IntEnum whose str() is the library's name for the value ("host", "resident", "unload-after")."""

    def __str__(self):
        return _NAMERS[type(self)](self).decode()

    def __format__(self, spec):
        return format(str(self), spec)


class Tier(_Named):
    DEVICE = _ffi.TP_TIER_DEVICE
    HOST = _ffi.TP_TIER_HOST
    DISK = _ffi.TP_TIER_DISK


class State(_Named):
    UNLOADED = _ffi.TP_STATE_UNLOADED
    LOADING = _ffi.TP_STATE_LOADING
    RESIDENT = _ffi.TP_STATE_RESIDENT
    OFFLOADED = _ffi.TP_STATE_OFFLOADED
    UNLOADING = _ffi.TP_STATE_UNLOADING
    FAILED = _ffi.TP_STATE_FAILED


class Reason(_Named):
    LAZY = _ffi.TP_REASON_LAZY
    EAGER = _ffi.TP_REASON_EAGER
    TTL = _ffi.TP_REASON_TTL
    LRU = _ffi.TP_REASON_LRU
    PRESSURE = _ffi.TP_REASON_PRESSURE
    EXPLICIT = _ffi.TP_REASON_EXPLICIT
    UNLOAD_AFTER = _ffi.TP_REASON_UNLOAD_AFTER


_NAMERS = {Tier: _ffi.tp_tier_name, State: _ffi.tp_state_name, Reason: _ffi.tp_reason_name}


def _enum(cls, value):
    """``cls(value)``, or the plain int for a value a newer library added."""
    try:
        return cls(value)
    except ValueError:
        return value


def _text(value):
    """A str or path as UTF-8 bytes for a ``const char*``."""
    value = os.fspath(value) if isinstance(value, os.PathLike) else value
    return value.encode() if isinstance(value, str) else value


def _from_c(cls, struct, **converted):
    """A ``cls`` dataclass from a C struct: fields given in ``converted`` as they are, the others read from the
    struct field of the same name (char* decoded as UTF-8; NULL as "")."""
    values = dict(converted)
    for f in dataclasses.fields(cls):
        if f.name not in values:
            v = getattr(struct, f.name)
            values[f.name] = (v or b"").decode("utf-8", "replace") if isinstance(v, (bytes, type(None))) else v
    return cls(**values)


def _seconds(value):
    return None if value < 0 else value


# ---- rows, stats and events ------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """One configured model (tp_model_info). ``None`` stands for the C API's -1 ("never used", "no timeout")."""

    name: str
    source: str
    pipeline_type: str
    dtype: str
    state: State
    tier: Tier
    device_bytes: int
    host_bytes: int
    leases: int
    pinned: bool
    priority: int
    last_use_age_s: Optional[float]
    expires_in_s: Optional[float]
    load_count: int
    last_load_ms: float
    last_error: str
    device: str  # the registry device it is on, or that its next load goes to ("cuda:1"); "auto" before placed


@dataclasses.dataclass(frozen=True)
class Device:
    """One device (tp_device_info). ``Registry.devices()`` fills every field; ``runtime_devices()`` only
    ``name``, ``total_bytes`` and ``free_bytes`` (the others are 0)."""

    name: str                 # "cuda:0", "cpu", a simulated device's name
    total_bytes: int          # as its monitor reports it (0: unknown)
    free_bytes: int
    process_bytes: int        # this process's, per the driver (NVML)
    other_process_bytes: int  # every other process's
    headroom_bytes: int       # kept free for others by the policy
    budget_bytes: int         # the registry's budget on it; 0: as much as is free
    held_bytes: int           # model weights the registry holds on it now
    peak_bytes: int           # the most it ever held
    reserved_bytes: int       # admitted loads in flight (weights + workspace)
    scratch_bytes: int        # the weight engine's scratch pool on it
    admission_queue: int      # loads waiting for its memory
    resident_models: int


def _devices(fill) -> List[Device]:
    """The rows of a tp_device_list made by ``fill(byref(list))``."""
    snapshot = POINTER(_ffi.tp_device_list)()
    fill(byref(snapshot))
    try:
        rows = []
        for i in range(_ffi.tp_device_list_count(snapshot)):
            d = _ffi.tp_device_info(struct_size=sizeof(_ffi.tp_device_info))
            call(_ffi.tp_device_list_get, byref(d), snapshot, i)
            rows.append(_from_c(Device, d))
        return rows
    finally:
        _ffi.tp_device_list_free(snapshot)


def runtime_devices() -> List[Device]:
    """The devices a registry without a simulated device uses now: every visible CUDA device ("cuda:N", with
    the driver's total and free bytes), or the CPU device alone ("cpu") where no GPU is usable."""
    return _devices(lambda out: call(_ffi.tp_runtime_devices, out))


@dataclasses.dataclass(frozen=True)
class Stats:
    """Registry statistics (tp_stats); ``evictions`` counts evictions by reason."""

    hits: int
    misses: int
    loads: int
    reloads: int
    load_failures: int
    admission_waits: int
    admission_failures: int
    evictions: Dict[Reason, int]
    bytes_to_device: int
    bytes_to_host: int
    bytes_returned: int
    device_bytes: int
    peak_device_bytes: int
    host_bytes: int
    load_ms_p50: float
    load_ms_p95: float
    reload_ms_p50: float
    reload_ms_p95: float


@dataclasses.dataclass(frozen=True)
class Event:
    """One residency transition (tp_event): ``model`` moved ``from_tier`` -> ``to_tier`` for ``reason``."""

    model: str
    from_tier: Tier
    to_tier: Tier
    reason: Reason
    failed: bool
    bytes: int
    ms: float
    bytes_returned: int
    error: str


@dataclasses.dataclass(frozen=True)
class PolicyModel:
    """One model as a memory policy sees it (tp_policy_model). ``evictable``: the registry accepts it as a
    victim (resident, unleased, unpinned). ``idle_seconds`` is None for a model never used."""

    name: str
    state: State
    tier: Tier
    device_bytes: int
    host_bytes: int
    leases: int
    pinned: bool
    priority: int
    evictable: bool
    idle_seconds: Optional[float]


@dataclasses.dataclass(frozen=True)
class Plan:
    """What acquiring a model would do now (tp_plan_info): a dry run of its admission. ``evictions`` names the
    models it would move off the device; ``explanation`` says it in one line for people."""

    fits: bool
    resident: bool
    from_tier: Tier
    bytes_to_move: int
    needed_bytes: int
    free_bytes: int
    bytes_evicted: int
    evictions: List[str]
    explanation: str


class MemoryPolicy:
    """Base class (optional: any object with ``select_victims`` will do) for a memory policy written in Python.

    The registry consults it before its built-in policies. Its methods run with the registry's lock held, on any
    registry thread, one call at a time: they must be quick and must not call into the registry. An exception is
    logged and counts as "no opinion".
    """

    def select_victims(self, models: Sequence[PolicyModel], need_bytes: int) -> List[int]:
        """Returns indices into ``models`` to evict (to the host tier), cheapest first, to free at least
        ``need_bytes`` on the device; an empty list leaves the choice to the built-in policies."""
        return []

    def on_access(self, name: str) -> None:
        """Called after every successful acquire of ``name``."""


def _model_info(snapshot, index):
    r = _ffi.tp_model_info(struct_size=sizeof(_ffi.tp_model_info))
    call(_ffi.tp_model_list_get, byref(r), snapshot, index)
    return _from_c(ModelInfo, r, state=_enum(State, r.state), tier=_enum(Tier, r.tier), pinned=bool(r.pinned),
                   last_use_age_s=_seconds(r.last_use_age_s), expires_in_s=_seconds(r.expires_in_s))


# ---- callbacks from C ------------------------------------------------------------------------------------------

@_ffi.tp_select_victims_fn
@guarded(0)
def _select_victims(out, max_out, models, count, need_bytes, key):
    policy = objects.get(key)
    if policy is None:
        return 0
    rows = [_from_c(PolicyModel, m, state=_enum(State, m.state), tier=_enum(Tier, m.tier), pinned=bool(m.pinned),
                    evictable=bool(m.evictable), idle_seconds=_seconds(m.idle_seconds))
            for m in models[:count]]
    picked = [int(i) for i in policy.select_victims(rows, need_bytes)]
    if len(picked) > max_out or not all(0 <= i < count for i in picked):
        raise ValueError(f"{type(policy).__name__}.select_victims returned {picked}: "
                         f"expected at most {max_out} indices in range({count})")
    for j, i in enumerate(picked):
        out[j] = i
    return len(picked)


@_ffi.tp_on_access_fn
@guarded(None)
def _on_access(name, key):
    hook = getattr(objects.get(key), "on_access", None)
    if hook is not None:
        hook(name.decode("utf-8", "replace"))


@_ffi.tp_destroy_fn
@guarded(None)
def _destroy(key):
    objects.pop(key, None)


@_ffi.tp_event_fn
@guarded(None)
def _on_event(ev, key):
    callback = objects.get(key)
    if callback is not None:
        e = ev.contents
        callback(_from_c(Event, e, from_tier=_enum(Tier, getattr(e, "from")), to_tier=_enum(Tier, e.to),
                         reason=_enum(Reason, e.reason), failed=bool(e.failed)))


_VTABLE = _ffi.tp_memory_policy_vtable(sizeof(_ffi.tp_memory_policy_vtable), _select_victims, _on_access, _destroy)


# ---- leases ----------------------------------------------------------------------------------------------------

class Lease:
    """A lease on a resident model: while it is live the model stays on the device.

    Use it as a context manager, or call ``release()`` (idempotent); an unreleased lease is released when
    garbage-collected. A lease outlives a closed registry: the models are freed when the last lease goes.
    Single owner: release it from one thread; ``name`` and ``device_bytes`` may be read from any thread.
    """

    def __init__(self, handle):
        self._handle = handle
        self.name: str = _ffi.tp_model_name(handle).decode()

    @property
    def device_bytes(self) -> int:
        """Device bytes the leased model holds."""
        if not self._handle:
            raise ValueError(f"the lease on {self.name!r} was released")
        return _ffi.tp_model_device_bytes(self._handle)

    @property
    def released(self) -> bool:
        return not self._handle

    def release(self) -> None:
        """Releases the lease; the registry's memory policies apply now. A second call does nothing."""
        handle, self._handle = self._handle, None
        if handle:
            _ffi.tp_model_release(handle)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()

    def __del__(self):
        if getattr(self, "_handle", None):
            finalize(self.release)

    def __repr__(self):
        return f"<twistedpic.Lease {self.name!r}{' released' if self.released else ''}>"


# ---- the registry ----------------------------------------------------------------------------------------------

_open_registries = weakref.WeakSet()


class Registry:
    """The model registry: loads models on demand, keeps them on the device while leased, and moves them between
    device, host and disk under its memory policies.

    Create one with ``Registry.from_string()`` or ``Registry.from_file()``; close it with ``close()`` or a
    ``with`` block (a registry still open is closed when garbage-collected or at interpreter exit).
    Thread-safe: any method may be called from any thread, except ``close()``, which must not run concurrently
    with other calls on this registry.
    """

    def __init__(self, handle):
        """Private: use from_string() or from_file()."""
        self._handle = handle
        self._subscriptions: Dict[int, int] = {}  # subscription id -> user_data key
        self._lock = threading.Lock()  # guards the three below
        self._pipelines = 0  # open Pipelines: they need the C registry
        self._deferred = None  # the handle of a closed registry, destroyed when its last pipeline closes
        _open_registries.add(self)

    @classmethod
    def from_string(cls, config_json: str, **options) -> "Registry":
        """A registry from a JSON config. Errors name the config as "<string>". See ``from_file`` for options."""
        return cls._create(_ffi.tp_registry_create_from_string, config_json, **options)

    @classmethod
    def from_file(cls, path, *, simulated_device_bytes: Optional[int] = None,
                  simulated_devices: Optional[Sequence[Tuple[str, int]]] = None, preset: Optional[str] = None,
                  background_thread: bool = True, policy: Optional[MemoryPolicy] = None,
                  text_encoder_offload: Optional[Tier] = None) -> "Registry":
        """A registry from a JSON config file.

        simulated_device_bytes: use a simulated device of this size, and simulated weights (every model needs
            "size_bytes"), for tests, demos and CPU-only machines. Without it the registry uses the CUDA device
            and real weights on every CUDA device (or the CPU device without one).
        simulated_devices: instead, several simulated devices, as (name, total_bytes) pairs in order: the
            registry spans them (a model's "device" names one, or "auto"), with simulated weights.
        preset: replaces the config's policy with "max_gpu_availability", "balanced" or "max_speed".
        background_thread: run idle timeouts and pressure checks on a library thread; if False, only in tick().
        policy: a ``MemoryPolicy`` consulted before the built-in ones.
        text_encoder_offload: where the text encoders of pipeline models go when their lease ends, overriding
            their policy: Tier.HOST frees the device for the denoiser after encoding and brings them back from
            pinned memory (diffusers' model offload), Tier.DISK drops them; None leaves it to the policy.
        Raises NotFoundError for a missing file and InvalidArgumentError for a bad config (the message names the
        file, the field and the problem).
        """
        return cls._create(_ffi.tp_registry_create_from_file, path, simulated_device_bytes=simulated_device_bytes,
                           simulated_devices=simulated_devices, preset=preset, background_thread=background_thread, policy=policy,
                           text_encoder_offload=text_encoder_offload)

    @classmethod
    def _create(cls, create, config, *, simulated_device_bytes=None, simulated_devices=None, preset=None,
                background_thread=True, policy=None, text_encoder_offload=None):
        opts = POINTER(_ffi.tp_registry_options)()
        call(_ffi.tp_registry_options_create, byref(opts))
        try:
            if simulated_device_bytes is not None:
                call(_ffi.tp_registry_options_use_simulated_device, opts, simulated_device_bytes)
            for name, total_bytes in simulated_devices or ():
                call(_ffi.tp_registry_options_add_simulated_device, opts, _text(name), total_bytes)
            if preset is not None:
                call(_ffi.tp_registry_options_set_preset, opts, _text(preset))
            call(_ffi.tp_registry_options_set_background_thread, opts, 1 if background_thread else 0)
            if text_encoder_offload is not None:
                call(_ffi.tp_registry_options_set_text_encoder_offload, opts, int(text_encoder_offload))
            if policy is not None:
                key = register(policy)  # from here on the library's destroy callback unregisters it
                try:
                    call(_ffi.tp_registry_options_add_policy, opts, byref(_VTABLE), key)
                except BaseException:
                    objects.pop(key, None)
                    raise
            handle = POINTER(_ffi.tp_registry)()
            call(create, byref(handle), _text(config), opts)
        finally:
            _ffi.tp_registry_options_destroy(opts)  # destroys a policy no registry took
        return cls(handle)

    @property
    def _h(self):
        if not self._handle:
            raise InvalidArgumentError(_ffi.TP_INVALID_ARGUMENT, "the registry is closed")
        return self._handle

    @property
    def closed(self) -> bool:
        return not self._handle

    def close(self) -> None:
        """Closes the registry (idempotent). Live leases stay valid; their models are freed when the last one is
        released. Open pipelines stay usable: the registry is destroyed when the last one closes (subscribers
        keep getting events until then). Must not run concurrently with other calls on this registry."""
        with self._lock:
            handle, self._handle = self._handle, None
            if not handle:
                return
            if self._pipelines:
                self._deferred = handle
                return
        self._destroy(handle)

    def _destroy(self, handle):
        _ffi.tp_registry_destroy(handle)
        for key in self._subscriptions.values():
            objects.pop(key, None)
        self._subscriptions.clear()

    def _open_pipeline(self):
        """Counts a new pipeline; returns the C registry for tp_pipeline_create."""
        with self._lock:
            handle = self._h
            self._pipelines += 1
            return handle

    def _close_pipeline(self):
        """Uncounts a pipeline; the last one destroys a registry closed before it."""
        with self._lock:
            self._pipelines -= 1
            handle = self._deferred if not self._pipelines else None
            if handle is not None:
                self._deferred = None
        if handle is not None:
            self._destroy(handle)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_handle", None):
            finalize(self.close)

    def __len__(self):
        count = c_uint32()
        call(_ffi.tp_registry_model_count, byref(count), self._h)
        return count.value

    def __repr__(self):
        return f"<twistedpic.Registry {'closed' if self.closed else f'{len(self)} models'}>"

    def models(self) -> List[ModelInfo]:
        """A snapshot of every configured model, in config order."""
        snapshot = POINTER(_ffi.tp_model_list)()
        call(_ffi.tp_registry_list, byref(snapshot), self._h)
        try:
            return [_model_info(snapshot, i) for i in range(_ffi.tp_model_list_count(snapshot))]
        finally:
            _ffi.tp_model_list_free(snapshot)

    list = models

    def devices(self) -> List[Device]:
        """A snapshot of the registry's devices, in the order it was given them (cuda:0, cuda:1, ...; the CPU
        device alone; or the simulated devices, in the order given)."""
        return _devices(lambda out: call(_ffi.tp_registry_devices, out, self._h))

    def info(self, name: str) -> ModelInfo:
        """The row of one model (a configured one, or a network of a pipeline model, e.g. "sd35/vae").
        Raises NotFoundError for an unknown model."""
        snapshot = POINTER(_ffi.tp_model_list)()
        call(_ffi.tp_registry_info, byref(snapshot), self._h, _text(name))
        try:
            return _model_info(snapshot, 0)
        finally:
            _ffi.tp_model_list_free(snapshot)

    def plan(self, name: str) -> Plan:
        """What acquiring ``name`` would do now (a dry run: nothing moves). Raises NotFoundError for an
        unknown model."""
        plan = POINTER(_ffi.tp_plan)()
        call(_ffi.tp_registry_plan, byref(plan), self._h, _text(name))
        try:
            p = _ffi.tp_plan_info(struct_size=sizeof(_ffi.tp_plan_info))
            call(_ffi.tp_plan_get_info, byref(p), plan)
            evictions = [_ffi.tp_plan_eviction(plan, i).decode("utf-8", "replace") for i in range(p.eviction_count)]
            return _from_c(Plan, p, fits=bool(p.fits), resident=bool(p.resident),
                           from_tier=_enum(Tier, getattr(p, "from")), evictions=evictions)
        finally:
            _ffi.tp_plan_free(plan)

    def pipeline(self, name: str) -> Pipeline:
        """The text-to-image pipeline of ``name``, a configured model with a pipeline_type (see
        ``twistedpic.Pipeline``). Loads no weights. Raises NotFoundError for an unknown model,
        InvalidArgumentError for a model that is not a pipeline, UnimplementedError for an unsupported
        pipeline type."""
        return Pipeline(self, name)

    def acquire(self, name: str) -> Lease:
        """Leases ``name``, loading or reloading it first when needed (concurrent acquires share one load).
        Raises NotFoundError for an unknown model, ResourceExhaustedError when it cannot fit (the message states
        the needed, free and evictable bytes)."""
        handle = POINTER(_ffi.tp_model)()
        call(_ffi.tp_model_acquire, byref(handle), self._h, _text(name))
        return Lease(handle)

    def preload(self, name: str) -> None:
        """Loads ``name`` without taking a lease."""
        call(_ffi.tp_registry_preload, self._h, _text(name))

    def unload(self, name: str, tier: Tier = Tier.HOST) -> int:
        """Moves ``name`` off the device to ``tier`` (HOST keeps a pinned copy, DISK drops all) and returns the
        device bytes measured as returned to the driver. Raises FailedPreconditionError while it is leased."""
        returned = c_int64()
        call(_ffi.tp_registry_unload, byref(returned), self._h, _text(name), int(tier))
        return returned.value

    def unload_all(self, tier: Tier = Tier.HOST) -> None:
        """Unloads every unleased model; raises FailedPreconditionError naming those still leased."""
        call(_ffi.tp_registry_unload_all, self._h, int(tier))

    def tick(self) -> None:
        """Applies idle timeouts, pressure and LRU limits now."""
        call(_ffi.tp_registry_tick, self._h)

    def stats(self) -> Stats:
        s = _ffi.tp_stats(struct_size=sizeof(_ffi.tp_stats))
        call(_ffi.tp_registry_stats, byref(s), self._h)
        return _from_c(Stats, s, evictions={reason: self._evictions(reason) for reason in Reason})

    def stat(self, name: str) -> int:
        """One statistic by name (tp_registry_stat), including those tp_stats lacks: "admission_queue",
        "admission_queue_bytes", "admission_cancels", "device_total_bytes", "device_free_bytes",
        "process_bytes", "other_process_bytes", "headroom_bytes", "cache_releases", "cache_bytes_returned".
        InvalidArgumentError for a name this library does not know."""
        n = c_uint64()
        call(_ffi.tp_registry_stat, byref(n), self._h, name.encode())
        return n.value

    def _evictions(self, reason: "Reason") -> int:
        # tp_registry_evictions counts every reason; tp_stats.evictions stops at the v0.1 ones.
        n = c_uint64()
        call(_ffi.tp_registry_evictions, byref(n), self._h, int(reason))
        return n.value

    def subscribe(self, callback: Callable[[Event], None]) -> int:
        """Calls ``callback(event)`` for every residency transition, on the thread that made it, possibly
        concurrently, without the registry's lock (it may call the registry, but not close it). Returns an id
        for ``unsubscribe()``."""
        key = register(callback)
        sub = c_int32()
        try:
            call(_ffi.tp_registry_subscribe, byref(sub), self._h, _on_event, key)
        except BaseException:
            objects.pop(key, None)
            raise
        self._subscriptions[sub.value] = key
        return sub.value

    def unsubscribe(self, subscription: int) -> None:
        """Stops calling the subscribed callback for new events."""
        call(_ffi.tp_registry_unsubscribe, self._h, subscription)
        objects.pop(self._subscriptions.pop(subscription, None), None)


@atexit.register
def _close_open_registries():
    # Stops the registries' threads before the interpreter can no longer run their callbacks. Pipelines first:
    # a registry with an open pipeline is destroyed only when that pipeline closes.
    _close_open_pipelines()
    for registry in list(_open_registries):
        registry.close()
