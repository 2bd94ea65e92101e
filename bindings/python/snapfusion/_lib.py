"""Loading libsnapfusion and declaring every function of snapfusion.h for ctypes.

Nothing here is Pythonic: it is the C ABI, one declaration per function, so the rest of
the package never calls a function whose argument types ctypes would have to guess.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable

ABI_VERSION = 1  # SF_ABI_VERSION this package was written for


class _Opaque(ctypes.Structure):
    """Base of the opaque handle types: the ABI exposes no struct layout."""

    _fields_: list[tuple[str, type[ctypes._CData]]] = []


class Context(_Opaque):
    pass


class Params(_Opaque):
    pass


class Pipeline(_Opaque):
    pass


class Rng(_Opaque):
    pass


class Image(_Opaque):
    pass


class Job(_Opaque):
    pass


class Schedule(_Opaque):
    pass


class Files(_Opaque):
    pass


P = ctypes.POINTER
c_int, c_int32, c_int64, c_uint8, c_uint32, c_uint64 = (
    ctypes.c_int, ctypes.c_int32, ctypes.c_int64, ctypes.c_uint8, ctypes.c_uint32, ctypes.c_uint64)
c_size_t, c_float, c_double, c_char_p, c_void_p = (
    ctypes.c_size_t, ctypes.c_float, ctypes.c_double, ctypes.c_char_p, ctypes.c_void_p)
status = c_int  # sf_status and every other enum cross as int

LOG_FN = ctypes.CFUNCTYPE(None, c_void_p, c_int, c_char_p)
PROGRESS_FN = ctypes.CFUNCTYPE(c_int, c_void_p, c_int, c_int)

# name: (restype, [argtypes]); the order follows snapfusion.h.
FUNCTIONS = {
    "sf_version": (c_char_p, []),
    "sf_version_number": (c_int, []),
    "sf_abi_version": (c_int, []),
    "sf_status_string": (c_char_p, [status]),
    "sf_last_error": (c_char_p, []),
    # params
    "sf_params_create": (status, [P(P(Params))]),
    "sf_params_destroy": (None, [P(Params)]),
    "sf_params_set_int": (status, [P(Params), c_int, c_int64]),
    "sf_params_set_float": (status, [P(Params), c_int, c_double]),
    "sf_params_set_string": (status, [P(Params), c_int, c_char_p]),
    "sf_params_unset": (status, [P(Params), c_int]),
    "sf_params_get_int": (status, [P(Params), c_int, P(c_int64)]),
    "sf_params_get_float": (status, [P(Params), c_int, P(c_double)]),
    "sf_params_get_string": (status, [P(Params), c_int, P(c_char_p)]),
    # context
    "sf_context_create": (status, [P(P(Context))]),
    "sf_context_destroy": (None, [P(Context)]),
    "sf_context_set_int": (status, [P(Context), c_int, c_int64]),
    "sf_context_get_int": (status, [P(Context), c_int, P(c_int64)]),
    "sf_context_set_log_callback": (status, [P(Context), LOG_FN, c_void_p]),
    "sf_context_last_error": (c_char_p, [P(Context)]),
    # pipelines
    "sf_pipeline_load": (status, [P(Context), c_char_p, P(Params), P(P(Pipeline))]),
    "sf_pipeline_destroy": (None, [P(Pipeline)]),
    "sf_files_create": (status, [P(P(Files))]),
    "sf_files_destroy": (None, [P(Files)]),
    "sf_files_add": (status, [P(Files), c_char_p, c_void_p, c_size_t, c_int]),
    "sf_pipeline_load_files": (status, [P(Context), P(Files), P(Params), P(P(Pipeline))]),
    "sf_pipeline_write_pack": (status, [P(Pipeline), c_char_p]),
    "sf_pipeline_describe": (status, [P(Pipeline), c_int, c_void_p, c_size_t, P(c_size_t)]),
    "sf_pipeline_get_int": (status, [P(Pipeline), c_int, P(c_int64)]),
    "sf_pipeline_get_float": (status, [P(Pipeline), c_int, P(c_double)]),
    "sf_pipeline_estimate_memory": (status, [P(Pipeline), P(Params), c_int, P(c_int64)]),
    # building blocks
    "sf_tokenize": (status, [P(Pipeline), c_char_p, P(c_int32), c_size_t, P(c_size_t)]),
    "sf_encode_ids": (status, [P(Pipeline), P(c_int32), c_size_t, c_size_t, c_int, P(c_float), c_size_t]),
    "sf_encode_prompt": (status, [P(Pipeline), c_char_p, c_int, P(c_float), c_size_t]),
    "sf_token_text": (status, [P(Pipeline), c_int32, c_void_p, c_size_t, P(c_size_t)]),
    "sf_unet_predict_v2": (status, [P(Pipeline), P(c_float), c_size_t, c_size_t, c_size_t, c_size_t, P(c_float),
                                    c_size_t, P(c_float), c_size_t, c_size_t, P(c_float), c_size_t]),
    "sf_decode_latents_v2": (status, [P(Pipeline), c_int, P(c_float), c_size_t, c_size_t, c_size_t, c_size_t,
                                      c_uint32, P(c_float), c_size_t]),
    "sf_encode_image_v2": (status, [P(Pipeline), c_int, P(c_float), c_size_t, c_size_t, c_size_t, c_size_t,
                                    c_uint32, P(c_float), c_size_t, P(c_float), c_size_t]),
    # Deprecated version 1 of the three above (no buffer sizes): declared because they are
    # part of the ABI, never called by the package.
    "sf_unet_predict": (status, [P(Pipeline), P(c_float), c_size_t, c_size_t, c_size_t, P(c_float),
                                 P(c_float), c_size_t, P(c_float)]),
    "sf_decode_latents": (status, [P(Pipeline), c_int, P(c_float), c_size_t, c_size_t, c_size_t,
                                   c_uint32, P(c_float)]),
    "sf_encode_image": (status, [P(Pipeline), c_int, P(c_float), c_size_t, c_size_t, c_size_t,
                                 c_uint32, P(c_float), P(c_float)]),
    # random numbers
    "sf_rng_create": (status, [c_int, c_uint64, P(P(Rng))]),
    "sf_rng_destroy": (None, [P(Rng)]),
    "sf_rng_randn": (status, [P(Rng), P(c_float), c_size_t]),
    "sf_rng_randn_f64": (status, [P(Rng), P(c_double), c_size_t]),
    "sf_rng_rand": (status, [P(Rng), P(c_float), c_size_t]),
    # generation
    "sf_sampler_name": (c_char_p, [c_int]),
    "sf_sampler_from_name": (c_int, [c_char_p]),
    "sf_params_set_floats": (status, [P(Params), c_int, P(c_float), c_size_t]),
    "sf_params_set_init_image": (status, [P(Params), P(c_uint8), c_uint32, c_uint32, c_size_t]),
    "sf_image_width": (c_uint32, [P(Image)]),
    "sf_image_height": (c_uint32, [P(Image)]),
    "sf_image_stride": (c_size_t, [P(Image)]),
    "sf_image_pixels": (P(c_uint8), [P(Image)]),
    "sf_image_parameters": (c_char_p, [P(Image)]),
    "sf_image_destroy": (None, [P(Image)]),
    "sf_image_copy": (status, [P(Image), P(c_uint8), c_size_t, c_size_t, P(c_size_t)]),
    "sf_image_write_png": (status, [P(Image), c_char_p]),
    "sf_image_read_png": (status, [c_char_p, P(P(Image))]),
    "sf_job_start": (status, [P(Pipeline), P(Params), P(P(Job))]),
    "sf_job_step": (status, [P(Job)]),
    "sf_job_latent_count": (c_size_t, [P(Job)]),
    "sf_job_steps_done": (c_int, [P(Job)]),
    "sf_job_steps_total": (c_int, [P(Job)]),
    "sf_job_latents": (status, [P(Job), P(c_float), c_size_t]),
    "sf_job_preview": (status, [P(Job), P(P(Image))]),
    "sf_job_finish": (status, [P(Job), P(P(Image))]),
    "sf_job_cancel": (None, [P(Job)]),
    "sf_job_destroy": (None, [P(Job)]),
    "sf_job_seed": (c_uint64, [P(Job)]),
    "sf_job_image_count": (c_size_t, [P(Job)]),
    "sf_job_image_f32": (status, [P(Job), c_int, P(c_float), c_size_t]),
    "sf_generate": (status, [P(Pipeline), P(Params), PROGRESS_FN, c_void_p, P(P(Image))]),
    "sf_generate_batch": (status, [P(Pipeline), P(Params), PROGRESS_FN, c_void_p, P(P(Image)), c_size_t,
                                   P(c_size_t)]),
    "sf_pipeline_cancel": (None, [P(Pipeline)]),
    # schedules
    "sf_schedule_create": (status, [c_int, c_char_p, P(Params), P(P(Schedule))]),
    "sf_schedule_destroy": (None, [P(Schedule)]),
    "sf_schedule_set_steps": (status, [P(Schedule), c_int, c_size_t]),
    "sf_schedule_evaluations": (c_int, [P(Schedule)]),
    "sf_schedule_timestep": (c_double, [P(Schedule), c_int]),
    "sf_schedule_sigmas": (status, [P(Schedule), P(c_float), c_size_t, P(c_size_t)]),
    "sf_schedule_init_noise_sigma": (c_double, [P(Schedule)]),
    "sf_schedule_scale_input": (status, [P(Schedule), c_int, P(c_float), P(c_float), c_size_t]),
    "sf_schedule_step_needs_noise": (c_int, [P(Schedule), c_int]),
    "sf_schedule_step": (status, [P(Schedule), c_int, P(c_float), P(c_float), c_size_t, P(c_float)]),
    "sf_schedule_begin_index": (c_int, [P(Schedule), c_double]),
    "sf_schedule_add_noise": (status, [P(Schedule), c_int, P(c_float), P(c_float), P(c_float), c_size_t]),
    "sf_schedule_get_table": (status, [P(Schedule), c_int, P(c_float), c_size_t, P(c_size_t)]),
    "sf_schedule_final_alpha_cumprod": (c_double, [P(Schedule)]),
}

# Macros of snapfusion.h the package uses.
SEED_RANDOM = -1  # SF_SEED_RANDOM


# ---- finding the library ------------------------------------------------------------------------


def _library_names() -> list[str]:
    """File names of this ABI's library on this platform, the SONAME first."""
    if sys.platform == "darwin":
        return ["libsnapfusion.%d.dylib" % ABI_VERSION, "libsnapfusion.dylib"]
    if sys.platform == "win32":
        return ["snapfusion.dll", "libsnapfusion.dll"]
    return ["libsnapfusion.so.%d" % ABI_VERSION]


def _multiarch() -> str | None:
    """Debian's multiarch triplet (x86_64-linux-gnu), where lib/<triplet> installs go."""
    triplet = sysconfig.get_config_var("MULTIARCH")
    if triplet:
        return str(triplet)
    if sys.platform.startswith("linux"):
        return platform.machine() + "-linux-gnu"
    return None


def _lib_dirs(prefix: str) -> list[str]:
    """The library folders of an install prefix: PREFIX/lib, PREFIX/lib64, PREFIX/lib/<multiarch>."""
    dirs = [os.path.join(prefix, "lib"), os.path.join(prefix, "lib64")]
    triplet = _multiarch()
    if triplet:
        dirs.append(os.path.join(prefix, "lib", triplet))
    return dirs


# Where `cmake --install` puts the library when no one told the loader about it (a fresh
# /usr/local install is not in ld.so.cache until `ldconfig` runs).
_COMMON_PREFIXES = ("/usr/local", "/opt/snapfusion", "~/.local", "/usr")


class _Search:
    """Tries the places a libsnapfusion can be, in order, and remembers what each gave."""

    def __init__(self) -> None:
        self.tried: list[str] = []  # one line per place: "method: what: why it failed"
        self._seen: set[str] = set()

    def note(self, method: str, what: str, why: str) -> None:
        self.tried.append("%s: %s: %s" % (method, what, why))

    def load(self, method: str, target: str) -> ctypes.CDLL | None:
        """Loads and checks one candidate (a path, or a bare name for the system loader)."""
        if target in self._seen:
            return None
        self._seen.add(target)
        if os.sep in target and not os.path.exists(target):
            self.note(method, target, "no such file")
            return None
        try:
            lib = ctypes.CDLL(target)
        except OSError as e:
            self.note(method, target, str(e))
            return None
        problem = _declare(lib)
        if problem:
            self.note(method, target, problem)
            return None
        return lib

    def in_dirs(self, method: str, dirs: list[str]) -> ctypes.CDLL | None:
        for d in dirs:
            for name in _library_names():
                lib = self.load(method, os.path.normpath(os.path.join(d, name)))
                if lib is not None:
                    return lib
        return None

    def system_loader(self) -> ctypes.CDLL | None:
        method = "system loader"
        for name in _library_names():
            lib = self.load(method, name)
            if lib is not None:
                return lib
        found = ctypes.util.find_library("snapfusion")
        if not found:
            self.note(method, "ctypes.util.find_library('snapfusion')", "found nothing")
            return None
        return self.load(method + " (find_library)", found)

    def pkg_config(self) -> ctypes.CDLL | None:
        method = "pkg-config"
        where = "PKG_CONFIG_PATH=%s" % os.environ.get("PKG_CONFIG_PATH", "(unset)")
        exe = shutil.which("pkg-config")
        if exe is None:
            self.note(method, "pkg-config --variable=libdir snapfusion", "pkg-config is not installed")
            return None
        try:
            r = subprocess.run([exe, "--print-errors", "--variable=libdir", "snapfusion"], capture_output=True, text=True,
                               timeout=30, check=False)
        except (OSError, subprocess.SubprocessError) as e:
            self.note(method, "pkg-config --variable=libdir snapfusion", "%s (%s)" % (e, where))
            return None
        libdir = r.stdout.strip()
        if r.returncode != 0 or not libdir:
            why = " ".join(r.stderr.split()) or "exit status %d, no libdir" % r.returncode
            self.note(method, "pkg-config --variable=libdir snapfusion", "%s (%s)" % (why, where))
            return None
        return self.in_dirs("pkg-config (libdir %s)" % libdir, [libdir])

    def cmake_prefix_path(self) -> ctypes.CDLL | None:
        method = "CMAKE_PREFIX_PATH"
        prefixes = [p for p in os.environ.get("CMAKE_PREFIX_PATH", "").split(os.pathsep) if p]
        if not prefixes:
            self.note(method, "$CMAKE_PREFIX_PATH", "not set")
            return None
        return self.in_dirs(method, [d for p in prefixes for d in _lib_dirs(p)])

    def common_prefixes(self) -> ctypes.CDLL | None:
        dirs = [d for p in _COMMON_PREFIXES for d in _lib_dirs(os.path.expanduser(p))]
        return self.in_dirs("common prefix", dirs)


def _declare(lib: ctypes.CDLL) -> str | None:
    """Declares every function on a loaded library; the reason it is unusable, or None."""
    for name, (restype, argtypes) in FUNCTIONS.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            return "lacks %s (an older libsnapfusion?)" % name
        fn.restype = restype
        fn.argtypes = argtypes
    abi = lib.sf_abi_version()
    if abi != ABI_VERSION:
        return "ABI version %d; this package needs %d" % (abi, ABI_VERSION)
    return None


def load() -> ctypes.CDLL:
    """The loaded libsnapfusion with every function declared; ImportError naming every place
    tried when none works. Order: $SNAPFUSION_LIBRARY (when set, the only candidate: loading
    another copy would hide a broken setting); a copy bundled next to this package; the
    system loader (the SONAME, then ctypes.util.find_library); the libdir pkg-config reports
    (honouring PKG_CONFIG_PATH); PREFIX/lib, lib64 and lib/<multiarch> of each
    $CMAKE_PREFIX_PATH entry; the same folders of /usr/local, /opt/snapfusion, ~/.local, /usr."""
    global found_by
    search = _Search()
    explicit = os.environ.get("SNAPFUSION_LIBRARY")
    if explicit:
        lib = search.load("SNAPFUSION_LIBRARY", explicit)
        if lib is None:
            raise ImportError("libsnapfusion: the library $SNAPFUSION_LIBRARY names cannot be used: %s"
                              " (unset SNAPFUSION_LIBRARY to search the usual places)" % search.tried[-1])
        found_by = "SNAPFUSION_LIBRARY"
        return lib
    search.note("SNAPFUSION_LIBRARY", "$SNAPFUSION_LIBRARY", "not set")
    def bundled() -> ctypes.CDLL | None:
        return search.in_dirs("bundled", [os.path.dirname(os.path.abspath(__file__))])

    steps: tuple[tuple[str, Callable[[], ctypes.CDLL | None]], ...] = (
        ("bundled", bundled),
        ("system loader", search.system_loader),
        ("pkg-config", search.pkg_config),
        ("CMAKE_PREFIX_PATH", search.cmake_prefix_path),
        ("common prefix", search.common_prefixes),
    )
    for method, step in steps:
        lib = step()
        if lib is not None:
            found_by = method
            return lib
    raise ImportError("libsnapfusion.so.%d not found; tried, in order:\n  %s\n"
                      "Set SNAPFUSION_LIBRARY to the library's path, or install it (cmake --install BUILD "
                      "--prefix PREFIX) where the loader, pkg-config (PKG_CONFIG_PATH=PREFIX/lib/pkgconfig) "
                      "or CMAKE_PREFIX_PATH=PREFIX finds it." % (ABI_VERSION, "\n  ".join(search.tried)))


found_by = ""  # how the library was found: "SNAPFUSION_LIBRARY", "bundled", "system loader", "pkg-config", ...
lib = load()
