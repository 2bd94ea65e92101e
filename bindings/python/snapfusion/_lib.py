"""Loading libsnapfusion and declaring every function of snapfusion.h for ctypes.

Nothing here is Pythonic: it is the C ABI, one declaration per function, so the rest of
the package never calls a function whose argument types ctypes would have to guess.
"""
import ctypes
import ctypes.util
import os
import sys

ABI_VERSION = 1  # SF_ABI_VERSION this package was written for


class _Opaque(ctypes.Structure):
    """Base of the opaque handle types: the ABI exposes no struct layout."""

    _fields_ = []


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
    "sf_pipeline_describe": (status, [P(Pipeline), c_int, c_void_p, c_size_t, P(c_size_t)]),
    "sf_pipeline_get_int": (status, [P(Pipeline), c_int, P(c_int64)]),
    "sf_pipeline_get_float": (status, [P(Pipeline), c_int, P(c_double)]),
    # building blocks
    "sf_tokenize": (status, [P(Pipeline), c_char_p, P(c_int32), c_size_t, P(c_size_t)]),
    "sf_encode_ids": (status, [P(Pipeline), P(c_int32), c_size_t, c_size_t, c_int, P(c_float), c_size_t]),
    "sf_encode_prompt": (status, [P(Pipeline), c_char_p, c_int, P(c_float), c_size_t]),
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
    "sf_generate": (status, [P(Pipeline), P(Params), PROGRESS_FN, c_void_p, P(P(Image))]),
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
}


def _candidates():
    env = os.environ.get("SNAPFUSION_LIBRARY")
    if env:
        # An explicit choice is the only candidate: silently loading another copy would
        # hide a broken setting.
        return [env]
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.platform == "darwin":
        names = ["libsnapfusion.1.dylib", "libsnapfusion.dylib"]
    elif sys.platform == "win32":
        names = ["snapfusion.dll", "libsnapfusion.dll"]
    else:
        names = ["libsnapfusion.so.1", "libsnapfusion.so"]
    found = [os.path.join(here, n) for n in names if os.path.exists(os.path.join(here, n))]
    # The system loader: the SONAME of this ABI first, then whatever find_library knows.
    found.append(names[0])
    by_name = ctypes.util.find_library("snapfusion")
    if by_name:
        found.append(by_name)
    return found


def load():
    """Returns the loaded CDLL with every function declared; raises ImportError."""
    errors = []
    lib = None
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
            break
        except OSError as e:
            errors.append("%s: %s" % (path, e))
    if lib is None:
        raise ImportError("libsnapfusion not found (set SNAPFUSION_LIBRARY to the library's path); tried: "
                          + "; ".join(errors))
    for name, (restype, argtypes) in FUNCTIONS.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            raise ImportError("%s: the loaded libsnapfusion (%s) lacks %s" % (__name__, lib._name, name))
        fn.restype = restype
        fn.argtypes = argtypes
    abi = lib.sf_abi_version()
    if abi != ABI_VERSION:
        raise ImportError("libsnapfusion at %s has ABI version %d; this package needs %d"
                          % (lib._name, abi, ABI_VERSION))
    return lib


lib = load()
