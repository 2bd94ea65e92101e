"""Python bindings for libsnapfusion (ctypes; no compiled extension).

    import snapfusion
    with snapfusion.Pipeline.load("models/tiny-sd", threads=4) as pipe:
        image = pipe.txt2img("a photo of an astronaut riding a horse", steps=8, seed=1)
        image.save("astronaut.png")

The library is found through $SNAPFUSION_LIBRARY, next to this package, the system loader
(libsnapfusion.so.1), pkg-config, $CMAKE_PREFIX_PATH or the usual install prefixes (see
snapfusion._lib.load); its ABI version is checked at import.
"""
import array
import collections
import ctypes
import enum
import json
import logging
import os
import threading
import weakref

from . import _lib as _c
from .errors import (BackendError, BadModelError, BadStateError, CancelledError, FileIOError, InternalError,
                     InvalidArgumentError, NotFoundError, OutOfMemoryError, SnapFusionError, UnsupportedError,
                     error_for)

__all__ = [
    "Context", "Pipeline", "Job", "Step", "Image", "Params", "Rng", "Schedule",
    "Param", "Network", "Sampler", "Prediction", "TimestepSpacing", "LogLevel", "Info",
    "SnapFusionError", "InvalidArgumentError", "FileIOError", "BadModelError", "UnsupportedError",
    "OutOfMemoryError", "CancelledError", "BackendError", "BadStateError", "InternalError", "NotFoundError",
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


_FORMAT_TEXT, _FORMAT_JSON = 0, 1
_LATENTS_UNSCALED, _IMAGE_RAW = 1, 2
_RNG_KINDS = {"cpu": 0, "torch": 0, "scalar": 1, "cpu_scalar": 1}
_PREDICTIONS = {"epsilon": Prediction.EPSILON, "v_prediction": Prediction.V, "v": Prediction.V,
                "sample": Prediction.SAMPLE}
_SPACINGS = {"leading": TimestepSpacing.LEADING, "trailing": TimestepSpacing.TRAILING,
             "linspace": TimestepSpacing.LINSPACE}
_DECODERS = {"vae": Network.VAE_DECODER, "taesd": Network.TAESD_DECODER}
_ENCODERS = {"vae": Network.VAE_ENCODER, "taesd": Network.TAESD_ENCODER}
_COMPONENT_NAMES = {"text_encoder": Network.TEXT_ENCODER, "unet": Network.UNET,
                    "vae_decoder": Network.VAE_DECODER, "vae_encoder": Network.VAE_ENCODER,
                    "taesd_decoder": Network.TAESD_DECODER, "taesd_encoder": Network.TAESD_ENCODER}


# ---- small module-level functions -----------------------------------------------------------------

def version():
    """The loaded library's "MAJOR.MINOR.PATCH"."""
    return _clib.sf_version().decode()


def version_number():
    return _clib.sf_version_number()


def abi_version():
    return _clib.sf_abi_version()


def status_string(status):
    return _clib.sf_status_string(int(status)).decode()


def sampler_names():
    """The sampler names the library knows ("ddim", "pndm", ...), in enum order."""
    names = []
    for s in Sampler:
        n = _clib.sf_sampler_name(int(s))
        if n:
            names.append(n.decode())
    return names


def _sampler_value(sampler):
    if sampler is None:
        return None
    if isinstance(sampler, str):
        if sampler.lower() == "default":
            return Sampler.DEFAULT
        v = _clib.sf_sampler_from_name(sampler.encode())
        if v == Sampler.DEFAULT:
            raise InvalidArgumentError("unknown sampler %r (known: %s)" % (sampler, ", ".join(sampler_names())))
        return v
    return int(sampler)


def _enum_value(value, table, what):
    if value is None or not isinstance(value, str):
        return value if value is None else int(value)
    try:
        return int(table[value.lower()])
    except KeyError:
        raise InvalidArgumentError("unknown %s %r (known: %s)" % (what, value, ", ".join(sorted(table))))


# ---- native handle ownership -------------------------------------------------------------------------

_live = collections.Counter()
_live_lock = threading.Lock()


def live_handles():
    """Native objects currently alive, by kind ({"pipeline": 1, ...}); zero counts omitted.
    Meant for tests and leak hunting."""
    with _live_lock:
        return {k: v for k, v in _live.items() if v}


class _Handle(object):
    """Owns one native pointer. Children (a pipeline of a context, a job of a pipeline)
    keep their parent handle alive, and closing a parent closes its children first, so a
    native object is never destroyed before one that borrows it, whatever order Python
    collects the wrappers in."""

    __slots__ = ("ptr", "kind", "parent", "children", "keep", "_destroy", "__weakref__")

    def __init__(self, ptr, destroy, kind, parent=None, keep=None):
        self.ptr = ptr
        self.kind = kind
        self._destroy = destroy
        self.parent = parent
        self.keep = keep  # Python objects the native side points at (callbacks)
        self.children = weakref.WeakSet()
        if parent is not None:
            parent.children.add(self)
        with _live_lock:
            _live[kind] += 1

    def get(self, what=None):
        if self.ptr is None:
            raise BadStateError("the %s is closed" % (what or self.kind))
        return self.ptr

    def close(self):
        ptr = self.ptr
        if ptr is None:
            return
        for child in list(self.children):
            child.close()
        self.ptr = None
        self._destroy(ptr)
        with _live_lock:
            _live[self.kind] -= 1
        self.parent = None
        self.keep = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: module globals may be gone
            pass


def _message(ctx_handle=None):
    msg = b""
    if ctx_handle is not None and ctx_handle.ptr is not None:
        msg = _clib.sf_context_last_error(ctx_handle.ptr) or b""
    if not msg:
        msg = _clib.sf_last_error() or b""
    return msg.decode("utf-8", "replace")


def _check(status, ctx_handle=None):
    if status != 0:
        msg = _message(ctx_handle) or status_string(status)
        raise error_for(status, msg)


class _CallbackSink(object):
    """Where a callback run by C leaves an exception: exceptions never cross C frames;
    the binding re-raises them once the C call has returned."""

    __slots__ = ("pending",)

    def __init__(self):
        self.pending = None

    def store(self, exc):
        if self.pending is None:
            self.pending = exc

    def reraise(self):
        exc, self.pending = self.pending, None
        if exc is not None:
            raise exc


# ---- float buffers ------------------------------------------------------------------------------------

_F32_FORMATS = ("f", "<f", "=f", "@f")


def _is_numpy(obj):
    return type(obj).__module__ == "numpy"


def _flatten(obj, out):
    if isinstance(obj, (int, float)):
        out.append(float(obj))
    else:
        for x in obj:
            _flatten(x, out)


def _floats_in(obj, name="values"):
    """Any float data (array.array('f'), bytes of float32, memoryview, numpy array, nested
    sequences, a number) -> (ctypes float array, count, shape or None)."""
    if _is_numpy(obj):
        import numpy
        obj = numpy.ascontiguousarray(obj, dtype=numpy.float32)
    if isinstance(obj, (int, float)):
        obj = [obj]
    try:
        mv = memoryview(obj)
    except TypeError:
        mv = None
    if mv is not None:
        shape = tuple(mv.shape) if mv.ndim > 1 else None
        if mv.format in _F32_FORMATS or (mv.format in ("B", "b", "c") and mv.nbytes % 4 == 0):
            n = mv.nbytes // 4
            data = mv if mv.c_contiguous else mv.tobytes()
            return (ctypes.c_float * n).from_buffer_copy(data), n, shape
        flat = array.array("f")
        _flatten(mv.tolist(), flat)
        return (ctypes.c_float * len(flat)).from_buffer(flat), len(flat), shape
    flat = array.array("f")
    try:
        _flatten(obj, flat)
    except TypeError:
        raise TypeError("%s: expected float data (array, buffer, sequence), got %s" % (name, type(obj).__name__))
    return (ctypes.c_float * len(flat)).from_buffer(flat), len(flat), None


def _floats_out(n, typecode="f"):
    arr = array.array(typecode, bytes(n * (4 if typecode == "f" else 8)))
    ctype = ctypes.c_float if typecode == "f" else ctypes.c_double
    return arr, (ctype * n).from_buffer(arr)


def _writable_f32(obj):
    """A ctypes view sharing memory with obj when obj is a writable, contiguous float32
    buffer; else None."""
    try:
        mv = memoryview(obj)
    except TypeError:
        return None
    if mv.readonly or not mv.c_contiguous or mv.format not in _F32_FORMATS:
        return None
    return (ctypes.c_float * (mv.nbytes // 4)).from_buffer(obj)


def _cstr(s, name):
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

class Params(object):
    """An sf_params bag. Most code never needs it: Pipeline.load, txt2img and generate take
    keyword arguments. Keys are Param values."""

    _INT_KEYS = {Param.THREADS, Param.LOG_LEVEL, Param.RANDOM_WEIGHTS, Param.RANDOM_SEED, Param.INSPECT_ONLY,
                 Param.COMPONENTS, Param.WIDTH, Param.HEIGHT, Param.STEPS, Param.SEED, Param.SAMPLER,
                 Param.KARRAS_SIGMAS, Param.CLIP_SKIP, Param.BATCH_COUNT, Param.PREDICTION_TYPE, Param.DECODER,
                 Param.TIMESTEP_SPACING}
    _FLOAT_KEYS = {Param.GUIDANCE_SCALE, Param.STRENGTH, Param.ETA}
    _STRING_KEYS = {Param.VARIANT, Param.TAESD_PATH, Param.TOKENIZER_PATH, Param.PROMPT, Param.NEGATIVE_PROMPT}
    _ARRAY_KEYS = {Param.LATENTS, Param.PROMPT_EMBEDS, Param.NEGATIVE_EMBEDS}

    def __init__(self, values=None):
        out = ctypes.POINTER(_c.Params)()
        _check(_clib.sf_params_create(ctypes.byref(out)))
        self._h = _Handle(out, _clib.sf_params_destroy, "params")
        for key, value in (values or {}).items():
            self.set(key, value)

    def set(self, key, value):
        """Sets a key from a Python value of the key's type (None unsets it)."""
        key = Param(key)
        p = self._h.get()
        if value is None:
            _check(_clib.sf_params_unset(p, key))
        elif key in self._ARRAY_KEYS:
            buf, n, _ = _floats_in(value, key.name.lower())
            _check(_clib.sf_params_set_floats(p, key, buf, n))
        elif key in self._STRING_KEYS:
            _check(_clib.sf_params_set_string(p, key, _cstr(value, key.name.lower())))
        elif key in self._FLOAT_KEYS:
            _check(_clib.sf_params_set_float(p, key, float(value)))
        else:
            v = int(value)
            if key == Param.SEED:
                if not -(1 << 63) <= v < (1 << 64):
                    raise InvalidArgumentError("seed %d does not fit 64 bits" % v)
                if v >= 1 << 63:  # the library reads the seed as unsigned
                    v -= 1 << 64
            _check(_clib.sf_params_set_int(p, key, v))

    def set_int(self, key, value):
        _check(_clib.sf_params_set_int(self._h.get(), int(key), int(value)))

    def set_float(self, key, value):
        _check(_clib.sf_params_set_float(self._h.get(), int(key), float(value)))

    def set_string(self, key, value):
        _check(_clib.sf_params_set_string(self._h.get(), int(key), _cstr(value, "value")))

    def set_floats(self, key, values):
        buf, n, _ = _floats_in(values)
        _check(_clib.sf_params_set_floats(self._h.get(), int(key), buf, n))

    def set_init_image(self, image):
        rgb, width, height = _rgb_of(image)
        buf = (ctypes.c_uint8 * len(rgb)).from_buffer_copy(rgb)
        _check(_clib.sf_params_set_init_image(self._h.get(), buf, width, height, width * 3))

    def unset(self, key):
        _check(_clib.sf_params_unset(self._h.get(), int(key)))

    def get(self, key, default=None):
        """The value of a set key (int, float or str), default when unset."""
        key = Param(key)
        p = self._h.get()
        if key in self._STRING_KEYS:
            out, getter, conv = ctypes.c_char_p(), _clib.sf_params_get_string, lambda v: v.value.decode("utf-8")
        elif key in self._FLOAT_KEYS:
            out, getter, conv = ctypes.c_double(), _clib.sf_params_get_float, lambda v: v.value
        elif key in self._ARRAY_KEYS:
            raise InvalidArgumentError("%s is write-only" % key.name)
        else:
            out, getter, conv = ctypes.c_int64(), _clib.sf_params_get_int, lambda v: v.value
        st = getter(p, key, ctypes.byref(out))
        if st == NotFoundError.status:
            return default
        _check(st)
        return conv(out)

    def close(self):
        self._h.close()



# ---- context -----------------------------------------------------------------------------------------

_PY_LEVELS = {0: logging.DEBUG, 1: logging.INFO, 2: logging.WARNING, 3: logging.ERROR}


def _sf_level_for(py_level):
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

    def __init__(self):
        self.messages = []

    def take(self):
        messages, self.messages = self.messages, []
        return messages


class Context(object):
    """Threads, logging and error state shared by the pipelines made with it.

    log: None forwards the library's messages to the `snapfusion` logger (level from
    log_level, else from the logger's effective level); a callable(level: LogLevel,
    message: str) receives them instead; False turns logging off.
    A failure is reported once, as the exception the failing call raises: its ERROR-level
    log message, which says the same, is not delivered to the logger or the callable.
    Closing a context closes the pipelines made with it."""

    def __init__(self, threads=None, log_level=None, log=None):
        out = ctypes.POINTER(_c.Context)()
        _check(_clib.sf_context_create(ctypes.byref(out)))
        self._sink = _CallbackSink()
        self._held = _HeldErrors()
        self._deliver = None
        self._h = _Handle(out, _clib.sf_context_destroy, "context")
        try:
            if threads is not None:
                self.threads = threads
            if log is not False:
                self._install_log(log)
                if log_level is None:
                    log_level = _sf_level_for(_logger.getEffectiveLevel()) if log is None else LogLevel.INFO
            if log_level is not None:
                self.log_level = log_level
        except BaseException:
            self.close()
            raise

    def _install_log(self, callback):
        sink = self._sink
        held = self._held
        logger = _logger

        def deliver(level, text):
            try:
                if callback is None:
                    logger.log(_PY_LEVELS.get(level, logging.ERROR), "%s", text)
                else:
                    callback(LogLevel(level) if level in (0, 1, 2, 3) else level, text)
            except BaseException as e:  # never unwind through C
                sink.store(e)

        def on_log(_user, level, message):
            text = message.decode("utf-8", "replace")
            if level >= LogLevel.ERROR:
                # Why errors are held rather than logged: libsnapfusion logs every failure at
                # ERROR level with the very message it keeps as the context's last error and
                # returns a failing status (src/core/context.c), and the binding raises that
                # message as the call's exception. Logging it too would show each failure twice
                # (e.g. once through logging.basicConfig, once in the traceback), so _call drops
                # the message its exception carries and delivers any other ERROR message.
                held.messages.append(text)
            else:
                deliver(level, text)

        thunk = _c.LOG_FN(on_log)
        _check(_clib.sf_context_set_log_callback(self._h.get(), thunk, None), self._h)
        self._h.keep = thunk  # the C side points at it for as long as the context lives
        self._deliver = deliver

    def _call(self, status, callback_sink=None):
        """After a C call on this context (or a pipeline of it): raises, once, what went wrong.
        callback_sink holds an exception a progress callback raised during the call; it wins
        over the failure it caused (and that failure's message is not logged either)."""
        held = self._held.take()
        if held:
            failed = status != 0 or (callback_sink is not None and callback_sink.pending is not None)
            duplicate = _message(self._h) if failed else None
            for text in held:
                if text == duplicate:
                    duplicate = None  # one message per failure
                elif self._deliver is not None:
                    self._deliver(LogLevel.ERROR, text)
        if callback_sink is not None:
            callback_sink.reraise()
        self._sink.reraise()
        _check(status, self._h)

    def _get_int(self, key):
        out = ctypes.c_int64()
        self._call(_clib.sf_context_get_int(self._h.get(), key, ctypes.byref(out)))
        return out.value

    @property
    def threads(self):
        return self._get_int(Param.THREADS)

    @threads.setter
    def threads(self, n):
        self._call(_clib.sf_context_set_int(self._h.get(), Param.THREADS, int(n)))

    @property
    def log_level(self):
        return LogLevel(self._get_int(Param.LOG_LEVEL))

    @log_level.setter
    def log_level(self, level):
        if isinstance(level, str):
            level = LogLevel[level.upper()]
        self._call(_clib.sf_context_set_int(self._h.get(), Param.LOG_LEVEL, int(level)))

    @property
    def last_error(self):
        return _message(self._h) if self._h.ptr is not None else ""

    @property
    def closed(self):
        return self._h.ptr is None

    def close(self):
        self._h.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()



# ---- images -------------------------------------------------------------------------------------------

def _rgb_of(image):
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
    if hasattr(image, "convert") and hasattr(image, "size"):  # PIL
        im = image.convert("RGB")
        return im.tobytes(), im.size[0], im.size[1]
    if _is_numpy(image) and getattr(image, "ndim", 0) == 3 and image.shape[2] == 3:
        import numpy
        a = numpy.ascontiguousarray(image, dtype=numpy.uint8)
        return a.tobytes(), a.shape[1], a.shape[0]
    raise TypeError("init image: expected snapfusion.Image, PIL image, HxWx3 uint8 array or (bytes, w, h)")


class Image(object):
    """An RGB8 image made by the library (generation, preview, PNG reader)."""

    def __init__(self, ptr):
        self._h = _Handle(ptr, _clib.sf_image_destroy, "image")

    @classmethod
    def open(cls, path):
        """Reads an 8-bit RGB or RGBA PNG (the library's own reader)."""
        out = ctypes.POINTER(_c.Image)()
        _check(_clib.sf_image_read_png(_cstr(path, "path"), ctypes.byref(out)))
        return cls(out)

    @property
    def width(self):
        return _clib.sf_image_width(self._h.get())

    @property
    def height(self):
        return _clib.sf_image_height(self._h.get())

    @property
    def size(self):
        return self.width, self.height

    @property
    def stride(self):
        return _clib.sf_image_stride(self._h.get())

    @property
    def parameters(self):
        """The generation parameters in the A1111 "parameters" text form ("" if none)."""
        return (_clib.sf_image_parameters(self._h.get()) or b"").decode("utf-8", "replace")

    @property
    def pixels(self):
        """Packed RGB8 bytes, rows of width*3 bytes, top row first."""
        w, h = self.width, self.height
        buf = (ctypes.c_uint8 * (w * h * 3))()
        _check(_clib.sf_image_copy(self._h.get(), buf, len(buf), w * 3, None))
        return bytes(buf)

    def save(self, path):
        """Writes a PNG carrying the generation parameters as a "parameters" text chunk."""
        _check(_clib.sf_image_write_png(self._h.get(), _cstr(os.fspath(path), "path")))

    def to_pil(self):
        """A PIL.Image (needs Pillow)."""
        from PIL import Image as PILImage
        im = PILImage.frombytes("RGB", (self.width, self.height), self.pixels)
        if self.parameters:
            im.info["parameters"] = self.parameters
        return im

    def to_numpy(self):
        """A numpy uint8 array of shape (height, width, 3) (needs numpy)."""
        import numpy
        return numpy.frombuffer(self.pixels, dtype=numpy.uint8).reshape(self.height, self.width, 3).copy()

    def close(self):
        self._h.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        if self._h.ptr is None:
            return "<snapfusion.Image closed>"
        return "<snapfusion.Image %dx%d>" % (self.width, self.height)


# ---- pipelines --------------------------------------------------------------------------------------

# keyword -> (key, kind) of the generation parameters
_GEN_KEYS = {
    "prompt": (Param.PROMPT, "str"),
    "negative_prompt": (Param.NEGATIVE_PROMPT, "str"),
    "width": (Param.WIDTH, "int"),
    "height": (Param.HEIGHT, "int"),
    "steps": (Param.STEPS, "int"),
    "guidance_scale": (Param.GUIDANCE_SCALE, "float"),
    "seed": (Param.SEED, "int"),
    "sampler": (Param.SAMPLER, "sampler"),
    "karras_sigmas": (Param.KARRAS_SIGMAS, "bool"),
    "clip_skip": (Param.CLIP_SKIP, "int"),
    "batch_count": (Param.BATCH_COUNT, "int"),
    "strength": (Param.STRENGTH, "float"),
    "prediction_type": (Param.PREDICTION_TYPE, "prediction"),
    "decoder": (Param.DECODER, "decoder"),
    "eta": (Param.ETA, "float"),
    "timestep_spacing": (Param.TIMESTEP_SPACING, "spacing"),
    "latents": (Param.LATENTS, "floats"),
    "prompt_embeds": (Param.PROMPT_EMBEDS, "floats"),
    "negative_prompt_embeds": (Param.NEGATIVE_EMBEDS, "floats"),
    "init_image": (None, "image"),
}


def _generation_params(kwargs):
    params = Params()
    init_image = kwargs.get("init_image")
    if init_image is not None:
        # img2img generates at the init image's size unless width/height say otherwise (the
        # library would take the model's default size and reject any other image).
        rgb, width, height = _rgb_of(init_image)
        kwargs = dict(kwargs, init_image=(rgb, width, height))
        if kwargs.get("width") is None:
            kwargs["width"] = width
        if kwargs.get("height") is None:
            kwargs["height"] = height
    for name, value in kwargs.items():
        if value is None:
            continue
        try:
            key, kind = _GEN_KEYS[name]
        except KeyError:
            raise TypeError("unknown generation argument %r" % name)
        if kind == "sampler":
            value = _sampler_value(value)
        elif kind == "prediction":
            value = _enum_value(value, _PREDICTIONS, "prediction type")
        elif kind == "spacing":
            value = _enum_value(value, _SPACINGS, "timestep spacing")
        elif kind == "decoder":
            value = _enum_value(value, _DECODERS, "decoder")
        elif kind == "bool":
            value = 1 if value else 0
        if kind == "image":
            params.set_init_image(value)
        else:
            params.set(key, value)
    return params


class Pipeline(object):
    """A loaded diffusers model folder. Use as a context manager, or call close()."""

    def __init__(self, *a, **k):
        raise TypeError("use Pipeline.load(path, ...)")

    @classmethod
    def load(cls, path, *, context=None, threads=None, variant=None, random_weights=False, random_seed=None,
             inspect_only=False, taesd_path=None, tokenizer_path=None, components=None):
        """Loads a diffusers folder. Without `context`, the pipeline makes (and closes) its
        own, with `threads` workers. components: names ("text_encoder", "unet",
        "vae_decoder", "vae_encoder", "taesd_decoder", "taesd_encoder") or a Network mask.
        tokenizer_path: a tokenizer folder used instead of the model's (which may be absent)."""
        own = context is None
        ctx = Context(threads=threads) if own else context
        if not own and threads is not None:
            ctx.threads = threads
        try:
            opts = {Param.VARIANT: variant, Param.TAESD_PATH: os.fspath(taesd_path) if taesd_path else None,
                    Param.RANDOM_WEIGHTS: 1 if random_weights else None,
                    Param.RANDOM_SEED: random_seed,
                    Param.TOKENIZER_PATH: os.fspath(tokenizer_path) if tokenizer_path else None,
                    Param.INSPECT_ONLY: 1 if inspect_only else None}
            if components is not None:
                if not isinstance(components, int):
                    mask = 0
                    for name in components:
                        mask |= int(_COMPONENT_NAMES[name]) if isinstance(name, str) else int(name)
                    components = mask
                opts[Param.COMPONENTS] = components
            params = Params({k: v for k, v in opts.items() if v is not None})
            out = ctypes.POINTER(_c.Pipeline)()
            st = _clib.sf_pipeline_load(ctx._h.get("context"), _cstr(os.fspath(path), "path"), params._h.get(),
                                       ctypes.byref(out))
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
        self.path = os.fspath(path)
        return self

    # -- lifetime --

    def close(self):
        """Frees the pipeline (and any running job); its own context too, if it made one."""
        self._h.close()
        if self._own_ctx:
            self._ctx.close()

    @property
    def closed(self):
        return self._h.ptr is None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def context(self):
        return self._ctx

    def _p(self):
        return self._h.get("pipeline")

    def _call(self, status, callback_sink=None):
        self._ctx._call(status, callback_sink)

    # -- information --

    def describe(self, format="text"):
        """Components, classes, key config values, tensor and parameter counts: text, or a
        dict with format="json"."""
        fmt = _FORMAT_JSON if format == "json" else _FORMAT_TEXT
        needed = ctypes.c_size_t()
        self._call(_clib.sf_pipeline_describe(self._p(), fmt, None, 0, ctypes.byref(needed)))
        buf = ctypes.create_string_buffer(needed.value)
        self._call(_clib.sf_pipeline_describe(self._p(), fmt, buf, len(buf), ctypes.byref(needed)))
        text = buf.value.decode("utf-8", "replace")
        return json.loads(text) if fmt == _FORMAT_JSON else text

    def get_int(self, key):
        out = ctypes.c_int64()
        self._call(_clib.sf_pipeline_get_int(self._p(), int(key), ctypes.byref(out)))
        return out.value

    def get_float(self, key):
        out = ctypes.c_double()
        self._call(_clib.sf_pipeline_get_float(self._p(), int(key), ctypes.byref(out)))
        return out.value

    networks = property(lambda self: Network(self.get_int(Info.NETWORKS)))
    text_tokens = property(lambda self: self.get_int(Info.TEXT_TOKENS))
    text_hidden = property(lambda self: self.get_int(Info.TEXT_HIDDEN))
    latent_channels = property(lambda self: self.get_int(Info.LATENT_CHANNELS))
    default_width = property(lambda self: self.get_int(Info.DEFAULT_WIDTH))
    default_height = property(lambda self: self.get_int(Info.DEFAULT_HEIGHT))
    vae_scale = property(lambda self: self.get_float(Info.VAE_SCALE))
    parameter_count = property(lambda self: self.get_int(Info.PARAMETERS))
    arena_bytes = property(lambda self: self.get_int(Info.ARENA_BYTES))
    last_macs = property(lambda self: self.get_float(Info.LAST_MACS))
    last_attention_macs = property(lambda self: self.get_float(Info.LAST_ATTENTION_MACS))

    # -- building blocks --

    def tokenize(self, prompt):
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

    def encode_ids(self, ids, clip_skip=0):
        """Text embeddings [batch, tokens, hidden] (flat array('f')) of token ids: one
        sequence or a list of sequences of text_tokens ids each."""
        ids = list(ids)
        rows = [ids] if ids and not hasattr(ids[0], "__len__") else [list(r) for r in ids]
        tokens = len(rows[0]) if rows else 0
        if any(len(r) != tokens for r in rows):
            raise InvalidArgumentError("encode_ids: rows of different lengths")
        flat = (ctypes.c_int32 * (len(rows) * tokens))(*[int(i) for r in rows for i in r])
        count = len(rows) * tokens * self.text_hidden
        out, cout = _floats_out(count)
        self._call(_clib.sf_encode_ids(self._p(), flat, len(rows), tokens, int(clip_skip), cout, count))
        return out

    def encode_prompt(self, prompt, clip_skip=0):
        """Text embedding [tokens, hidden] of one prompt (flat array('f'))."""
        count = self.text_tokens * self.text_hidden
        out, cout = _floats_out(count)
        self._call(_clib.sf_encode_prompt(self._p(), _cstr(prompt, "prompt"), int(clip_skip), cout, count))
        return out

    def _latent_geometry(self, count, shape, height, width, per_item_channels, what):
        if height is None or width is None:
            if shape is not None and len(shape) == 4:
                height, width = shape[2], shape[3]
            else:
                height = height or self.default_height // 8
                width = width or self.default_width // 8
        per_item = per_item_channels * height * width
        if per_item == 0 or count % per_item:
            raise InvalidArgumentError("%s: %d values are not a whole batch of [%d, %d, %d]"
                                       % (what, count, per_item_channels, height, width))
        return count // per_item, height, width

    def unet_predict(self, latents, timesteps, text_embeddings, *, height=None, width=None):
        """One UNet evaluation. latents NCHW [batch, C, height, width] (height/width from
        the buffer's shape, the keywords, or the model's default); timesteps one number or
        one per batch item; text_embeddings [batch, tokens, hidden]. Returns array('f')
        of the latents' size."""
        lat, n, shape = _floats_in(latents, "latents")
        batch, h, w = self._latent_geometry(n, shape, height, width, self.latent_channels, "unet_predict")
        if isinstance(timesteps, (int, float)):
            timesteps = [float(timesteps)] * batch
        ts, nts, _ = _floats_in(timesteps, "timesteps")
        if nts != batch:
            raise InvalidArgumentError("unet_predict: %d timesteps for a batch of %d" % (nts, batch))
        text, ntext, _ = _floats_in(text_embeddings, "text_embeddings")
        per = batch * self.text_hidden
        if ntext % per:
            raise InvalidArgumentError("unet_predict: %d text values are not [%d, tokens, %d]"
                                       % (ntext, batch, self.text_hidden))
        out, cout = _floats_out(n)
        self._call(_clib.sf_unet_predict(self._p(), lat, batch, h, w, ts, text, ntext // per, cout))
        return out

    def decode(self, latents, *, height=None, width=None, decoder="vae", unscaled=False, raw=False):
        """Latents NCHW [batch, C, h, w] -> image NCHW [batch, 3, 8h, 8w] in [-1, 1]
        (array('f')). Latents are in pipeline space unless unscaled=True."""
        lat, n, shape = _floats_in(latents, "latents")
        batch, h, w = self._latent_geometry(n, shape, height, width, self.latent_channels, "decode")
        dec = _enum_value(decoder, _DECODERS, "decoder")
        flags = (_LATENTS_UNSCALED if unscaled else 0) | (_IMAGE_RAW if raw else 0)
        count = batch * 3 * 8 * h * 8 * w
        out, cout = _floats_out(count)
        self._call(_clib.sf_decode_latents(self._p(), dec, lat, batch, h, w, flags, cout))
        return out

    def encode_image(self, image, *, height=None, width=None, encoder="vae", unscaled=False, raw=False):
        """Image NCHW [batch, 3, height, width] in [-1, 1] -> (mean, logvar) latents
        [batch, C, height/8, width/8] (logvar is None for TAESD)."""
        img, n, shape = _floats_in(image, "image")
        if height is None or width is None:
            if shape is None or len(shape) != 4:
                raise InvalidArgumentError("encode_image: give height and width (or a 4-D array)")
            height, width = shape[2], shape[3]
        if n % (3 * height * width):
            raise InvalidArgumentError("encode_image: %d values are not [batch, 3, %d, %d]" % (n, height, width))
        batch = n // (3 * height * width)
        enc = _enum_value(encoder, _ENCODERS, "encoder")
        flags = (_LATENTS_UNSCALED if unscaled else 0) | (_IMAGE_RAW if raw else 0)
        count = batch * self.latent_channels * (height // 8) * (width // 8)
        mean, cmean = _floats_out(count)
        logvar, clogvar = (None, None) if enc == Network.TAESD_ENCODER else _floats_out(count)
        self._call(_clib.sf_encode_image(self._p(), enc, img, batch, height, width, flags, cmean, clogvar))
        return mean, logvar

    # -- generation --

    def txt2img(self, prompt=None, negative_prompt=None, *, progress=None, **options):
        """Generates one image. Options mirror the C parameters: width, height, steps,
        guidance_scale, seed, sampler ("ddim", "pndm", "euler", "euler_a", "dpm++2m", "lcm";
        None = the folder's scheduler), karras_sigmas, clip_skip, prediction_type, decoder
        ("vae"/"taesd"), timestep_spacing, eta, latents, prompt_embeds,
        negative_prompt_embeds, init_image + strength (img2img).
        progress(step, total) is called after every step; returning True stops the run
        (CancelledError). An exception it raises is re-raised here."""
        params = _generation_params(dict(options, prompt=prompt, negative_prompt=negative_prompt))
        sink = _CallbackSink()
        thunk = _c.PROGRESS_FN()  # NULL: no callback
        if progress is not None:
            def on_progress(_user, step, total):
                try:
                    return 1 if progress(step, total) else 0
                except BaseException as e:
                    sink.store(e)
                    return 1
            thunk = _c.PROGRESS_FN(on_progress)
        out = ctypes.POINTER(_c.Image)()
        try:
            st = _clib.sf_generate(self._p(), params._h.get(), thunk, None, ctypes.byref(out))
        finally:
            params.close()
        self._call(st, sink)
        return Image(out)

    def img2img(self, init_image, prompt=None, negative_prompt=None, *, strength=0.8, **options):
        """txt2img starting from an image (snapfusion.Image, PIL image, HxWx3 uint8 array,
        or (bytes, width, height)); its size sets width/height (both multiples of 8; an
        explicit width/height must equal it). txt2img(init_image=...) and
        generate(init_image=...) do the same."""
        return self.txt2img(prompt, negative_prompt, init_image=init_image, strength=strength, **options)

    def generate(self, prompt=None, negative_prompt=None, **options):
        """Starts a step-wise generation (same options as txt2img) and returns its Job:

            job = pipe.generate("a cat", steps=8, seed=3)
            for step in job:            # one denoising step per iteration
                print(step.index, step.total); step.preview()
            job.image.save("cat.png")   # decoded when the iteration ends
        """
        params = _generation_params(dict(options, prompt=prompt, negative_prompt=negative_prompt))
        out = ctypes.POINTER(_c.Job)()
        try:
            st = _clib.sf_job_start(self._p(), params._h.get(), ctypes.byref(out))
        finally:
            params.close()
        self._call(st)
        return Job(self, out, _clib.sf_job_latent_count(out))

    def cancel(self):
        """Thread-safe: cancels whatever the pipeline is running now."""
        ptr = self._h.ptr
        if ptr is not None:
            _clib.sf_pipeline_cancel(ptr)

    def __repr__(self):
        return "<snapfusion.Pipeline %r%s>" % (self.path, " closed" if self.closed else "")


class TokenIds(list):
    """Token ids (a list) with the untruncated token count of the prompt."""

    untruncated = 0


class Step(object):
    """One finished denoising step of a Job: index (1-based, = steps done) and total.
    latents() and preview() show the job's current state."""

    __slots__ = ("job", "index", "total")

    def __init__(self, job, index, total):
        self.job, self.index, self.total = job, index, total

    def latents(self):
        return self.job.latents()

    def preview(self):
        return self.job.preview()

    def __repr__(self):
        return "<snapfusion.Step %d/%d>" % (self.index, self.total)


class Job(object):
    """A running generation (Pipeline.generate). Iterate it for one Step per denoising
    step; the decoded image is `image` once the iteration ends (or call finish())."""

    def __init__(self, pipeline, ptr, latent_count):
        self.pipeline = pipeline
        self.image = None
        self._latent_count = latent_count
        self._h = _Handle(ptr, _clib.sf_job_destroy, "job", parent=pipeline._h)

    def _j(self):
        return self._h.get("job")

    def _call(self, status):
        self.pipeline._call(status)

    @property
    def steps_done(self):
        return _clib.sf_job_steps_done(self._j())

    @property
    def steps_total(self):
        return _clib.sf_job_steps_total(self._j())

    @property
    def done(self):
        return self.steps_done >= self.steps_total

    def step(self):
        """Runs one step and returns its Step (BadStateError when all are done)."""
        self._call(_clib.sf_job_step(self._j()))
        return Step(self, self.steps_done, self.steps_total)

    def __iter__(self):
        while not self.done:
            yield self.step()
        if self.image is None:
            self.finish()

    def latents(self):
        """Current latents NCHW [1, C, H/8, W/8] as a flat array('f')."""
        n = self._latent_count
        out, cout = _floats_out(n)
        self._call(_clib.sf_job_latents(self._j(), cout, n))
        return out

    def preview(self):
        """A preview Image of the current latents (TAESD if loaded, else a 1/8-size
        linear projection)."""
        out = ctypes.POINTER(_c.Image)()
        self._call(_clib.sf_job_preview(self._j(), ctypes.byref(out)))
        return Image(out)

    def finish(self):
        """Runs the remaining steps, decodes, and returns (and keeps in .image) the image."""
        if self.image is None:
            out = ctypes.POINTER(_c.Image)()
            self._call(_clib.sf_job_finish(self._j(), ctypes.byref(out)))
            self.image = Image(out)
        return self.image

    def cancel(self):
        """Thread-safe: the running or next step raises CancelledError."""
        ptr = self._h.ptr
        if ptr is not None:
            _clib.sf_job_cancel(ptr)

    def close(self):
        self._h.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---- random numbers -----------------------------------------------------------------------------------

class Rng(object):
    """PyTorch's CPU generator: Rng(seed).randn(n) == torch.randn(n, generator=
    torch.Generator().manual_seed(seed)). kind "cpu" (the AVX2 kernel x86 torch uses) or
    "scalar" (torch's portable kernel)."""

    def __init__(self, seed=0, kind="cpu"):
        k = _RNG_KINDS[kind] if isinstance(kind, str) else int(kind)
        out = ctypes.POINTER(_c.Rng)()
        _check(_clib.sf_rng_create(k, int(seed) % (1 << 64), ctypes.byref(out)))
        self._h = _Handle(out, _clib.sf_rng_destroy, "rng")

    def randn(self, n):
        out, cout = _floats_out(n)
        _check(_clib.sf_rng_randn(self._h.get(), cout, n))
        return out

    def randn_f64(self, n):
        out, cout = _floats_out(n, "d")
        _check(_clib.sf_rng_randn_f64(self._h.get(), cout, n))
        return out

    def rand(self, n):
        out, cout = _floats_out(n)
        _check(_clib.sf_rng_rand(self._h.get(), cout, n))
        return out

    def close(self):
        self._h.close()


# ---- schedules ------------------------------------------------------------------------------------------

class Schedule(object):
    """A sampler on its own (diffusers' arithmetic), for hand-written denoising loops."""

    def __init__(self, sampler="default", config_json=None, *, prediction_type=None, timestep_spacing=None,
                 karras_sigmas=None):
        if isinstance(config_json, dict):
            config_json = json.dumps(config_json)
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
        self._count = None

    def _s(self):
        return self._h.get("schedule")

    def set_steps(self, steps, latent_count):
        _check(_clib.sf_schedule_set_steps(self._s(), int(steps), int(latent_count)))
        self._count = int(latent_count)

    @property
    def evaluations(self):
        return _clib.sf_schedule_evaluations(self._s())

    def timestep(self, i):
        return _clib.sf_schedule_timestep(self._s(), int(i))

    @property
    def timesteps(self):
        return [self.timestep(i) for i in range(self.evaluations)]

    def sigmas(self):
        n = ctypes.c_size_t()
        _check(_clib.sf_schedule_sigmas(self._s(), None, 0, ctypes.byref(n)))
        out, cout = _floats_out(n.value)
        _check(_clib.sf_schedule_sigmas(self._s(), cout, n.value, ctypes.byref(n)))
        return out

    @property
    def init_noise_sigma(self):
        return _clib.sf_schedule_init_noise_sigma(self._s())

    def scale_input(self, i, x):
        buf, n, _ = _floats_in(x, "x")
        out, cout = _floats_out(n)
        _check(_clib.sf_schedule_scale_input(self._s(), int(i), buf, cout, n))
        return out

    def step_needs_noise(self, i):
        return bool(_clib.sf_schedule_step_needs_noise(self._s(), int(i)))

    def step(self, i, model_output, sample, noise=None):
        """The sampler's update for evaluation i. sample is updated in place when it is a
        writable float32 buffer (array('f'), numpy float32); the updated sample is returned."""
        mo, n, _ = _floats_in(model_output, "model_output")
        target = _writable_f32(sample)
        result = sample
        if target is None:
            buf, m, _ = _floats_in(sample, "sample")
            result = array.array("f", bytes(buf))
            target = (ctypes.c_float * m).from_buffer(result)
        if len(target) != n:
            raise InvalidArgumentError("schedule step: %d model outputs for %d sample values" % (n, len(target)))
        nz = None
        if noise is not None:
            nz, nn, _ = _floats_in(noise, "noise")
        _check(_clib.sf_schedule_step(self._s(), int(i), mo, target, n, nz))
        del target
        return result

    def close(self):
        self._h.close()
