"""Python bindings for libsnapfusion (ctypes; no compiled extension).

    import snapfusion
    with snapfusion.Pipeline.load("models/tiny-sd") as pipe:   # one thread per core
        image = pipe.txt2img("a photo of an astronaut riding a horse", steps=8, seed=1)
        image.save("astronaut.png")

The library is found through $SNAPFUSION_LIBRARY, next to this package, the system loader
(libsnapfusion.so.1), pkg-config, $CMAKE_PREFIX_PATH or the usual install prefixes (see
snapfusion._lib.load); its ABI version is checked at import. `__version__` is this
package's version, `version()` the loaded library's.
"""
from __future__ import annotations

import array
import collections
import ctypes
import enum
import json
import logging
import math
import mmap
import os
import re
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol, Tuple, TypeVar, Union

from . import _lib as _c
from .errors import (BackendError, BadModelError, BadStateError, CancelledError, FileIOError, InternalError,
                     InvalidArgumentError, NotFoundError, OutOfMemoryError, SnapFusionError, UnsupportedError,
                     error_for)

if TYPE_CHECKING:
    import numpy
    import numpy.typing
    import PIL.Image

__version__ = "0.1.0"  # this package's; the same as pyproject.toml (a test checks)

__all__ = [
    "Context", "Pipeline", "Files", "Job", "Step", "Image", "Params", "Rng", "Schedule", "TokenIds",
    "Param", "Network", "Sampler", "Prediction", "TimestepSpacing", "PromptSyntax", "LogLevel", "Info", "Layout", "ScheduleTable",
    "WeightType", "Memory", "MemoryEstimate",
    "SEED_RANDOM",
    "SnapFusionError", "InvalidArgumentError", "FileIOError", "BadModelError", "UnsupportedError",
    "OutOfMemoryError", "CancelledError", "BackendError", "BadStateError", "InternalError", "NotFoundError",
    "FloatArray", "FloatsLike", "ImageLike", "PathLike", "WeightsLike", "BytesLike", "LogCallback", "ProgressCallback",
    "version", "version_number", "abi_version", "status_string", "sampler_names", "live_handles",
]

_clib = _c.lib
_logger = logging.getLogger("snapfusion")
_logger.addHandler(logging.NullHandler())  # a library never decides where its logs go


# ---- enums of snapfusion.h ------------------------------------------------------------------------

class Param(enum.IntEnum):
    THREADS = 1
    LOG_LEVEL = 2
    VARIANT = 100
    RANDOM_WEIGHTS = 101
    RANDOM_SEED = 102
    INSPECT_ONLY = 103
    TAESD_PATH = 104
    COMPONENTS = 105
    TOKENIZER_PATH = 106
    WEIGHT_TYPE = 107
    LOW_MEMORY = 108
    PACK_PATH = 109
    CONFIG_PATH = 110
    LORAS = 111
    UNET_GUIDANCE = 120
    GEMM_BACKEND = 130
    PROMPT = 200
    NEGATIVE_PROMPT = 201
    WIDTH = 202
    HEIGHT = 203
    STEPS = 204
    GUIDANCE_SCALE = 205
    SEED = 206
    SAMPLER = 207
    KARRAS_SIGMAS = 208
    CLIP_SKIP = 209
    BATCH_COUNT = 210
    STRENGTH = 211
    PREDICTION_TYPE = 212
    DECODER = 213
    ETA = 214
    TIMESTEP_SPACING = 215
    PROMPT_SYNTAX = 216
    # sf_param_array
    LATENTS = 300
    PROMPT_EMBEDS = 301
    NEGATIVE_EMBEDS = 302


class LogLevel(enum.IntEnum):
    DEBUG = 0
    INFO = 1
    WARN = 2
    ERROR = 3


class Network(enum.IntFlag):
    TEXT_ENCODER = 1
    UNET = 2
    VAE_DECODER = 4
    VAE_ENCODER = 8
    TAESD_DECODER = 16
    TAESD_ENCODER = 32


class Info(enum.IntEnum):
    NETWORKS = 1
    TEXT_TOKENS = 2
    TEXT_HIDDEN = 3
    LATENT_CHANNELS = 4
    DEFAULT_WIDTH = 5
    DEFAULT_HEIGHT = 6
    VAE_SCALE = 7
    ARENA_BYTES = 8
    PARAMETERS = 9
    LAST_MACS = 10
    LAST_ATTENTION_MACS = 11
    SIZE_MULTIPLE = 12
    ACTIVE_RUNS = 13
    SCALE_FACTOR = 14
    WEIGHT_BYTES = 15
    WEIGHT_TYPE = 16


class WeightType(enum.IntEnum):
    """sf_weight_type (Pipeline.load(weights=...)): how convolution and linear weights are held
    in memory. DEFAULT keeps the checkpoint's type (f16 for F16 tensors, e.g. variant="fp16",
    else f32); F16 halves the memory (exact for an fp16 checkpoint, rounded to nearest even
    for an f32 one); Q8 quarters it (int8 per output channel, the layers next to the latents
    and the pixels and the time embedding kept in f16). Activations are always f32."""

    DEFAULT = 0
    F32 = 1
    F16 = 2
    Q8 = 3


class Memory(enum.IntEnum):
    """sf_memory: the figures of a memory estimate (Pipeline.estimate_memory), in bytes; also
    the index of each in a MemoryEstimate (estimate[Memory.PEAK] is estimate.peak)."""

    PEAK = 0           # expected peak resident set of the process, from the load to the end of the generation
    WEIGHTS = 1        # packed weights resident at that peak
    WORKSPACE = 2      # activation workspace resident at that peak
    OTHER = 3          # the rest of the peak: weights being packed, the run's buffers, a fixed base
    WEIGHTS_TOTAL = 4  # packed weights of all the pipeline's networks
    WORKSPACE_RUN = 5  # the largest workspace the generation plans


class MemoryEstimate(NamedTuple):
    """What a generation will need, in bytes (Pipeline.estimate_memory; sf_memory's figures
    in its order, so estimate[Memory.X] works too). peak = weights + workspace + other: the
    process's expected peak resident set from the load to the end of the generation (the
    library's share plus a fixed base for code and libraries); weights and workspace are the
    packed weights and the activation workspace resident at that peak; weights_total the
    packed weights of all the pipeline's networks (= weight_bytes of the full load);
    workspace_run the largest workspace the generation plans (= arena_bytes once it ran). An
    estimate from the networks' packed sizes and planned workspaces, not a measurement."""

    peak: int
    weights: int
    workspace: int
    other: int
    weights_total: int
    workspace_run: int


class Layout(enum.IntEnum):
    """sf_layout: the order of Job.image_f32's floats."""

    NCHW = 0  # [3, H, W]: diffusers' output_type "pt"
    NHWC = 1  # [H, W, 3]: diffusers' output_type "np"


class ScheduleTable(enum.IntEnum):
    """sf_schedule_table: Schedule.get_table's tables."""

    BETAS = 1
    ALPHAS_CUMPROD = 2


SEED_RANDOM: int = _c.SEED_RANDOM
"""seed=SEED_RANDOM (-1) draws a random seed; Job.seed and Image.seed tell which."""


class Sampler(enum.IntEnum):
    DEFAULT = 0
    DDIM = 1
    PNDM = 2
    EULER = 3
    EULER_A = 4
    DPMPP_2M = 5
    LCM = 6


class Prediction(enum.IntEnum):
    DEFAULT = 0
    EPSILON = 1
    V = 2
    SAMPLE = 3


class TimestepSpacing(enum.IntEnum):
    DEFAULT = 0
    LEADING = 1
    TRAILING = 2
    LINSPACE = 3


class PromptSyntax(enum.IntEnum):
    PLAIN = 0
    A1111 = 1


_FORMAT_TEXT, _FORMAT_JSON = 0, 1
_LATENTS_UNSCALED, _IMAGE_RAW = 1, 2
_RNG_KINDS = {"cpu": 0, "torch": 0, "scalar": 1, "cpu_scalar": 1}
_PREDICTIONS = {"epsilon": Prediction.EPSILON, "v_prediction": Prediction.V, "v": Prediction.V,
                "sample": Prediction.SAMPLE}
_SPACINGS = {"leading": TimestepSpacing.LEADING, "trailing": TimestepSpacing.TRAILING,
             "linspace": TimestepSpacing.LINSPACE}
_SYNTAXES = {"plain": PromptSyntax.PLAIN, "a1111": PromptSyntax.A1111}
_DECODERS = {"vae": Network.VAE_DECODER, "taesd": Network.TAESD_DECODER}
_ENCODERS = {"vae": Network.VAE_ENCODER, "taesd": Network.TAESD_ENCODER}
_LAYOUTS = {"nchw": Layout.NCHW, "nhwc": Layout.NHWC}
_TABLES = {"betas": ScheduleTable.BETAS, "alphas_cumprod": ScheduleTable.ALPHAS_CUMPROD}
_WEIGHT_TYPES = {"default": WeightType.DEFAULT, "f32": WeightType.F32, "f16": WeightType.F16, "q8": WeightType.Q8}
_COMPONENT_NAMES = {"text_encoder": Network.TEXT_ENCODER, "unet": Network.UNET,
                    "vae_decoder": Network.VAE_DECODER, "vae_encoder": Network.VAE_ENCODER,
                    "taesd_decoder": Network.TAESD_DECODER, "taesd_encoder": Network.TAESD_ENCODER}


# ---- argument types ---------------------------------------------------------------------------------

class _SupportsArray(Protocol):
    """numpy arrays (and anything else numpy can convert)."""

    def __array__(self) -> Any: ...


class _PILImage(Protocol):
    """The part of a PIL.Image.Image the binding uses."""

    @property
    def size(self) -> tuple[int, int]: ...

    def convert(self, mode: str) -> Any: ...


if TYPE_CHECKING:
    FloatArray = array.array[float]
else:  # array.array is not subscriptable at run time (before Python 3.12)
    FloatArray = array.array
# Float data: array.array('f'), bytes/bytearray/memoryview of float32, a numpy array, (nested)
# sequences of numbers, or one number.
FloatsLike = Union[FloatArray, bytes, bytearray, memoryview, Sequence[Any], float, _SupportsArray]
# An image for img2img: a snapfusion.Image, a PIL image, an HxWx3 uint8 numpy array, or
# (packed RGB8 bytes, width, height).
ImageLike = Union["Image", _PILImage, _SupportsArray, Tuple[bytes, int, int]]
PathLike = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
# log(level, message); a progress callback's true result stops the run.
LogCallback = Callable[["LogLevel", str], object]
ProgressCallback = Callable[[int, int], object]
# Pipeline.load(weights=...): a WeightType or its name.
WeightsLike = Union[WeightType, Literal["f32", "f16", "q8", "default"]]
_FloatsT = TypeVar("_FloatsT", bound=FloatsLike)
_ParamValue = Union[int, float, str, FloatsLike, None]


# ---- small module-level functions -----------------------------------------------------------------

def version() -> str:
    """The loaded library's "MAJOR.MINOR.PATCH" (sf_version; this package's is __version__)."""
    return str(_clib.sf_version().decode())


def version_number() -> int:
    """The loaded library's version as MAJOR * 10000 + MINOR * 100 + PATCH."""
    return int(_clib.sf_version_number())


def abi_version() -> int:
    return int(_clib.sf_abi_version())


def status_string(status: int) -> str:
    return str(_clib.sf_status_string(int(status)).decode())


def sampler_names() -> list[str]:
    """The sampler names the library knows ("ddim", "pndm", ...), in enum order."""
    names = []
    for s in Sampler:
        n = _clib.sf_sampler_name(int(s))
        if n:
            names.append(n.decode())
    return names


def _sampler_value(sampler: str | int | None) -> int | None:
    if sampler is None:
        return None
    if isinstance(sampler, str):
        if sampler.lower() == "default":
            return Sampler.DEFAULT
        v = int(_clib.sf_sampler_from_name(sampler.encode()))
        if v == Sampler.DEFAULT:
            raise InvalidArgumentError("unknown sampler %r (known: %s)" % (sampler, ", ".join(sampler_names())))
        return v
    return int(sampler)


def _enum_value(value: str | int | None, table: Mapping[str, int], what: str) -> int | None:
    if value is None or not isinstance(value, str):
        return value if value is None else int(value)
    try:
        return int(table[value.lower()])
    except KeyError:
        raise InvalidArgumentError("unknown %s %r (known: %s)" % (what, value, ", ".join(sorted(table)))) from None


# ---- native handle ownership -------------------------------------------------------------------------

_live: collections.Counter[str] = collections.Counter()
# Guards _live and every handle's ptr and children: runs on one pipeline go on from several
# threads (jobs made and closed concurrently). Reentrant: the collector may run a __del__
# (closing a handle) on a thread that holds it.
_live_lock = threading.RLock()


def live_handles() -> dict[str, int]:
    """Native objects currently alive, by kind ({"pipeline": 1, ...}); zero counts omitted.
    Meant for tests and leak hunting."""
    with _live_lock:
        return {k: v for k, v in _live.items() if v}


class _Handle:
    """Owns one native pointer. Children (a pipeline of a context, a job of a pipeline)
    keep their parent handle alive, and closing a parent closes its children first, so a
    native object is never destroyed before one that borrows it, whatever order Python
    collects the wrappers in."""

    __slots__ = ("ptr", "kind", "parent", "children", "keep", "_destroy", "__weakref__")

    def __init__(self, ptr: Any, destroy: Callable[[Any], None], kind: str, parent: _Handle | None = None,
                 keep: object = None) -> None:
        self.ptr: Any = ptr  # a ctypes pointer; None once closed
        self.kind = kind
        self._destroy = destroy
        self.parent = parent
        self.keep = keep  # Python objects the native side points at (callbacks)
        self.children: weakref.WeakSet[_Handle] = weakref.WeakSet()
        with _live_lock:
            if parent is not None:
                parent.children.add(self)
            _live[kind] += 1

    def get(self, what: str | None = None) -> Any:
        if self.ptr is None:
            raise BadStateError("the %s is closed" % (what or self.kind))
        return self.ptr

    def close(self) -> None:
        with _live_lock:  # one thread takes the pointer: a handle is destroyed once
            ptr = self.ptr
            if ptr is None:
                return
            self.ptr = None
            children = list(self.children)
        for child in children:
            child.close()
        self._destroy(ptr)
        with _live_lock:
            _live[self.kind] -= 1
        self.parent = None
        self.keep = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: module globals may be gone
            pass


def _message() -> str:
    """The message of the calling thread's last failure. Always sf_last_error (per thread), never
    sf_context_last_error: that one is shared by every thread of a context, so with concurrent
    runs it may hold another thread's failure (or change while being read)."""
    return str((_clib.sf_last_error() or b"").decode("utf-8", "replace"))


def _check(status: int) -> None:
    if status != 0:
        msg = _message() or status_string(status)
        raise error_for(status, msg)


class _CallbackSink:
    """Where a callback run by C leaves an exception: exceptions never cross C frames;
    the binding re-raises them once the C call has returned. One per call (progress
    callbacks); a context's log callback uses a _ThreadSink."""

    __slots__ = ("pending",)

    def __init__(self) -> None:
        self.pending: BaseException | None = None

    def store(self, exc: BaseException) -> None:
        if self.pending is None:
            self.pending = exc

    def reraise(self) -> None:
        exc, self.pending = self.pending, None
        if exc is not None:
            raise exc


class _ThreadSink(threading.local):
    """A _CallbackSink per thread: the log callback runs on the thread of the call that logs
    (snapfusion.h, Threading), so its exception belongs to that thread's call, not to a call
    another thread is making on the same context."""

    def __init__(self) -> None:
        self.pending: BaseException | None = None

    def store(self, exc: BaseException) -> None:
        if self.pending is None:
            self.pending = exc

    def reraise(self) -> None:
        exc, self.pending = self.pending, None
        if exc is not None:
            raise exc


# ---- float buffers ------------------------------------------------------------------------------------

_F32_FORMATS = ("f", "<f", "=f", "@f")


def _is_numpy(obj: object) -> bool:
    return type(obj).__module__ == "numpy"


def _flatten(obj: Any, out: FloatArray) -> None:
    if isinstance(obj, (int, float)):
        out.append(float(obj))
    else:
        for x in obj:
            _flatten(x, out)


def _floats_in(obj: FloatsLike, name: str = "values") -> tuple[ctypes.Array[ctypes.c_float], int,
                                                                tuple[int, ...] | None]:
    """Any float data (array.array('f'), bytes of float32, memoryview, numpy array, nested
    sequences, a number) -> (ctypes float array, count, shape or None)."""
    data: Any = obj
    if _is_numpy(data):
        import numpy
        data = numpy.ascontiguousarray(data, dtype=numpy.float32)
    if isinstance(data, (int, float)):
        data = [data]
    try:
        mv = memoryview(data)
    except TypeError:
        mv = None
    if mv is not None:
        shape = tuple(mv.shape) if mv.ndim > 1 and mv.shape is not None else None
        if mv.format in _F32_FORMATS or (mv.format in ("B", "b", "c") and mv.nbytes % 4 == 0):
            n = mv.nbytes // 4
            buf = mv if mv.c_contiguous else mv.tobytes()
            return (ctypes.c_float * n).from_buffer_copy(buf), n, shape
        flat = array.array("f")
        _flatten(mv.tolist(), flat)
        return (ctypes.c_float * len(flat)).from_buffer(flat), len(flat), shape
    flat = array.array("f")
    try:
        _flatten(data, flat)
    except TypeError:
        raise TypeError("%s: expected float data (array, buffer, sequence), got %s"
                        % (name, type(obj).__name__)) from None
    return (ctypes.c_float * len(flat)).from_buffer(flat), len(flat), None


def _floats_out(n: int) -> tuple[FloatArray, ctypes.Array[ctypes.c_float]]:
    arr = array.array("f", bytes(n * 4))
    return arr, (ctypes.c_float * n).from_buffer(arr)


def _doubles_out(n: int) -> tuple[FloatArray, ctypes.Array[ctypes.c_double]]:
    arr = array.array("d", bytes(n * 8))
    return arr, (ctypes.c_double * n).from_buffer(arr)


def _writable_f32(obj: object) -> ctypes.Array[ctypes.c_float] | None:
    """A ctypes view sharing memory with obj when obj is a writable, contiguous float32
    buffer; else None."""
    try:
        mv = memoryview(obj)  # type: ignore[arg-type]  # anything with the buffer protocol
    except TypeError:
        return None
    if mv.readonly or not mv.c_contiguous or mv.format not in _F32_FORMATS:
        return None
    writable: Any = obj
    return (ctypes.c_float * (mv.nbytes // 4)).from_buffer(writable)


def _cstr(s: PathLike | None, name: str) -> bytes | None:
    if s is None:
        return None
    if isinstance(s, bytes):
        return s
    if isinstance(s, os.PathLike):
        return os.fsencode(s)
    if not isinstance(s, str):
        raise TypeError("%s: expected str, got %s" % (name, type(s).__name__))
    return s.encode("utf-8")


# ---- params -----------------------------------------------------------------------------------------

class Params:
    """An sf_params bag. Most code never needs it: Pipeline.load, txt2img and generate take
    keyword arguments. Keys are Param values."""

    _INT_KEYS = {Param.THREADS, Param.LOG_LEVEL, Param.RANDOM_WEIGHTS, Param.RANDOM_SEED, Param.INSPECT_ONLY,
                 Param.COMPONENTS, Param.WEIGHT_TYPE, Param.LOW_MEMORY, Param.GEMM_BACKEND, Param.WIDTH, Param.HEIGHT, Param.STEPS,
                 Param.SEED, Param.SAMPLER, Param.KARRAS_SIGMAS, Param.CLIP_SKIP, Param.BATCH_COUNT,
                 Param.PREDICTION_TYPE, Param.DECODER, Param.TIMESTEP_SPACING, Param.PROMPT_SYNTAX}
    _FLOAT_KEYS = {Param.GUIDANCE_SCALE, Param.STRENGTH, Param.ETA, Param.UNET_GUIDANCE}
    _STRING_KEYS = {Param.VARIANT, Param.TAESD_PATH, Param.TOKENIZER_PATH, Param.PACK_PATH, Param.CONFIG_PATH, Param.LORAS,
                    Param.PROMPT,
                    Param.NEGATIVE_PROMPT}
    _ARRAY_KEYS = {Param.LATENTS, Param.PROMPT_EMBEDS, Param.NEGATIVE_EMBEDS}

    def __init__(self, values: Mapping[Param | int, _ParamValue] | None = None) -> None:
        out = ctypes.POINTER(_c.Params)()
        _check(_clib.sf_params_create(ctypes.byref(out)))
        self._h = _Handle(out, _clib.sf_params_destroy, "params")
        for key, value in (values or {}).items():
            self.set(key, value)

    def set(self, key: Param | int, value: _ParamValue) -> None:
        """Sets a key from a Python value of the key's type (None unsets it)."""
        key = Param(key)
        p = self._h.get()
        if value is None:
            _check(_clib.sf_params_unset(p, key))
        elif key in self._ARRAY_KEYS:
            buf, n, _ = _floats_in(value, key.name.lower())
            _check(_clib.sf_params_set_floats(p, key, buf, n))
        elif key in self._STRING_KEYS:
            if not isinstance(value, (str, bytes, os.PathLike)):
                raise TypeError("%s: expected str, got %s" % (key.name.lower(), type(value).__name__))
            _check(_clib.sf_params_set_string(p, key, _cstr(value, key.name.lower())))
        elif key in self._FLOAT_KEYS:
            _check(_clib.sf_params_set_float(p, key, float(value)))  # type: ignore[arg-type]
        else:
            v = int(value)  # type: ignore[arg-type]
            if key == Param.SEED:  # SEED_RANDOM (-1, the bits of 2**64 - 1) draws one
                if not -(1 << 63) <= v < (1 << 64):
                    raise InvalidArgumentError("seed %d does not fit 64 bits" % v)
                if v >= 1 << 63:  # the library reads the seed as unsigned
                    v -= 1 << 64
            _check(_clib.sf_params_set_int(p, key, v))

    def set_int(self, key: Param | int, value: int) -> None:
        _check(_clib.sf_params_set_int(self._h.get(), int(key), int(value)))

    def set_float(self, key: Param | int, value: float) -> None:
        _check(_clib.sf_params_set_float(self._h.get(), int(key), float(value)))

    def set_string(self, key: Param | int, value: PathLike) -> None:
        _check(_clib.sf_params_set_string(self._h.get(), int(key), _cstr(value, "value")))

    def set_floats(self, key: Param | int, values: FloatsLike) -> None:
        buf, n, _ = _floats_in(values)
        _check(_clib.sf_params_set_floats(self._h.get(), int(key), buf, n))

    def set_init_image(self, image: ImageLike) -> None:
        rgb, width, height = _rgb_of(image)
        buf = (ctypes.c_uint8 * len(rgb)).from_buffer_copy(rgb)
        _check(_clib.sf_params_set_init_image(self._h.get(), buf, width, height, width * 3))

    def unset(self, key: Param | int) -> None:
        _check(_clib.sf_params_unset(self._h.get(), int(key)))

    def get(self, key: Param | int, default: int | float | str | None = None) -> int | float | str | None:
        """The value of a set key (int, float or str), default when unset."""
        key = Param(key)
        p = self._h.get()
        if key in self._ARRAY_KEYS:
            raise InvalidArgumentError("%s is write-only" % key.name)
        if key in self._STRING_KEYS:
            s = ctypes.c_char_p()
            st = _clib.sf_params_get_string(p, key, ctypes.byref(s))
            if st == NotFoundError.status:
                return default
            _check(st)
            return (s.value or b"").decode("utf-8")
        if key in self._FLOAT_KEYS:
            f = ctypes.c_double()
            st = _clib.sf_params_get_float(p, key, ctypes.byref(f))
            if st == NotFoundError.status:
                return default
            _check(st)
            return f.value
        i = ctypes.c_int64()
        st = _clib.sf_params_get_int(p, key, ctypes.byref(i))
        if st == NotFoundError.status:
            return default
        _check(st)
        return i.value

    def close(self) -> None:
        self._h.close()


# ---- context -----------------------------------------------------------------------------------------

_PY_LEVELS = {0: logging.DEBUG, 1: logging.INFO, 2: logging.WARNING, 3: logging.ERROR}


def _sf_level_for(py_level: int) -> LogLevel:
    if py_level <= logging.DEBUG:
        return LogLevel.DEBUG
    if py_level <= logging.INFO:
        return LogLevel.INFO
    if py_level <= logging.WARNING:
        return LogLevel.WARN
    return LogLevel.ERROR


class _HeldErrors(threading.local):
    """The library's ERROR-level log messages of the C call this thread is making, held until
    the binding has seen that call's status (Context._call)."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def take(self) -> list[str]:
        messages, self.messages = self.messages, []
        return messages


class Context:
    """Threads, logging and error state shared by the pipelines made with it.

    threads: worker threads (default: one per core). log: None forwards the library's
    messages to the `snapfusion` logger (level from log_level, else from the logger's
    effective level); a callable(level: LogLevel, message: str) receives them instead; False
    turns logging off.
    A failure is reported once, as the exception the failing call raises: its ERROR-level
    log message, which says the same, is not delivered to the logger or the callable, and
    neither are the problems the call reported one by one before failing (an inspect-only
    load reports every problem of a folder): the exception carries them as `problems`.
    Closing a context closes the pipelines made with it."""

    def __init__(self, threads: int | None = None, log_level: LogLevel | int | str | None = None,
                 log: LogCallback | Literal[False] | None = None) -> None:
        out = ctypes.POINTER(_c.Context)()
        _check(_clib.sf_context_create(ctypes.byref(out)))
        self._sink = _ThreadSink()  # per thread, as _held: runs of one context go on concurrently
        self._held = _HeldErrors()
        self._deliver: Callable[[int, str], None] | None = None
        self._h = _Handle(out, _clib.sf_context_destroy, "context")
        try:
            if threads is not None:
                self.threads = threads
            if log is not False:
                self._install_log(log)
                if log_level is None:
                    log_level = _sf_level_for(_logger.getEffectiveLevel()) if log is None else LogLevel.INFO
            else:  # nothing is delivered, but failures still collect their problems
                self._install_log(None, deliver_logs=False)
                if log_level is None:
                    log_level = LogLevel.ERROR
            if log_level is not None:
                self._set_log_level(log_level)
        except BaseException:
            self.close()
            raise

    def _install_log(self, callback: LogCallback | None, deliver_logs: bool = True) -> None:
        sink = self._sink
        held = self._held
        logger = _logger

        def deliver(level: int, text: str) -> None:
            try:
                if callback is None:
                    logger.log(_PY_LEVELS.get(level, logging.ERROR), "%s", text)
                else:
                    callback(LogLevel(level) if level in (0, 1, 2, 3) else level, text)  # type: ignore[arg-type]
            except BaseException as e:  # never unwind through C
                sink.store(e)

        def on_log(_user: object, level: int, message: bytes) -> None:
            text = message.decode("utf-8", "replace")
            if level >= LogLevel.ERROR:
                # Why errors are held rather than logged: libsnapfusion logs every failure at
                # ERROR level with the very message it keeps as the context's last error and
                # returns a failing status (src/core/context.c), and the binding raises that
                # message as the call's exception. Logging it too would show each failure twice
                # (e.g. once through logging.basicConfig, once in the traceback), so _call drops
                # the message its exception carries, puts the other ERROR messages of a failing
                # call (the problems it reported one by one) into the exception's `problems`, and
                # delivers those of a call that succeeded.
                held.messages.append(text)
            elif deliver_logs:
                deliver(level, text)

        thunk = _c.LOG_FN(on_log)
        _check(_clib.sf_context_set_log_callback(self._h.get(), thunk, None))
        self._h.keep = thunk  # the C side points at it for as long as the context lives
        self._deliver = deliver if deliver_logs else None

    def _call(self, status: int, callback_sink: _CallbackSink | None = None) -> None:
        """After a C call on this context (or a pipeline of it): raises, once, what went wrong.
        callback_sink holds an exception a progress callback raised during the call; it wins
        over the failure it caused (and that failure's message is not logged either). The
        exception of a failed status carries the call's other ERROR messages as `problems`."""
        held = self._held.take()
        callback_failed = callback_sink is not None and callback_sink.pending is not None
        problems: list[str] = []
        if held:
            duplicate = _message() if status != 0 or callback_failed else None
            for text in held:
                if text == duplicate:
                    duplicate = None  # one message per failure
                elif status != 0 and not callback_failed:
                    problems.append(text)  # raised with the failure below
                elif self._deliver is not None:
                    self._deliver(LogLevel.ERROR, text)
        if callback_sink is not None:
            callback_sink.reraise()
        self._sink.reraise()
        if status != 0:
            error = error_for(status, _message() or status_string(status))
            error.problems = tuple(problems)
            raise error

    def _get_int(self, key: int) -> int:
        out = ctypes.c_int64()
        self._call(_clib.sf_context_get_int(self._h.get(), key, ctypes.byref(out)))
        return out.value

    @property
    def threads(self) -> int:
        return self._get_int(Param.THREADS)

    @threads.setter
    def threads(self, n: int) -> None:
        self._call(_clib.sf_context_set_int(self._h.get(), Param.THREADS, int(n)))

    @property
    def log_level(self) -> LogLevel:
        return LogLevel(self._get_int(Param.LOG_LEVEL))

    @log_level.setter
    def log_level(self, level: LogLevel | int | str) -> None:
        """A LogLevel, its value, or its name ("debug", "info", "warn", "error")."""
        self._set_log_level(level)

    def _set_log_level(self, level: LogLevel | int | str) -> None:
        value = LogLevel[level.upper()] if isinstance(level, str) else int(level)
        self._call(_clib.sf_context_set_int(self._h.get(), Param.LOG_LEVEL, value))

    @property
    def last_error(self) -> str:
        """The message of the last failure of any call made with this context
        (sf_context_last_error). It is shared by every thread using the context: with
        concurrent runs, read the exception a call raised instead (each thread's own)."""
        ptr = self._h.ptr
        return str((_clib.sf_context_last_error(ptr) or b"").decode("utf-8", "replace")) if ptr is not None else ""

    @property
    def closed(self) -> bool:
        return self._h.ptr is None

    def close(self) -> None:
        self._h.close()

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---- images -------------------------------------------------------------------------------------------

def _rgb_of(image: ImageLike) -> tuple[bytes, int, int]:
    """(packed RGB8 bytes, width, height) of an Image, a PIL image, a numpy HxWx3 uint8
    array, or a (bytes, width, height) tuple."""
    if isinstance(image, Image):
        return image.pixels, image.width, image.height
    if isinstance(image, tuple) and len(image) == 3:
        rgb, w, h = image
        rgb = bytes(rgb)
        if len(rgb) != int(w) * int(h) * 3:
            raise InvalidArgumentError("init image: %d bytes for %dx%d RGB" % (len(rgb), w, h))
        return rgb, int(w), int(h)
    other: Any = image
    if hasattr(other, "convert") and hasattr(other, "size"):  # PIL
        im = other.convert("RGB")
        return im.tobytes(), im.size[0], im.size[1]
    if _is_numpy(other) and getattr(other, "ndim", 0) == 3 and other.shape[2] == 3:
        import numpy
        a = numpy.ascontiguousarray(other, dtype=numpy.uint8)
        return a.tobytes(), a.shape[1], a.shape[0]
    raise TypeError("init image: expected snapfusion.Image, PIL image, HxWx3 uint8 array or (bytes, w, h)")


class Image:
    """An RGB8 image made by the library (generation, preview, PNG reader)."""

    def __init__(self, ptr: Any) -> None:
        self._h = _Handle(ptr, _clib.sf_image_destroy, "image")

    @classmethod
    def open(cls, path: PathLike) -> Image:
        """Reads an 8-bit RGB or RGBA PNG (the library's own reader)."""
        out = ctypes.POINTER(_c.Image)()
        _check(_clib.sf_image_read_png(_cstr(path, "path"), ctypes.byref(out)))
        return cls(out)

    @property
    def width(self) -> int:
        return int(_clib.sf_image_width(self._h.get()))

    @property
    def height(self) -> int:
        return int(_clib.sf_image_height(self._h.get()))

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    @property
    def stride(self) -> int:
        return int(_clib.sf_image_stride(self._h.get()))

    @property
    def parameters(self) -> str:
        """The generation parameters in the A1111 "parameters" text form ("" if none)."""
        return str((_clib.sf_image_parameters(self._h.get()) or b"").decode("utf-8", "replace"))

    @property
    def seed(self) -> int | None:
        """The seed of a generated image, read from `parameters` ("Seed: N" on its settings
        line): the one drawn for seed=SEED_RANDOM, S + i for image i of a batch. None for an
        image without one."""
        m = re.search(r"(?:^|, )Seed: (\d+)(?:,|$)", self.parameters.rsplit("\n", 1)[-1])
        return int(m.group(1)) if m else None

    @property
    def pixels(self) -> bytes:
        """Packed RGB8 bytes, rows of width*3 bytes, top row first."""
        w, h = self.width, self.height
        buf = (ctypes.c_uint8 * (w * h * 3))()
        _check(_clib.sf_image_copy(self._h.get(), buf, len(buf), w * 3, None))
        return bytes(buf)

    def save(self, path: PathLike) -> None:
        """Writes a PNG carrying the generation parameters as a "parameters" text chunk."""
        _check(_clib.sf_image_write_png(self._h.get(), _cstr(path, "path")))

    def to_pil(self) -> PIL.Image.Image:
        """A PIL.Image (needs Pillow)."""
        from PIL import Image as PILImage
        im = PILImage.frombytes("RGB", (self.width, self.height), self.pixels)
        if self.parameters:
            im.info["parameters"] = self.parameters
        return im

    def to_numpy(self) -> numpy.typing.NDArray[numpy.uint8]:
        """A numpy uint8 array of shape (height, width, 3) (needs numpy)."""
        import numpy
        return numpy.frombuffer(self.pixels, dtype=numpy.uint8).reshape(self.height, self.width, 3).copy()

    def close(self) -> None:
        self._h.close()

    def __enter__(self) -> Image:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._h.ptr is None:
            return "<snapfusion.Image closed>"
        return "<snapfusion.Image %dx%d>" % (self.width, self.height)


# ---- model files in memory ----------------------------------------------------------------------------

class _PyBuffer(ctypes.Structure):
    """CPython's Py_buffer (Include/pybuffer.h; part of the stable ABI since 3.11, the same
    layout before). `obj` is a plain pointer: PyBuffer_Release owns that reference."""

    _fields_ = [("buf", ctypes.c_void_p), ("obj", ctypes.c_void_p), ("len", ctypes.c_ssize_t),
                ("itemsize", ctypes.c_ssize_t), ("readonly", ctypes.c_int), ("ndim", ctypes.c_int),
                ("format", ctypes.c_void_p), ("shape", ctypes.c_void_p), ("strides", ctypes.c_void_p),
                ("suboffsets", ctypes.c_void_p), ("internal", ctypes.c_void_p)]


# Our own prototypes over ctypes.pythonapi (never the shared pythonapi attributes, whose argtypes
# other code may set). PYFUNCTYPE: called with the GIL held, a Python error set by the call raised.
_PyObject_GetBuffer = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.py_object, ctypes.POINTER(_PyBuffer), ctypes.c_int)(
    ("PyObject_GetBuffer", ctypes.pythonapi))
_PyBuffer_Release = ctypes.PYFUNCTYPE(None, ctypes.POINTER(_PyBuffer))(("PyBuffer_Release", ctypes.pythonapi))
_PyBUF_SIMPLE = 0  # read-only access to contiguous bytes: never a writable export


class _Pin:
    """The address and size of a bytes-like object's memory, held through a buffer export
    (PyObject_GetBuffer, read-only request) until release(): the object stays alive and its
    exporter keeps the memory in place (a bytearray cannot be resized, an mmap not closed:
    both raise BufferError meanwhile). Works for read-only buffers (bytes, an mmap opened with
    ACCESS_READ) as well, without the writable view ctypes' from_buffer would need: nothing
    is ever written through the address."""

    __slots__ = ("obj", "address", "size", "_view")

    def __init__(self, obj: object) -> None:
        view = _PyBuffer()
        # TypeError for an object without the buffer protocol, BufferError for a
        # non-contiguous one (e.g. memoryview(b)[::2]).
        _PyObject_GetBuffer(obj, ctypes.byref(view), _PyBUF_SIMPLE)
        self._view: _PyBuffer | None = view
        self.obj = obj
        self.address: int | None = view.buf
        self.size = int(view.len)

    def release(self) -> None:
        view, self._view = self._view, None
        if view is not None:
            _PyBuffer_Release(ctypes.byref(view))

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:  # interpreter shutdown: module globals may be gone
            pass


# The file contents Files.add takes: any object with the buffer protocol whose memory is
# contiguous (also array.array, a numpy array, ...); these are the usual ones.
BytesLike = Union[bytes, bytearray, memoryview, mmap.mmap]


class Files:
    """A set of model files held in memory (sf_files): a diffusers folder's files by their
    relative '/'-separated paths ("model_index.json", "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors", "tokenizer/vocab.json", ...), for apps whose
    weights are not in the file system. Load it with Pipeline.load_files(files, ...).

    add(path, data, copy=True) hands the library a copy of the bytes: the set may be closed
    right after loading, the pipelines keep what they need. copy=False lends the buffer itself
    (zero-copy, e.g. an mmap of a large safetensors file): the set and every pipeline loaded
    from it hold the buffer (and a buffer export, so a bytearray cannot be resized nor an mmap
    closed meanwhile) until the last of them is closed; its bytes must not be changed
    meanwhile. The library never writes them. A closed set with borrowed files keeps its native
    object until the pipelines loaded from it are closed too (snapfusion.h allows destroying a
    set under live pipelines for copied files only).

    A context manager; each set is used by one thread at a time (the calls here take a lock)."""

    def __init__(self) -> None:
        out = ctypes.POINTER(_c.Files)()
        _check(_clib.sf_files_create(ctypes.byref(out)))
        # keep: the pins of the borrowed buffers ever added (a replaced one may still be in use by
        # a pipeline), released once the native set is destroyed.
        self._h: _Handle | None = _Handle(out, _clib.sf_files_destroy, "files", keep=[])
        self._borrowed = False
        self._lock = threading.RLock()
        self._sizes: dict[str, int] = {}

    @classmethod
    def from_dict(cls, files: Mapping[str, BytesLike], *, copy: bool = True) -> Files:
        """A set of {relative path: bytes-like} (each added with add(path, data, copy))."""
        self = cls()
        try:
            for path, data in files.items():
                self.add(path, data, copy=copy)
        except BaseException:
            self.close()
            raise
        return self

    @classmethod
    def from_folder(cls, folder: str | os.PathLike[str], *, copy: bool = True) -> Files:
        """Every regular file under folder (recursively, following symbolic links), read into
        memory and added by its path relative to folder. copy=True: each file's bytes are
        handed to the library and dropped (the set owns its files); copy=False lends the
        bytes objects read (one copy in memory less while loading; they live as long as the
        set and its pipelines)."""
        root = os.fspath(folder)
        if not os.path.isdir(root):
            raise FileIOError("%s: not a folder" % root)
        def unreadable(e: OSError) -> None:  # os.walk would skip a folder it cannot list
            raise FileIOError("%s: %s" % (e.filename or root, e.strerror or e)) from e

        self = cls()
        try:
            seen: set[tuple[int, int]] = set()
            for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable, followlinks=True):
                st = os.stat(dirpath)
                if (st.st_dev, st.st_ino) in seen:  # a link cycle
                    dirnames[:] = []
                    continue
                seen.add((st.st_dev, st.st_ino))
                dirnames.sort()
                for name in sorted(filenames):
                    full = os.path.join(dirpath, name)
                    if not os.path.isfile(full):
                        continue
                    try:
                        with open(full, "rb") as f:
                            data = f.read()
                    except OSError as e:
                        raise FileIOError("%s: %s" % (full, e.strerror or e)) from e
                    self.add(os.path.relpath(full, root).replace(os.sep, "/"), data, copy=copy)
        except BaseException:
            self.close()
            raise
        return self

    def _handle(self) -> _Handle:
        h = self._h
        if h is None or h.ptr is None:
            raise BadStateError("the files set is closed")
        return h

    def add(self, path: str | os.PathLike[str], data: BytesLike, copy: bool = True) -> None:
        """Adds (or replaces) the file at path (relative, '/'-separated, no "..") with the bytes
        of data: bytes, bytearray, memoryview, mmap, or any other contiguous buffer. copy=False
        borrows the buffer instead of copying it (see the class). InvalidArgumentError for a bad
        path (naming it), or a path that is a folder of the set's files or lies under one."""
        name = os.fspath(path)
        if not isinstance(name, str):
            raise TypeError("path: expected str, got %s" % type(name).__name__)
        if "\0" in name:
            raise InvalidArgumentError("Files.add: path %r contains a NUL character" % name)
        try:
            pin = _Pin(data)
        except TypeError:
            raise TypeError("Files.add(%r): expected bytes, bytearray, memoryview, mmap or another buffer, got %s"
                            % (name, type(data).__name__)) from None
        try:
            with self._lock:
                h = self._handle()
                _check(_clib.sf_files_add(h.ptr, name.encode("utf-8"), pin.address, pin.size, 1 if copy else 0))
                self._sizes[name] = pin.size
                if not copy:
                    pins = h.keep
                    assert isinstance(pins, list)
                    pins.append(pin)
                    self._borrowed = True
                    return
        except BaseException:
            pin.release()
            raise
        pin.release()  # copied: the library has its own bytes

    @property
    def paths(self) -> list[str]:
        """The paths of the set's files, sorted."""
        with self._lock:
            return sorted(self._sizes)

    def __len__(self) -> int:
        return len(self._sizes)

    @property
    def borrowed(self) -> bool:
        """True once a file was added with copy=False: pipelines loaded from the set then keep
        it (and the buffers) alive."""
        return self._borrowed

    @property
    def closed(self) -> bool:
        h = self._h
        return h is None or h.ptr is None

    def close(self) -> None:
        """Frees the set now, or, when pipelines loaded from its borrowed files are still open,
        once the last of them is closed. The pipelines stay usable either way."""
        with self._lock:
            h, self._h = self._h, None
        if h is None:
            return
        with _live_lock:
            in_use = any(child.ptr is not None for child in h.children)
        if not in_use:
            h.close()
        # else the pipelines hold h: the collector closes it (sf_files_destroy, then the buffers
        # are released) when the last of them lets go.

    def __enter__(self) -> Files:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if self.closed:
            return "<snapfusion.Files closed>"
        return "<snapfusion.Files %d files, %d bytes>" % (len(self._sizes), sum(self._sizes.values()))


# ---- pipelines --------------------------------------------------------------------------------------

def _generation_params(*, prompt: str | None, negative_prompt: str | None, width: int | None, height: int | None,
                       steps: int | None, guidance_scale: float | None, seed: int | None,
                       sampler: str | int | None, karras_sigmas: bool | None, clip_skip: int | None,
                       batch_count: int | None, strength: float | None, prediction_type: str | int | None,
                       decoder: str | int | None, eta: float | None, timestep_spacing: str | int | None,
                       prompt_syntax: str | int | None, latents: FloatsLike | None, prompt_embeds: FloatsLike | None,
                       negative_prompt_embeds: FloatsLike | None, init_image: ImageLike | None) -> Params:
    if init_image is not None:
        # img2img generates at the init image's size unless width/height say otherwise (the
        # library would take the model's default size and reject any other image).
        rgb, image_width, image_height = _rgb_of(init_image)
        init_image = (rgb, image_width, image_height)
        width = image_width if width is None else width
        height = image_height if height is None else height
    values: dict[Param, _ParamValue] = {
        Param.PROMPT: prompt,
        Param.NEGATIVE_PROMPT: negative_prompt,
        Param.WIDTH: width,
        Param.HEIGHT: height,
        Param.STEPS: steps,
        Param.GUIDANCE_SCALE: guidance_scale,
        Param.SEED: seed,
        Param.SAMPLER: _sampler_value(sampler),
        Param.KARRAS_SIGMAS: None if karras_sigmas is None else int(bool(karras_sigmas)),
        Param.CLIP_SKIP: clip_skip,
        Param.BATCH_COUNT: batch_count,
        Param.STRENGTH: strength,
        Param.PREDICTION_TYPE: _enum_value(prediction_type, _PREDICTIONS, "prediction type"),
        Param.DECODER: _enum_value(decoder, _DECODERS, "decoder"),
        Param.ETA: eta,
        Param.TIMESTEP_SPACING: _enum_value(timestep_spacing, _SPACINGS, "timestep spacing"),
        Param.PROMPT_SYNTAX: _enum_value(prompt_syntax, _SYNTAXES, "prompt syntax"),
        Param.LATENTS: latents,
        Param.PROMPT_EMBEDS: prompt_embeds,
        Param.NEGATIVE_EMBEDS: negative_prompt_embeds,
    }
    params = Params({k: v for k, v in values.items() if v is not None})
    try:
        if init_image is not None:
            params.set_init_image(init_image)
    except BaseException:
        params.close()
        raise
    return params


def _progress_thunk(progress: ProgressCallback | None) -> tuple[_CallbackSink, Any]:
    """(sink, C callback) for one call: the callback returns 1 (stop) when progress asks to
    stop or raises (the exception waits in the sink). A NULL callback without progress."""
    sink = _CallbackSink()
    if progress is None:
        return sink, _c.PROGRESS_FN(0)
    callback = progress

    def on_progress(_user: object, step: int, total: int) -> int:
        try:
            return 1 if callback(step, total) else 0
        except BaseException as e:
            sink.store(e)
            return 1
    return sink, _c.PROGRESS_FN(on_progress)


LorasLike = Sequence[Union[str, "os.PathLike[str]", Tuple[Union[str, "os.PathLike[str]"], float]]]


def _lora_list(loras: LorasLike | None) -> str | None:
    """The SF_PARAM_LORAS text of loras: one "PATH\\tSCALE" line each."""
    if loras is None:
        return None
    if isinstance(loras, (str, bytes, os.PathLike)):
        raise TypeError("loras: expected a sequence of paths or (path, scale) pairs, not one path")
    lines = []
    for item in loras:
        if isinstance(item, tuple):
            if len(item) != 2:
                raise TypeError("loras: expected (path, scale) pairs, got %r" % (item,))
            path, scale = os.fspath(item[0]), float(item[1])
        else:
            path, scale = os.fspath(item), 1.0
        if not isinstance(path, str) or not path or "\n" in path or "\t" in path:
            raise ValueError("loras: %r is not a usable path (empty, or with a tab or newline)" % (path,))
        if not math.isfinite(scale):
            raise ValueError("loras: the scale of %s is not finite" % path)
        lines.append("%s\t%r" % (path, scale))
    return "\n".join(lines) if lines else None


class Pipeline:
    """A loaded diffusers model folder. Use as a context manager, or call close().

    Runs on one pipeline may go on concurrently from different threads (txt2img, jobs,
    building blocks) and give the same results as alone; they share the context's worker
    threads, so this serves several requests with one model in memory rather than adding
    speed. Each Job is used by one thread at a time (cancel() excepted). Close the pipeline
    only once no other thread uses it."""

    _ctx: Context
    _own_ctx: bool
    _h: _Handle
    _inspect_only: bool
    path: str

    def __init__(self, *a: object, **k: object) -> None:
        raise TypeError("use Pipeline.load(path, ...)")

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, context: Context | None = None, threads: int | None = None,
             variant: str | None = None, random_weights: bool = False, random_seed: int | None = None,
             inspect_only: bool = False, taesd_path: str | os.PathLike[str] | None = None,
             tokenizer_path: str | os.PathLike[str] | None = None,
             components: Network | int | Sequence[str | Network] | None = None,
             weights: WeightsLike | None = None, low_memory: bool = False,
             pack: str | os.PathLike[str] | None = None,
             config_path: str | os.PathLike[str] | None = None, unet_guidance: float | None = None,
             loras: LorasLike | None = None) -> Pipeline:
        """Loads a diffusers folder, or a single-file checkpoint (one .safetensors in the original
        LDM layout: model.diffusion_model.*, first_stage_model.*, cond_stage_model.transformer.*;
        config_path: the diffusers folder whose configs, scheduler and tokenizer describe it, else
        its architecture is inferred as SD-1.x's from the shapes). Without `context`, the pipeline makes (and closes) its
        own, with `threads` workers (default: one per core). components: names
        ("text_encoder", "unet", "vae_decoder", "vae_encoder", "taesd_decoder",
        "taesd_encoder") or a Network mask. tokenizer_path: a tokenizer folder used instead
        of the model's (which may be absent). weights: "f32", "f16", "q8" or a WeightType,
        how the networks' weights are held (None: as the checkpoint stores them); see
        weight_bytes. low_memory: one network resident at a time, each packed when a run
        needs it (less memory, the packing time of every network per generation).
        inspect_only: check the folder without loading it (see Pipeline.inspect). pack: a pack
        file (write_pack, `snapfusion pack`) the weights come from, mapped read-only and used in
        place (the folder then needs configs only; weights, if given, must be the pack's).
        unet_guidance: the guidance scale unet_predict gives an LCM-distilled UNet (one with
        time_cond_proj_dim; default 8); generations take their own guidance_scale.

        loras: LoRA files merged into the UNet and text encoder at load (SF_PARAM_LORAS),
        each a path (scale 1) or a (path, scale) pair, e.g. [("a.safetensors", 0.75),
        ("b.safetensors", 0.4)]: kohya/A1111 or diffusers/PEFT files, their deltas summed."""
        folder = _cstr(os.fspath(path), "path")

        def call(ctx: Any, params: Any, out: Any) -> int:
            return int(_clib.sf_pipeline_load(ctx, folder, params, out))
        return cls._load(call, os.fspath(path), context=context, threads=threads, variant=variant,
                         random_weights=random_weights, random_seed=random_seed, inspect_only=inspect_only,
                         taesd_path=taesd_path, tokenizer_path=tokenizer_path, components=components,
                         weights=weights, low_memory=low_memory, pack=pack, config_path=config_path,
                         unet_guidance=unet_guidance, loras=loras)

    @classmethod
    def load_files(cls, files: Files, *, context: Context | None = None, threads: int | None = None,
                   variant: str | None = None, random_weights: bool = False, random_seed: int | None = None,
                   inspect_only: bool = False, taesd_path: str | os.PathLike[str] | None = None,
                   tokenizer_path: str | os.PathLike[str] | None = None,
                   components: Network | int | Sequence[str | Network] | None = None,
                   weights: WeightsLike | None = None, low_memory: bool = False,
                   pack: str | os.PathLike[str] | None = None, unet_guidance: float | None = None,
                   loras: LorasLike | None = None) -> Pipeline:
        """Loads a model from a set of files in memory (sf_pipeline_load_files), with the
        options of load (taesd_path and tokenizer_path stay paths in the file system). The
        library's messages name the set's files "memory:PATH" ("memory:model_index.json is
        missing"). A set of copied files may be closed right after; a pipeline loaded from a
        set with borrowed files (add(..., copy=False)) keeps the set and its buffers until it
        is closed itself."""
        if not isinstance(files, Files):
            raise TypeError("files: expected snapfusion.Files, got %s" % type(files).__name__)
        with files._lock:
            fh = files._handle()

            def call(ctx: Any, params: Any, out: Any) -> int:
                return int(_clib.sf_pipeline_load_files(ctx, fh.ptr, params, out))
            self = cls._load(call, "memory:", context=context, threads=threads, variant=variant,
                             random_weights=random_weights, random_seed=random_seed, inspect_only=inspect_only,
                             taesd_path=taesd_path, tokenizer_path=tokenizer_path, components=components,
                             weights=weights, low_memory=low_memory, pack=pack, unet_guidance=unet_guidance, loras=loras)
            if files.borrowed:
                # The pipeline may point into any borrowed buffer of the set: it holds the set's
                # handle (whose keep holds the buffers) until it is closed. As the handle's child,
                # it is closed first should the collector finalize both in one cycle.
                self._h.keep = fh
                with _live_lock:
                    fh.children.add(self._h)
        return self

    @classmethod
    def _load(cls, call: Callable[[Any, Any, Any], int], path: str, *, context: Context | None,
              threads: int | None, variant: str | None, random_weights: bool, random_seed: int | None,
              inspect_only: bool, taesd_path: str | os.PathLike[str] | None,
              tokenizer_path: str | os.PathLike[str] | None,
              components: Network | int | Sequence[str | Network] | None,
              weights: WeightsLike | None, low_memory: bool,
              pack: str | os.PathLike[str] | None = None,
              config_path: str | os.PathLike[str] | None = None,
              unet_guidance: float | None = None,
              loras: LorasLike | None = None) -> Pipeline:
        """load and load_files: call(context, options, out) is the C load."""
        own = context is None
        ctx = Context(threads=threads) if context is None else context
        if not own and threads is not None:
            ctx.threads = threads
        try:
            opts: dict[Param, _ParamValue] = {
                Param.VARIANT: variant, Param.TAESD_PATH: os.fspath(taesd_path) if taesd_path else None,
                Param.RANDOM_WEIGHTS: 1 if random_weights else None,
                Param.RANDOM_SEED: random_seed,
                Param.TOKENIZER_PATH: os.fspath(tokenizer_path) if tokenizer_path else None,
                Param.INSPECT_ONLY: 1 if inspect_only else None,
                Param.WEIGHT_TYPE: _enum_value(weights, _WEIGHT_TYPES, "weight type"),
                Param.LOW_MEMORY: 1 if low_memory else None,
                Param.PACK_PATH: os.fspath(pack) if pack else None,
                Param.CONFIG_PATH: os.fspath(config_path) if config_path else None,
                Param.UNET_GUIDANCE: float(unet_guidance) if unet_guidance is not None else None,
                Param.LORAS: _lora_list(loras)}
            if components is not None:
                if isinstance(components, int):
                    mask = int(components)
                else:
                    mask = 0
                    for name in components:
                        mask |= int(_COMPONENT_NAMES[name]) if isinstance(name, str) else int(name)
                opts[Param.COMPONENTS] = mask
            params = Params({k: v for k, v in opts.items() if v is not None})
            out = ctypes.POINTER(_c.Pipeline)()
            st = call(ctx._h.get("context"), params._h.get(), ctypes.byref(out))
            params.close()
            ctx._call(st)
        except BaseException:
            if own:
                ctx.close()
            raise
        self = cls.__new__(cls)
        self._ctx = ctx
        self._own_ctx = own
        self._h = _Handle(out, _clib.sf_pipeline_destroy, "pipeline", parent=ctx._h)
        self.path = path
        self._inspect_only = bool(inspect_only)
        return self

    @classmethod
    def inspect(cls, source: str | os.PathLike[str] | Files, *, context: Context | None = None,
                threads: int | None = None, variant: str | None = None, random_weights: bool = False,
                random_seed: int | None = None, taesd_path: str | os.PathLike[str] | None = None,
                tokenizer_path: str | os.PathLike[str] | None = None,
                components: Network | int | Sequence[str | Network] | None = None,
                weights: WeightsLike | None = None, low_memory: bool = False,
                config_path: str | os.PathLike[str] | None = None,
                loras: LorasLike | None = None) -> Pipeline:
        """Checks a model without loading it (SF_PARAM_INSPECT_ONLY): a folder (or a Files set)
        with the options of load. Every config is parsed, every network's architecture built
        and every checkpoint tensor checked against it (names, shapes, types, tensors left
        over), without reading or packing a weight. A folder with problems raises (usually
        BadModelError) with all of them in the exception's `problems` (its message counts them
        and lists as many as fit). The pipeline returned runs nothing (generating raises
        BadStateError; `inspect_only` is True) but answers the shape queries, weight_bytes,
        parameter_count and weight_type as the load with the same options would, and
        estimate_memory: load this way first to know whether a model fits before anything is
        packed. Pipeline.load(..., inspect_only=True) is the same."""
        options: dict[str, Any] = dict(
            context=context, threads=threads, variant=variant, random_weights=random_weights,
            random_seed=random_seed, inspect_only=True, taesd_path=taesd_path, tokenizer_path=tokenizer_path,
            components=components, weights=weights, low_memory=low_memory, loras=loras)
        if isinstance(source, Files):
            return cls.load_files(source, **options)
        return cls.load(source, config_path=config_path, **options)

    # -- lifetime --

    def close(self) -> None:
        """Frees the pipeline (and any running job); its own context too, if it made one."""
        self._h.close()
        if self._own_ctx:
            self._ctx.close()

    @property
    def closed(self) -> bool:
        return self._h.ptr is None

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def context(self) -> Context:
        return self._ctx

    def _p(self) -> Any:
        return self._h.get("pipeline")

    def _call(self, status: int, callback_sink: _CallbackSink | None = None) -> None:
        self._ctx._call(status, callback_sink)

    # -- information --

    def describe(self, format: Literal["text", "json"] = "text") -> Any:
        """Components, classes, key config values, tensor and parameter counts: text (a str),
        or the parsed JSON (a dict) with format="json"."""
        fmt = _FORMAT_JSON if format == "json" else _FORMAT_TEXT
        needed = ctypes.c_size_t()
        self._call(_clib.sf_pipeline_describe(self._p(), fmt, None, 0, ctypes.byref(needed)))
        buf = ctypes.create_string_buffer(needed.value)
        self._call(_clib.sf_pipeline_describe(self._p(), fmt, buf, len(buf), ctypes.byref(needed)))
        text = buf.value.decode("utf-8", "replace")
        return json.loads(text) if fmt == _FORMAT_JSON else text

    def get_int(self, key: Info | int) -> int:
        out = ctypes.c_int64()
        self._call(_clib.sf_pipeline_get_int(self._p(), int(key), ctypes.byref(out)))
        return out.value

    def get_float(self, key: Info | int) -> float:
        out = ctypes.c_double()
        self._call(_clib.sf_pipeline_get_float(self._p(), int(key), ctypes.byref(out)))
        return out.value

    @property
    def networks(self) -> Network:
        return Network(self.get_int(Info.NETWORKS))

    @property
    def text_tokens(self) -> int:
        return self.get_int(Info.TEXT_TOKENS)

    @property
    def text_hidden(self) -> int:
        return self.get_int(Info.TEXT_HIDDEN)

    @property
    def latent_channels(self) -> int:
        return self.get_int(Info.LATENT_CHANNELS)

    @property
    def default_width(self) -> int:
        return self.get_int(Info.DEFAULT_WIDTH)

    @property
    def default_height(self) -> int:
        return self.get_int(Info.DEFAULT_HEIGHT)

    @property
    def vae_scale(self) -> float:
        return self.get_float(Info.VAE_SCALE)

    @property
    def parameter_count(self) -> int:
        return self.get_int(Info.PARAMETERS)

    @property
    def arena_bytes(self) -> int:
        return self.get_int(Info.ARENA_BYTES)

    def write_pack(self, path: str | os.PathLike[str]) -> None:
        """Writes the weights of the text encoder, UNet and VAE as loaded (their weight type,
        this CPU's GEMM panel layout) to a pack file (sf_pipeline_write_pack) that
        Pipeline.load(..., pack=path) maps and uses in place. Not for inspect_only or
        low_memory pipelines."""
        self._call(_clib.sf_pipeline_write_pack(self._p(), _cstr(os.fspath(path), "path")))

    @property
    def weight_bytes(self) -> int:
        """Bytes the networks' weights take as loaded (SF_INFO_WEIGHT_BYTES): packed
        convolution and linear weights in their WeightType, norms, embeddings. With
        low_memory, those of the networks resident now."""
        return self.get_int(Info.WEIGHT_BYTES)

    @property
    def weight_type(self) -> WeightType:
        """The WeightType the UNet's layers are held in (F32, F16 or Q8; never DEFAULT: the
        checkpoint's type is resolved, so an fp16 checkpoint's default is F16)
        (SF_INFO_WEIGHT_TYPE). BadStateError for a pipeline without a UNet."""
        return WeightType(self.get_int(Info.WEIGHT_TYPE))

    @property
    def inspect_only(self) -> bool:
        """True for a pipeline that was checked, not loaded (Pipeline.inspect): it runs
        nothing but answers the shape queries, weight_bytes, weight_type and estimate_memory."""
        return self._inspect_only

    def estimate_memory(self, prompt: str | None = None, negative_prompt: str | None = None, *,
                        width: int | None = None, height: int | None = None, steps: int | None = None,
                        guidance_scale: float | None = None, seed: int | None = None,
                        sampler: str | Sampler | None = None, karras_sigmas: bool | None = None,
                        clip_skip: int | None = None, batch_count: int | None = None,
                        strength: float | None = None, prediction_type: str | Prediction | None = None,
                        decoder: Literal["vae", "taesd"] | Network | None = None, eta: float | None = None,
                        timestep_spacing: str | TimestepSpacing | None = None,
                prompt_syntax: str | PromptSyntax | None = None, latents: FloatsLike | None = None,
                        prompt_embeds: FloatsLike | None = None, negative_prompt_embeds: FloatsLike | None = None,
                        init_image: ImageLike | None = None) -> MemoryEstimate:
        """The memory a generation with these options (those of txt2img; what counts is the
        size, guidance_scale, init_image, decoder and batch_count, and the prompt may be left
        out) will need on this pipeline as loaded (its weight type, low-memory mode) and with
        its context's thread count (sf_pipeline_estimate_memory), as a MemoryEstimate in
        bytes. Works on an inspected pipeline (Pipeline.inspect), which has read no weight:

            with snapfusion.Pipeline.inspect("models/sd-v1-5", weights="q8") as probe:
                if probe.estimate_memory(width=512, height=512).peak > budget: ...

        The same options give the same estimate on an inspected and on a loaded pipeline. It
        comes from the networks' packed sizes and planned workspaces, not from a measurement.
        Sides that are no multiples of size_multiple are an InvalidArgumentError, a pipeline
        without a UNet or decoder a BadStateError."""
        params = _generation_params(
            prompt=prompt, negative_prompt=negative_prompt, width=width, height=height, steps=steps,
            guidance_scale=guidance_scale, seed=seed, sampler=sampler, karras_sigmas=karras_sigmas,
            clip_skip=clip_skip, batch_count=batch_count, strength=strength, prediction_type=prediction_type,
            decoder=decoder, eta=eta, timestep_spacing=timestep_spacing, prompt_syntax=prompt_syntax, latents=latents,
            prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_prompt_embeds, init_image=init_image)
        figures: list[int] = []
        try:
            out = ctypes.c_int64()
            for what in Memory:  # one figure per call
                self._call(_clib.sf_pipeline_estimate_memory(self._p(), params._h.get(), int(what),
                                                             ctypes.byref(out)))
                figures.append(out.value)
        finally:
            params.close()
        return MemoryEstimate(*figures)

    @property
    def last_macs(self) -> float:
        return self.get_float(Info.LAST_MACS)

    @property
    def last_attention_macs(self) -> float:
        return self.get_float(Info.LAST_ATTENTION_MACS)

    @property
    def size_multiple(self) -> int:
        """Image sides must be multiples of this: the decoder's factor times 2 ** (the UNet's
        down-samplings); 64 for SD-1.x (SF_INFO_SIZE_MULTIPLE)."""
        return self.get_int(Info.SIZE_MULTIPLE)

    @property
    def scale_factor(self) -> int:
        """Image pixels per latent pixel of the pipeline's decoder (the VAE's, else TAESD's;
        8 for SD-1.x) (SF_INFO_SCALE_FACTOR)."""
        return self.get_int(Info.SCALE_FACTOR)

    @property
    def active_runs(self) -> int:
        """Runs in flight on this pipeline now: jobs alive, calls in progress on any thread
        (SF_INFO_ACTIVE_RUNS)."""
        return self.get_int(Info.ACTIVE_RUNS)

    # -- building blocks --

    def tokenize(self, prompt: str) -> TokenIds:
        """CLIP token ids as SD-1.x pipelines make them (BOS, <= 75 tokens, EOS, padding to
        text_tokens). The result is a list with an extra attribute `untruncated`: the
        prompt's token count before truncation."""
        n = self.text_tokens
        ids = (ctypes.c_int32 * n)()
        untruncated = ctypes.c_size_t()
        self._call(_clib.sf_tokenize(self._p(), _cstr(prompt, "prompt"), ids, n, ctypes.byref(untruncated)))
        out = TokenIds(ids)
        out.untruncated = untruncated.value
        return out

    def encode_ids(self, ids: Sequence[int] | Sequence[Sequence[int]], clip_skip: int = 0) -> FloatArray:
        """Text embeddings [batch, tokens, hidden] (flat array('f')) of token ids: one
        sequence or a list of sequences of text_tokens ids each."""
        items: list[Any] = list(ids)
        rows = [items] if items and not hasattr(items[0], "__len__") else [list(r) for r in items]
        tokens = len(rows[0]) if rows else 0
        if any(len(r) != tokens for r in rows):
            raise InvalidArgumentError("encode_ids: rows of different lengths")
        flat = (ctypes.c_int32 * (len(rows) * tokens))(*[int(i) for r in rows for i in r])
        count = len(rows) * tokens * self.text_hidden
        out, cout = _floats_out(count)
        self._call(_clib.sf_encode_ids(self._p(), flat, len(rows), tokens, int(clip_skip), cout, count))
        return out

    def encode_prompt(self, prompt: str, clip_skip: int = 0) -> FloatArray:
        """Text embedding [tokens, hidden] of one prompt (flat array('f'))."""
        count = self.text_tokens * self.text_hidden
        out, cout = _floats_out(count)
        self._call(_clib.sf_encode_prompt(self._p(), _cstr(prompt, "prompt"), int(clip_skip), cout, count))
        return out

    def token_text(self, token_id: int) -> str:
        """The vocabulary entry of a token id in the tokenizer's byte-level form ("cat</w>",
        "<|startoftext|>"). NotFoundError for an id outside the vocabulary."""
        token_id = int(token_id)
        if not -(1 << 31) <= token_id < (1 << 31):
            raise NotFoundError("token_text: id %d is outside the vocabulary" % token_id)
        needed = ctypes.c_size_t()
        self._call(_clib.sf_token_text(self._p(), token_id, None, 0, ctypes.byref(needed)))
        buf = ctypes.create_string_buffer(needed.value)
        self._call(_clib.sf_token_text(self._p(), token_id, buf, len(buf), ctypes.byref(needed)))
        return buf.value.decode("utf-8", "replace")

    def _latent_geometry(self, count: int, shape: tuple[int, ...] | None, height: int | None,
                         width: int | None) -> tuple[int, int, int]:
        """(batch, height, width) of latents NCHW [batch, C, height, width] of `count` floats:
        the sides from the keywords, the buffer's 4-D shape, or the model's default; the batch
        from the count. A count that is no whole batch is passed on as it is: the library
        checks it against batch * C * height * width and says what it expected."""
        if height is None or width is None:
            if shape is not None and len(shape) == 4:
                height, width = shape[2], shape[3]
            else:
                height = height or self.default_height // self.scale_factor
                width = width or self.default_width // self.scale_factor
        per_item = self.latent_channels * height * width
        return max(1, count // per_item) if per_item > 0 else 1, height, width

    def unet_predict(self, latents: FloatsLike, timesteps: float | FloatsLike, text_embeddings: FloatsLike, *,
                     height: int | None = None, width: int | None = None) -> FloatArray:
        """One UNet evaluation. latents NCHW [batch, C, height, width] (height/width from
        the buffer's shape, the keywords, or the model's default); timesteps one number or
        one per batch item; text_embeddings [batch, tokens, hidden]. Returns array('f')
        of the latents' size. Every buffer crosses with its size (sf_unet_predict_v2): one
        of the wrong size is an InvalidArgumentError naming the size expected."""
        lat, n, shape = _floats_in(latents, "latents")
        batch, h, w = self._latent_geometry(n, shape, height, width)
        if isinstance(timesteps, (int, float)):
            timesteps = [float(timesteps)] * batch
        ts, nts, _ = _floats_in(timesteps, "timesteps")
        text, ntext, _ = _floats_in(text_embeddings, "text_embeddings")
        # Tokens per item from the text encoder's width; without a text encoder that width is
        # unknown (SF_INFO_TEXT_HIDDEN), so the prompt length the library makes is assumed.
        # The library checks ntext against batch * tokens * (the UNet's width) either way.
        per = batch * self.text_hidden if self.networks & Network.TEXT_ENCODER else 0
        tokens = max(1, ntext // per) if per > 0 else self.text_tokens
        out, cout = _floats_out(n)
        self._call(_clib.sf_unet_predict_v2(self._p(), lat, n, batch, h, w, ts, nts, text, ntext, tokens, cout,
                                            len(cout)))
        return out

    def decode(self, latents: FloatsLike, *, height: int | None = None, width: int | None = None,
               decoder: Literal["vae", "taesd"] | Network = "vae", unscaled: bool = False,
               raw: bool = False) -> FloatArray:
        """Latents NCHW [batch, C, h, w] -> image NCHW [batch, 3, 8h, 8w] in [-1, 1]
        (array('f')). Latents are in pipeline space unless unscaled=True. Sizes are checked
        by the library (sf_decode_latents_v2)."""
        lat, n, shape = _floats_in(latents, "latents")
        batch, h, w = self._latent_geometry(n, shape, height, width)
        dec = _enum_value(decoder, _DECODERS, "decoder")
        flags = (_LATENTS_UNSCALED if unscaled else 0) | (_IMAGE_RAW if raw else 0)
        count = batch * 3 * (self.scale_factor * h) * (self.scale_factor * w)
        out, cout = _floats_out(count)
        self._call(_clib.sf_decode_latents_v2(self._p(), dec, lat, n, batch, h, w, flags, cout, len(cout)))
        return out

    def encode_image(self, image: FloatsLike, *, height: int | None = None, width: int | None = None,
                     encoder: Literal["vae", "taesd"] | Network = "vae", unscaled: bool = False,
                     raw: bool = False) -> tuple[FloatArray, FloatArray | None]:
        """Image NCHW [batch, 3, height, width] in [-1, 1] -> (mean, logvar) latents
        [batch, C, height/8, width/8] (logvar is None for TAESD). Sizes are checked by the
        library (sf_encode_image_v2)."""
        img, n, shape = _floats_in(image, "image")
        if height is None or width is None:
            if shape is None or len(shape) != 4:
                raise InvalidArgumentError("encode_image: give height and width (or a 4-D array)")
            height, width = shape[2], shape[3]
        per_item = 3 * height * width
        batch = max(1, n // per_item) if per_item > 0 else 1
        enc = _enum_value(encoder, _ENCODERS, "encoder")
        flags = (_LATENTS_UNSCALED if unscaled else 0) | (_IMAGE_RAW if raw else 0)
        count = batch * self.latent_channels * (height // self.scale_factor) * (width // self.scale_factor)
        mean, cmean = _floats_out(count)
        logvar: FloatArray | None = None
        clogvar: ctypes.Array[ctypes.c_float] | None = None
        if enc != Network.TAESD_ENCODER:
            logvar, clogvar = _floats_out(count)
        self._call(_clib.sf_encode_image_v2(self._p(), enc, img, n, batch, height, width, flags, cmean, len(cmean),
                                            clogvar, 0 if clogvar is None else len(clogvar)))
        return mean, logvar

    # -- generation --

    def txt2img(self, prompt: str | None = None, negative_prompt: str | None = None, *,
                width: int | None = None, height: int | None = None, steps: int | None = None,
                guidance_scale: float | None = None, seed: int | None = None, sampler: str | Sampler | None = None,
                karras_sigmas: bool | None = None, clip_skip: int | None = None, batch_count: int | None = None,
                strength: float | None = None, prediction_type: str | Prediction | None = None,
                decoder: Literal["vae", "taesd"] | Network | None = None, eta: float | None = None,
                timestep_spacing: str | TimestepSpacing | None = None,
                prompt_syntax: str | PromptSyntax | None = None, latents: FloatsLike | None = None,
                prompt_embeds: FloatsLike | None = None, negative_prompt_embeds: FloatsLike | None = None,
                init_image: ImageLike | None = None, progress: ProgressCallback | None = None) -> Image:
        """Generates one image. The options mirror the C parameters (None: the library's
        default): width, height (multiples of size_multiple), steps, guidance_scale, seed
        (SEED_RANDOM draws one: image.seed tells which), sampler ("ddim", "pndm",
        "euler", "euler_a", "dpm++2m", "lcm"; None = the folder's scheduler), karras_sigmas,
        clip_skip, prediction_type ("epsilon", "v_prediction", "sample"), decoder
        ("vae"/"taesd"), timestep_spacing ("leading", "trailing", "linspace"), eta, prompt_syntax
        ("plain": diffusers, the default; "a1111": (word:1.3) weights, BREAK, long prompts), latents,
        prompt_embeds, negative_prompt_embeds, init_image + strength (img2img; the image's
        size is the default width/height). batch_count must be 1 (or None): several images
        are txt2img_batch's.
        progress(step, total) is called after every step; returning True stops the run
        (CancelledError). An exception it raises is re-raised here."""
        params = _generation_params(
            prompt=prompt, negative_prompt=negative_prompt, width=width, height=height, steps=steps,
            guidance_scale=guidance_scale, seed=seed, sampler=sampler, karras_sigmas=karras_sigmas,
            clip_skip=clip_skip, batch_count=batch_count, strength=strength, prediction_type=prediction_type,
            decoder=decoder, eta=eta, timestep_spacing=timestep_spacing, prompt_syntax=prompt_syntax, latents=latents,
            prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_prompt_embeds, init_image=init_image)
        sink, thunk = _progress_thunk(progress)
        out = ctypes.POINTER(_c.Image)()
        try:
            st = _clib.sf_generate(self._p(), params._h.get(), thunk, None, ctypes.byref(out))
        finally:
            params.close()
        self._call(st, sink)
        return Image(out)

    def txt2img_batch(self, prompt: str | None = None, negative_prompt: str | None = None, *, batch_count: int,
                      width: int | None = None, height: int | None = None, steps: int | None = None,
                      guidance_scale: float | None = None, seed: int | None = None,
                      sampler: str | Sampler | None = None, karras_sigmas: bool | None = None,
                      clip_skip: int | None = None, strength: float | None = None,
                      prediction_type: str | Prediction | None = None,
                      decoder: Literal["vae", "taesd"] | Network | None = None, eta: float | None = None,
                      timestep_spacing: str | TimestepSpacing | None = None,
                prompt_syntax: str | PromptSyntax | None = None, latents: FloatsLike | None = None,
                      prompt_embeds: FloatsLike | None = None, negative_prompt_embeds: FloatsLike | None = None,
                      init_image: ImageLike | None = None, progress: ProgressCallback | None = None) -> list[Image]:
        """batch_count images from consecutive seeds S, S+1, ... (S = seed; with SEED_RANDOM
        one drawn S; images[i].seed says which), made one after another (sf_generate_batch),
        in seed order: images[i] equals txt2img(seed=S + i). The other options are txt2img's.
        progress(step, total) sees the steps of the whole batch (total = batch_count * steps).
        On a failure (a stop included) the SnapFusionError raised carries the images finished
        before it in `.images`."""
        count = int(batch_count)
        params = _generation_params(
            prompt=prompt, negative_prompt=negative_prompt, width=width, height=height, steps=steps,
            guidance_scale=guidance_scale, seed=seed, sampler=sampler, karras_sigmas=karras_sigmas,
            clip_skip=clip_skip, batch_count=count, strength=strength, prediction_type=prediction_type,
            decoder=decoder, eta=eta, timestep_spacing=timestep_spacing, prompt_syntax=prompt_syntax, latents=latents,
            prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_prompt_embeds, init_image=init_image)
        sink, thunk = _progress_thunk(progress)
        capacity = max(count, 1)  # the library checks batch_count against it (and rejects < 1)
        outs = (ctypes.POINTER(_c.Image) * capacity)()
        made = ctypes.c_size_t()
        try:
            st = _clib.sf_generate_batch(self._p(), params._h.get(), thunk, None, outs, capacity,
                                         ctypes.byref(made))
        finally:
            params.close()
        # The finished images are ours whatever the status: owned before anything can raise.
        images = [Image(ctypes.cast(outs[i], ctypes.POINTER(_c.Image))) for i in range(min(made.value, capacity))]
        try:
            self._call(st, sink)
        except SnapFusionError as e:
            e.images = images
            raise
        return images

    def img2img(self, init_image: ImageLike, prompt: str | None = None, negative_prompt: str | None = None, *,
                strength: float = 0.8, width: int | None = None, height: int | None = None,
                steps: int | None = None, guidance_scale: float | None = None, seed: int | None = None,
                sampler: str | Sampler | None = None, karras_sigmas: bool | None = None,
                clip_skip: int | None = None, batch_count: int | None = None,
                prediction_type: str | Prediction | None = None,
                decoder: Literal["vae", "taesd"] | Network | None = None, eta: float | None = None,
                timestep_spacing: str | TimestepSpacing | None = None,
                prompt_syntax: str | PromptSyntax | None = None, latents: FloatsLike | None = None,
                prompt_embeds: FloatsLike | None = None, negative_prompt_embeds: FloatsLike | None = None,
                progress: ProgressCallback | None = None) -> Image:
        """txt2img starting from an image (snapfusion.Image, PIL image, HxWx3 uint8 array,
        or (bytes, width, height)); its size sets width/height (both multiples of
        size_multiple; an explicit width/height must equal it). txt2img(init_image=...) and
        generate(init_image=...) do the same."""
        return self.txt2img(
            prompt, negative_prompt, init_image=init_image, strength=strength, width=width, height=height,
            steps=steps, guidance_scale=guidance_scale, seed=seed, sampler=sampler, karras_sigmas=karras_sigmas,
            clip_skip=clip_skip, batch_count=batch_count, prediction_type=prediction_type, decoder=decoder,
            eta=eta, timestep_spacing=timestep_spacing, prompt_syntax=prompt_syntax, latents=latents, prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds, progress=progress)

    def generate(self, prompt: str | None = None, negative_prompt: str | None = None, *,
                 width: int | None = None, height: int | None = None, steps: int | None = None,
                 guidance_scale: float | None = None, seed: int | None = None, sampler: str | Sampler | None = None,
                 karras_sigmas: bool | None = None, clip_skip: int | None = None, batch_count: int | None = None,
                 strength: float | None = None, prediction_type: str | Prediction | None = None,
                 decoder: Literal["vae", "taesd"] | Network | None = None, eta: float | None = None,
                 timestep_spacing: str | TimestepSpacing | None = None,
                prompt_syntax: str | PromptSyntax | None = None, latents: FloatsLike | None = None,
                 prompt_embeds: FloatsLike | None = None, negative_prompt_embeds: FloatsLike | None = None,
                 init_image: ImageLike | None = None) -> Job:
        """Starts a step-wise generation (same options as txt2img) and returns its Job:

            job = pipe.generate("a cat", steps=8, seed=3)
            for step in job:            # one denoising step per iteration
                print(step.index, step.total); step.preview()
            job.image.save("cat.png")   # decoded when the iteration ends

        job.seed is the seed it draws its noise from (the one drawn for SEED_RANDOM), and
        job.image_f32() the final image as floats."""
        params = _generation_params(
            prompt=prompt, negative_prompt=negative_prompt, width=width, height=height, steps=steps,
            guidance_scale=guidance_scale, seed=seed, sampler=sampler, karras_sigmas=karras_sigmas,
            clip_skip=clip_skip, batch_count=batch_count, strength=strength, prediction_type=prediction_type,
            decoder=decoder, eta=eta, timestep_spacing=timestep_spacing, prompt_syntax=prompt_syntax, latents=latents,
            prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_prompt_embeds, init_image=init_image)
        out = ctypes.POINTER(_c.Job)()
        try:
            st = _clib.sf_job_start(self._p(), params._h.get(), ctypes.byref(out))
        finally:
            params.close()
        self._call(st)
        return Job(self, out, _clib.sf_job_latent_count(out))

    def cancel(self) -> None:
        """Thread-safe: cancels whatever the pipeline is running now."""
        ptr = self._h.ptr
        if ptr is not None:
            _clib.sf_pipeline_cancel(ptr)

    def __repr__(self) -> str:
        return "<snapfusion.Pipeline %r%s>" % (self.path, " closed" if self.closed else "")


class TokenIds(list[int]):
    """Token ids (a list) with the untruncated token count of the prompt."""

    untruncated: int = 0


class Step:
    """One finished denoising step of a Job: index (1-based, = steps done) and total.
    latents() and preview() show the job's current state."""

    __slots__ = ("job", "index", "total")

    def __init__(self, job: Job, index: int, total: int) -> None:
        self.job, self.index, self.total = job, index, total

    def latents(self) -> FloatArray:
        return self.job.latents()

    def preview(self) -> Image:
        return self.job.preview()

    def __repr__(self) -> str:
        return "<snapfusion.Step %d/%d>" % (self.index, self.total)


class Job:
    """A running generation (Pipeline.generate). Iterate it for one Step per denoising
    step; the decoded image is `image` once the iteration ends (or call finish())."""

    def __init__(self, pipeline: Pipeline, ptr: Any, latent_count: int) -> None:
        self.pipeline = pipeline
        self.image: Image | None = None
        self._latent_count = latent_count
        self._h = _Handle(ptr, _clib.sf_job_destroy, "job", parent=pipeline._h)

    def _j(self) -> Any:
        return self._h.get("job")

    def _call(self, status: int) -> None:
        self.pipeline._call(status)

    @property
    def steps_done(self) -> int:
        return int(_clib.sf_job_steps_done(self._j()))

    @property
    def steps_total(self) -> int:
        return int(_clib.sf_job_steps_total(self._j()))

    @property
    def done(self) -> bool:
        return self.steps_done >= self.steps_total

    def step(self) -> Step:
        """Runs one step and returns its Step (BadStateError when all are done)."""
        self._call(_clib.sf_job_step(self._j()))
        return Step(self, self.steps_done, self.steps_total)

    def __iter__(self) -> Iterator[Step]:
        while not self.done:
            yield self.step()
        if self.image is None:
            self.finish()

    def latents(self) -> FloatArray:
        """Current latents NCHW [1, C, H/8, W/8] as a flat array('f')."""
        n = self._latent_count
        out, cout = _floats_out(n)
        self._call(_clib.sf_job_latents(self._j(), cout, n))
        return out

    @property
    def seed(self) -> int:
        """The seed the job draws its noise from: the seed asked for, or the one drawn for
        SEED_RANDOM (unsigned 64-bit)."""
        return int(_clib.sf_job_seed(self._j()))

    def image_f32(self, layout: Layout | Literal["nchw", "nhwc"] = "nchw") -> FloatArray:
        """The final image as float32 in [0, 1] before 8-bit rounding ((x/2 + 0.5) clamped, as
        diffusers' postprocess), a flat array('f') of 3*H*W values: NCHW [3, H, W] (diffusers'
        output_type "pt") or NHWC [H, W, 3] ("np"); e.g. memoryview(a).cast("B").cast("f",
        (3, h, w)) shapes it without numpy. After the image is made (finish() or the end of
        the iteration); BadStateError before."""
        lay = _enum_value(layout, _LAYOUTS, "layout")
        n = int(_clib.sf_job_image_count(self._j()))
        out, cout = _floats_out(n)
        self._call(_clib.sf_job_image_f32(self._j(), lay, cout, len(cout)))
        return out

    def preview(self) -> Image:
        """A preview Image of the current latents (TAESD if loaded, else a 1/8-size
        linear projection)."""
        out = ctypes.POINTER(_c.Image)()
        self._call(_clib.sf_job_preview(self._j(), ctypes.byref(out)))
        return Image(out)

    def finish(self) -> Image:
        """Runs the remaining steps, decodes, and returns (and keeps in .image) the image."""
        if self.image is None:
            out = ctypes.POINTER(_c.Image)()
            self._call(_clib.sf_job_finish(self._j(), ctypes.byref(out)))
            self.image = Image(out)
        return self.image

    def cancel(self) -> None:
        """Thread-safe: the running or next step raises CancelledError."""
        ptr = self._h.ptr
        if ptr is not None:
            _clib.sf_job_cancel(ptr)

    def close(self) -> None:
        self._h.close()

    def __enter__(self) -> Job:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---- random numbers -----------------------------------------------------------------------------------

class Rng:
    """PyTorch's CPU generator: Rng(seed).randn(n) == torch.randn(n, generator=
    torch.Generator().manual_seed(seed)). kind "cpu" (the AVX2 kernel x86 torch uses) or
    "scalar" (torch's portable kernel)."""

    def __init__(self, seed: int = 0, kind: Literal["cpu", "torch", "scalar", "cpu_scalar"] | int = "cpu") -> None:
        k = _RNG_KINDS[kind] if isinstance(kind, str) else int(kind)
        out = ctypes.POINTER(_c.Rng)()
        _check(_clib.sf_rng_create(k, int(seed) % (1 << 64), ctypes.byref(out)))
        self._h = _Handle(out, _clib.sf_rng_destroy, "rng")

    def randn(self, n: int) -> FloatArray:
        out, cout = _floats_out(n)
        _check(_clib.sf_rng_randn(self._h.get(), cout, n))
        return out

    def randn_f64(self, n: int) -> FloatArray:
        out, cout = _doubles_out(n)
        _check(_clib.sf_rng_randn_f64(self._h.get(), cout, n))
        return out

    def rand(self, n: int) -> FloatArray:
        out, cout = _floats_out(n)
        _check(_clib.sf_rng_rand(self._h.get(), cout, n))
        return out

    def close(self) -> None:
        self._h.close()

    def __enter__(self) -> Rng:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---- schedules ------------------------------------------------------------------------------------------

class Schedule:
    """A sampler on its own (diffusers' arithmetic), for hand-written denoising loops."""

    def __init__(self, sampler: str | Sampler = "default", config_json: str | Mapping[str, Any] | None = None, *,
                 prediction_type: str | Prediction | None = None,
                 timestep_spacing: str | TimestepSpacing | None = None, karras_sigmas: bool | None = None) -> None:
        if isinstance(config_json, Mapping):
            config_json = json.dumps(dict(config_json))
        overrides = Params({k: v for k, v in {
            Param.PREDICTION_TYPE: _enum_value(prediction_type, _PREDICTIONS, "prediction type"),
            Param.TIMESTEP_SPACING: _enum_value(timestep_spacing, _SPACINGS, "timestep spacing"),
            Param.KARRAS_SIGMAS: None if karras_sigmas is None else int(bool(karras_sigmas))}.items()
            if v is not None})
        out = ctypes.POINTER(_c.Schedule)()
        st = _clib.sf_schedule_create(_sampler_value(sampler), _cstr(config_json, "config_json"), overrides._h.get(),
                                      ctypes.byref(out))
        overrides.close()
        _check(st)
        self._h = _Handle(out, _clib.sf_schedule_destroy, "schedule")
        self._count: int | None = None

    def _s(self) -> Any:
        return self._h.get("schedule")

    def set_steps(self, steps: int, latent_count: int) -> None:
        _check(_clib.sf_schedule_set_steps(self._s(), int(steps), int(latent_count)))
        self._count = int(latent_count)

    @property
    def evaluations(self) -> int:
        return int(_clib.sf_schedule_evaluations(self._s()))

    def timestep(self, i: int) -> float:
        return float(_clib.sf_schedule_timestep(self._s(), int(i)))

    @property
    def timesteps(self) -> list[float]:
        return [self.timestep(i) for i in range(self.evaluations)]

    def sigmas(self) -> FloatArray:
        n = ctypes.c_size_t()
        _check(_clib.sf_schedule_sigmas(self._s(), None, 0, ctypes.byref(n)))
        out, cout = _floats_out(n.value)
        _check(_clib.sf_schedule_sigmas(self._s(), cout, n.value, ctypes.byref(n)))
        return out

    @property
    def init_noise_sigma(self) -> float:
        return float(_clib.sf_schedule_init_noise_sigma(self._s()))

    def scale_input(self, i: int, x: FloatsLike) -> FloatArray:
        buf, n, _ = _floats_in(x, "x")
        out, cout = _floats_out(n)
        _check(_clib.sf_schedule_scale_input(self._s(), int(i), buf, cout, n))
        return out

    def step_needs_noise(self, i: int) -> bool:
        return bool(_clib.sf_schedule_step_needs_noise(self._s(), int(i)))

    def step(self, i: int, model_output: FloatsLike, sample: _FloatsT,
             noise: FloatsLike | None = None) -> _FloatsT | FloatArray:
        """The sampler's update for evaluation i. sample is updated in place, and returned,
        when it is a writable float32 buffer (array('f'), numpy float32); otherwise the
        updated sample is a new array('f')."""
        mo, n, _ = _floats_in(model_output, "model_output")
        target = _writable_f32(sample)
        result: _FloatsT | FloatArray = sample
        if target is None:
            buf, m, _ = _floats_in(sample, "sample")
            copy = array.array("f", bytes(buf))
            result = copy
            target = (ctypes.c_float * m).from_buffer(copy)
        if len(target) != n:
            raise InvalidArgumentError("schedule step: %d model outputs for %d sample values" % (n, len(target)))
        nz = None
        if noise is not None:
            nz, m, _ = _floats_in(noise, "noise")
            if m != n:  # the C call takes one count for all three buffers
                raise InvalidArgumentError("schedule step: %d noise values for %d sample values" % (m, n))
        _check(_clib.sf_schedule_step(self._s(), int(i), mo, target, n, nz))
        del target
        return result

    def begin_index(self, strength: float) -> int:
        """img2img from the building blocks: after set_steps, the evaluation the loop starts
        at for `strength` in [0, 1] (diffusers' StableDiffusionImg2ImgPipeline.get_timesteps).
        Make the starting latents with add_noise(begin, image_latents, noise), then step
        i = begin, begin + 1, ... InvalidArgumentError when strength leaves no step."""
        if self._count is None:
            raise BadStateError("begin_index: call set_steps first")
        begin = int(_clib.sf_schedule_begin_index(self._s(), float(strength)))
        if begin < 0:
            raise InvalidArgumentError(_message() or "begin_index: strength %g leaves no step" % strength)
        return begin

    def add_noise(self, i: int, original: FloatsLike, noise: FloatsLike) -> FloatArray:
        """The scheduler's add_noise(original, noise, timestep of evaluation i) as a new
        array('f'); for DDIM sqrt(acp[t]) * original + sqrt(1 - acp[t]) * noise, with t =
        timestep(i) and acp = alphas_cumprod."""
        orig, n, _ = _floats_in(original, "original")
        nz, m, _ = _floats_in(noise, "noise")
        if m != n:  # the C call takes one count for both
            raise InvalidArgumentError("add_noise: %d noise values for %d original values" % (m, n))
        out, cout = _floats_out(n)
        _check(_clib.sf_schedule_add_noise(self._s(), int(i), orig, nz, cout, n))
        return out

    def get_table(self, table: ScheduleTable | Literal["betas", "alphas_cumprod"]) -> FloatArray:
        """A table of the training schedule (num_train_timesteps float32 values, as torch
        holds them)."""
        t = _enum_value(table, _TABLES, "schedule table")
        n = ctypes.c_size_t()
        _check(_clib.sf_schedule_get_table(self._s(), t, None, 0, ctypes.byref(n)))
        out, cout = _floats_out(n.value)
        _check(_clib.sf_schedule_get_table(self._s(), t, cout, len(cout), ctypes.byref(n)))
        return out

    @property
    def betas(self) -> FloatArray:
        return self.get_table(ScheduleTable.BETAS)

    @property
    def alphas_cumprod(self) -> FloatArray:
        return self.get_table(ScheduleTable.ALPHAS_CUMPROD)

    @property
    def final_alpha_cumprod(self) -> float:
        """1 with set_alpha_to_one, else alphas_cumprod[0] (DDIM's value for the last step)."""
        return float(_clib.sf_schedule_final_alpha_cumprod(self._s()))

    def close(self) -> None:
        self._h.close()

    def __enter__(self) -> Schedule:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
