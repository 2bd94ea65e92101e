"""Tests of the Python bindings (bindings/python) with the machine's python3 and the
standard library only.

    SNAPFUSION_LIBRARY=build/libsnapfusion.so PYTHONPATH=bindings/python \
        python3 tests/bindings/python/test_snapfusion.py

Fixture tests read $SNAPFUSION_FIXTURES (default: ../shared/fixtures beside the source
tree) and are skipped when it is absent; the program then exits 77 (ctest: skipped) if
nothing failed. $SNAPFUSION_CLI, when set, is the `snapfusion` tool whose txt2img output
the binding's image must equal byte for byte.
"""
import array
import ctypes
import enum
import gc
import inspect
import json
import logging
import mmap
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import typing
import unittest
import weakref

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("SNAPFUSION_SOURCE_DIR") or os.path.normpath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(SOURCE_DIR, "bindings", "python"))

import snapfusion as sf  # noqa: E402
from snapfusion import _lib as raw  # noqa: E402

FIXTURES = os.environ.get("SNAPFUSION_FIXTURES") or os.path.join(SOURCE_DIR, "..", "shared", "fixtures")
PUBLIC = os.path.join(FIXTURES, "public")
HAVE_FIXTURES = os.path.isfile(os.path.join(PUBLIC, "manifest.json"))
needs_fixtures = unittest.skipUnless(HAVE_FIXTURES, "fixtures not found at %s (set SNAPFUSION_FIXTURES)" % FIXTURES)
TINY_SD = os.path.join(PUBLIC, "tiny-sd")
THREADS = 1  # results must not depend on it; one thread keeps a busy 2-core machine fast


# ---- fixture helpers ----------------------------------------------------------------------------------

def read_safetensors(path):
    """{name: (dtype, shape, array or bytes)} of a safetensors file."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    codes = {"F32": "f", "F64": "d", "I64": "q", "I32": "i"}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw_bytes = data[base + begin:base + end]
        if info["dtype"] == "U8":
            values = raw_bytes
        else:
            values = array.array(codes[info["dtype"]])
            values.frombytes(raw_bytes)
            if sys.byteorder != "little":
                values.byteswap()
        out[name] = (info["dtype"], info["shape"], values)
    return out


_manifest = None


def case(name):
    """(manifest entry, tensors) of a fixture case."""
    global _manifest
    if _manifest is None:
        with open(os.path.join(PUBLIC, "manifest.json"), encoding="utf-8") as f:
            _manifest = {c["name"]: c for c in json.load(f)["cases"]}
    entry = _manifest[name]
    return entry, read_safetensors(os.path.join(PUBLIC, entry["file"]))


def tensor(tensors, key):
    return tensors[key][2]


def within(test, got, ref, tol, what):
    """|got - ref| <= atol + rtol*|ref| elementwise (the fixture rule)."""
    test.assertEqual(len(got), len(ref), what + ": sizes")
    atol, rtol = tol["atol"], tol["rtol"]
    worst, worst_i = 0.0, -1
    for i, (a, b) in enumerate(zip(got, ref)):
        excess = abs(a - b) - (atol + rtol * abs(b))
        if excess > worst:
            worst, worst_i = excess, i
    test.assertLessEqual(worst, 0.0, "%s: element %d off by %g beyond tolerance" % (what, worst_i, worst))


def uint8_close(test, got, ref, what):
    """The fixtures' uint8 rule: |diff| <= 1 and at most 1% of the values differ."""
    test.assertEqual(len(got), len(ref), what + ": sizes")
    diffs = [abs(a - b) for a, b in zip(got, ref)]
    test.assertLessEqual(max(diffs), 1, what)
    test.assertLessEqual(sum(1 for d in diffs if d), len(ref) // 100, what)


def f32(x):
    """x rounded to float32, as torch holds it."""
    return struct.unpack("f", struct.pack("f", x))[0]


def run_threads(*targets):
    """Runs each target on its own thread; re-raises the first exception one raised."""
    errors = []

    def wrap(fn):
        def run():
            try:
                fn()
            except BaseException as e:  # noqa: B902 - reported to the test thread
                errors.append(e)
        return run
    threads = [threading.Thread(target=wrap(t), name="run-%d" % i) for i, t in enumerate(targets)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(300)
        if th.is_alive():
            raise AssertionError("%s did not finish" % th.name)
    if errors:
        raise errors[0]


def c_floats(values):
    buf = (ctypes.c_float * len(values))()
    ctypes.memmove(buf, bytes(array.array("f", values)), 4 * len(values))
    return buf


# ---- tests that need no model ---------------------------------------------------------------------------

class TestPackage(unittest.TestCase):
    """Version, PEP 561 marker and type hints of the public API."""

    PKG_DIR = os.path.join(SOURCE_DIR, "bindings", "python")

    def test_version(self):
        with open(os.path.join(self.PKG_DIR, "pyproject.toml"), encoding="utf-8") as f:
            m = re.search(r'^version = "([^"]+)"', f.read(), flags=re.M)
        self.assertEqual(sf.__version__, m.group(1))
        self.assertRegex(sf.version(), r"^\d+\.\d+\.\d+$")  # the loaded library's (sf_version)

    def test_py_typed_marker(self):
        self.assertTrue(os.path.isfile(os.path.join(self.PKG_DIR, "snapfusion", "py.typed")))
        sys.path.insert(0, os.path.join(self.PKG_DIR, "_build"))
        try:
            import snapfusion_build
        finally:
            sys.path.pop(0)
        shipped = [arc for _, arc in snapfusion_build._package_files()]
        self.assertIn("snapfusion/py.typed", shipped)

    def public_callables(self):
        """(qualified name, function) of every public function, method and property of the
        names in __all__."""
        for name in sf.__all__:
            obj = getattr(sf, name)
            if inspect.isfunction(obj):
                yield name, obj
            elif inspect.isclass(obj) and obj.__module__.startswith("snapfusion") \
                    and not issubclass(obj, (enum.Enum, BaseException)):
                for attr, member in vars(obj).items():
                    if attr.startswith("_") and attr not in ("__init__", "__enter__", "__exit__", "__iter__"):
                        continue
                    if isinstance(member, (classmethod, staticmethod)):
                        member = member.__func__
                    if isinstance(member, property):
                        for fn in (member.fget, member.fset):
                            if fn is not None:
                                yield "%s.%s" % (name, attr), fn
                    elif inspect.isfunction(member):
                        yield "%s.%s" % (name, attr), member

    def test_public_api_is_annotated(self):
        optional = {}
        for mod in ("numpy", "numpy.typing", "PIL.Image"):
            try:
                __import__(mod)
            except ImportError:
                continue
            optional[mod.split(".")[0]] = sys.modules[mod.split(".")[0]]
        checked = 0
        for qualname, fn in self.public_callables():
            sig = inspect.signature(fn)
            params = [p for p in sig.parameters.values() if p.name not in ("self", "cls")]
            for p in params:
                self.assertIsNot(p.annotation, inspect.Parameter.empty, "%s: %s has no type" % (qualname, p.name))
            self.assertIsNot(sig.return_annotation, inspect.Signature.empty, qualname + ": no return type")
            # The hints resolve (names exist); numpy/PIL ones only when those are installed,
            # and from Python 3.10 on (3.9 runs the package but cannot evaluate `X | None`).
            if sys.version_info < (3, 10):
                continue
            ann = " ".join(str(a) for a in fn.__annotations__.values())
            if ("numpy" in ann and "numpy" not in optional) or ("PIL" in ann and "PIL" not in optional):
                continue
            typing.get_type_hints(fn, globalns=vars(sf), localns=optional)
            checked += 1
        if sys.version_info >= (3, 10):
            self.assertGreater(checked, 80)



class TestLibrary(unittest.TestCase):
    def test_versions(self):
        self.assertEqual(sf.abi_version(), 1)
        with open(os.path.join(SOURCE_DIR, "include", "snapfusion.h"), encoding="utf-8") as f:
            header = f.read()
        m = re.search(r'#define SF_VERSION_STRING "([^"]+)"', header)
        self.assertEqual(sf.version(), m.group(1))
        major, minor, patch = (int(x) for x in m.group(1).split("."))
        self.assertEqual(sf.version_number(), major * 10000 + minor * 100 + patch)

    def test_every_header_function_is_declared(self):
        """Each SF_API function of snapfusion.h (the deprecated ones included) has a ctypes
        declaration whose result and argument types are exactly the C ones."""
        with open(os.path.join(SOURCE_DIR, "include", "snapfusion.h"), encoding="utf-8") as f:
            header = re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)
        enums = set(re.findall(r"typedef enum (sf_\w+)", header))
        header = re.sub(r'SF_DEPRECATED\("[^"]*"\)', "", header)
        decls = re.findall(r"^SF_API\s+([^;()]*?)\b(sf_\w+)\s*\(([^)]*)\)\s*;", header, flags=re.M)
        self.assertGreater(len(decls), 75)
        P = ctypes.POINTER
        opaque = {"sf_context": raw.Context, "sf_params": raw.Params, "sf_pipeline": raw.Pipeline,
                  "sf_rng": raw.Rng, "sf_image": raw.Image, "sf_job": raw.Job, "sf_schedule": raw.Schedule, "sf_files": raw.Files}
        scalars = {"int": ctypes.c_int, "int32_t": ctypes.c_int32, "int64_t": ctypes.c_int64,
                   "uint8_t": ctypes.c_uint8, "uint32_t": ctypes.c_uint32, "uint64_t": ctypes.c_uint64,
                   "size_t": ctypes.c_size_t, "float": ctypes.c_float, "double": ctypes.c_double,
                   "sf_log_fn": raw.LOG_FN, "sf_progress_fn": raw.PROGRESS_FN}

        def expected(ctype, where):
            """The ctypes types accepted for one C type (text without the parameter name)."""
            const = "const" in ctype.split()
            base = " ".join(w for w in ctype.replace("*", " ").split() if w != "const")
            stars = ctype.count("*")
            if base == "void":
                return {None} if stars == 0 else {ctypes.c_void_p}
            if base == "char" and stars >= 1:
                # const char * is a string; char * a caller buffer (raw bytes are fine too)
                t = {ctypes.c_char_p} if const or stars == 2 else {ctypes.c_char_p, ctypes.c_void_p}
                stars -= 1
            elif base in enums:
                t = {ctypes.c_int}
            elif base in opaque:
                self.assertGreaterEqual(stars, 1, where + ": opaque type by value")
                t = {opaque[base]}
            else:
                self.assertIn(base, scalars, where + ": unknown C type " + ctype)
                t = {scalars[base]}
            for _ in range(stars):
                t = {P(x) for x in t}
            return t

        names = set()
        for ret, name, args in decls:
            names.add(name)
            self.assertIn(name, raw.FUNCTIONS, name + " has no binding")
            restype, argtypes = raw.FUNCTIONS[name]
            self.assertIn(restype, expected(ret, name + " result"), name + ": result type")
            params = [] if args.strip() in ("", "void") else [a.strip() for a in args.split(",")]
            self.assertEqual(len(argtypes), len(params), name + ": argument count")
            for i, (param, got) in enumerate(zip(params, argtypes)):
                ctype = re.sub(r"\b\w+$", "", param) if re.search(r"[\w*]\s*\b\w+$", param) else param
                self.assertIn(got, expected(ctype, "%s argument %d" % (name, i + 1)),
                              "%s argument %d (%s)" % (name, i + 1, param))
        self.assertEqual(set(raw.FUNCTIONS) - names, set(), "bindings of functions the header lacks")
        for old in ("sf_unet_predict", "sf_decode_latents", "sf_encode_image"):  # declared, deprecated
            self.assertIn(old, names)

    def test_enums_match_the_header(self):
        """Every member of the header's enums has a Python member of the same name and value;
        every enum of the header is mirrored, or said here how the package covers it."""
        with open(os.path.join(SOURCE_DIR, "include", "snapfusion.h"), encoding="utf-8") as f:
            header = re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)
        bodies = dict((m.group(2), m.group(1)) for m in re.finditer(r"typedef enum \w+ \{([^}]*)\} (\w+);", header))
        pairs = (("sf_param", "SF_PARAM_", sf.Param), ("sf_param_array", "SF_PARAM_", sf.Param),
                 ("sf_info", "SF_INFO_", sf.Info), ("sf_weight_type", "SF_WEIGHT_", sf.WeightType),
                 ("sf_network", "SF_NET_", sf.Network), ("sf_sampler", "SF_SAMPLER_", sf.Sampler),
                 ("sf_prediction", "SF_PREDICTION_", sf.Prediction),
                 ("sf_timestep_spacing", "SF_SPACING_", sf.TimestepSpacing), ("sf_log_level", "SF_LOG_", sf.LogLevel),
                 ("sf_layout", "SF_LAYOUT_", sf.Layout), ("sf_schedule_table", "SF_TABLE_", sf.ScheduleTable),
                 ("sf_memory", "SF_MEMORY_", sf.Memory), ("sf_prompt_syntax", "SF_PROMPT_SYNTAX_", sf.PromptSyntax))
        covered_otherwise = {"sf_status": "exception classes (test_status_codes_map_to_exceptions)",
                             "sf_format": "describe('text' / 'json')", "sf_rng_kind": "Rng(kind='cpu' / 'scalar')"}
        self.assertEqual(set(bodies) - {c for c, _, _ in pairs} - set(covered_otherwise), set(),
                         "enums of the header the package does not mirror")
        # MemoryEstimate's fields are sf_memory's figures in its order.
        self.assertEqual([f.upper() for f in sf.MemoryEstimate._fields], [m.name for m in sf.Memory])
        self.assertEqual([int(m) for m in sf.Memory], list(range(len(sf.Memory))))
        for c_enum, prefix, py_enum in pairs:
            members = re.findall(r"\b%s(\w+)\s*=\s*(\d+)" % prefix, bodies[c_enum])
            self.assertTrue(members, c_enum)
            for name, value in members:
                self.assertIn(name, py_enum.__members__, "%s%s has no %s member" % (prefix, name, py_enum.__name__))
                self.assertEqual(int(py_enum[name]), int(value), "%s%s" % (prefix, name))

    def test_status_codes_map_to_exceptions(self):
        seen = set()
        for status in range(1, 11):
            exc = sf.errors.error_for(status, "msg %d" % status)
            self.assertIsInstance(exc, sf.SnapFusionError)
            self.assertEqual(exc.status, status)
            self.assertEqual(str(exc), "msg %d" % status)
            self.assertNotEqual(sf.status_string(status), "unknown status")
            seen.add(type(exc))
        self.assertEqual(len(seen), 10)
        future = sf.errors.error_for(99, "newer")
        self.assertIs(type(future), sf.SnapFusionError)
        self.assertEqual(future.status, 99)
        self.assertTrue(issubclass(sf.InvalidArgumentError, ValueError))

    def test_library_lookup(self):
        """SNAPFUSION_LIBRARY wins; a wrong path is an ImportError naming it; without it a
        copy next to the package is found."""
        lib_path = raw.lib._name
        code = "import snapfusion, snapfusion._lib as l; print(l.lib._name)"
        pkg_dir = os.path.join(SOURCE_DIR, "bindings", "python")
        env = dict(os.environ, PYTHONPATH=pkg_dir, SNAPFUSION_LIBRARY="/nonexistent/libsnapfusion.so")
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("ImportError", r.stderr)
        self.assertIn("/nonexistent/libsnapfusion.so", r.stderr)
        with tempfile.TemporaryDirectory() as tmp:
            import shutil
            shutil.copytree(os.path.join(pkg_dir, "snapfusion"), os.path.join(tmp, "snapfusion"),
                            ignore=shutil.ignore_patterns("__pycache__"))
            shutil.copy(lib_path, os.path.join(tmp, "snapfusion", "libsnapfusion.so.1"))
            env = dict(os.environ, PYTHONPATH=tmp)
            env.pop("SNAPFUSION_LIBRARY", None)
            r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout.strip(), os.path.join(tmp, "snapfusion", "libsnapfusion.so.1"))

    def test_params(self):
        p = sf.Params()
        self.assertIsNone(p.get(sf.Param.STEPS))
        p.set(sf.Param.STEPS, 8)
        p.set(sf.Param.GUIDANCE_SCALE, 7.5)
        p.set(sf.Param.PROMPT, "a cat \u00e9")
        p.set(sf.Param.SEED, 2 ** 64 - 1)  # unsigned seeds cross as their int64 bit pattern
        self.assertEqual(p.get(sf.Param.STEPS), 8)
        self.assertEqual(p.get(sf.Param.GUIDANCE_SCALE), 7.5)
        self.assertEqual(p.get(sf.Param.PROMPT), "a cat \u00e9")
        self.assertEqual(p.get(sf.Param.SEED), -1)
        with self.assertRaises(sf.InvalidArgumentError) as cm:
            p.set_float(sf.Param.STEPS, 1.5)  # wrong type for the key: the library's message
        self.assertIn("int", str(cm.exception))
        p.set(sf.Param.STEPS, None)
        self.assertIsNone(p.get(sf.Param.STEPS))
        with self.assertRaises(sf.InvalidArgumentError):
            p.set(sf.Param.SEED, 2 ** 64)
        p.close()
        with self.assertRaises(sf.BadStateError):
            p.set(sf.Param.STEPS, 1)

    def test_context_logging_and_errors(self):
        got = []
        with sf.Context(threads=1, log=lambda level, msg: got.append((level, msg))) as ctx:
            self.assertEqual(ctx.threads, 1)
            ctx.threads = 2
            self.assertEqual(ctx.threads, 2)
            with self.assertRaises(sf.InvalidArgumentError) as cm:
                ctx.log_level = 99
            self.assertIn("log level", cm.exception.message)
            self.assertIn("log level", ctx.last_error)
            # Reported once: the library's ERROR log message of this failure is the exception.
            self.assertEqual(got, [])
        self.assertTrue(ctx.closed)
        with self.assertRaises(sf.BadStateError):
            ctx.threads = 1

    def test_errors_are_not_also_logged(self):
        """The default `snapfusion` logger does not repeat an error the call raises."""
        records = []

        class Keep(logging.Handler):
            def emit(self, record):
                records.append(record)

        logger = logging.getLogger("snapfusion")
        handler, old_level = Keep(level=logging.DEBUG), logger.level
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        try:
            with sf.Context() as ctx:
                self.assertEqual(ctx.log_level, sf.LogLevel.DEBUG)
                with self.assertRaises(sf.InvalidArgumentError) as cm:
                    ctx.log_level = 42
                self.assertIn("log level", str(cm.exception))
                self.assertEqual([r.getMessage() for r in records], [])
                # An ERROR message that is not the failure being raised is still delivered
                # (the library's log callback called as C would, then a successful call).
                ctx._h.keep(None, int(sf.LogLevel.ERROR), b"an error no exception carries")
                ctx.threads = 1
                self.assertEqual([(r.levelno, r.getMessage()) for r in records],
                                 [(logging.ERROR, "an error no exception carries")])
        finally:
            logger.removeHandler(handler)
            logger.setLevel(old_level)

    def test_example_prints_an_error_once(self):
        """What users see: the example CLI (logging.basicConfig) prints a failure once."""
        env = dict(os.environ, PYTHONPATH=os.path.join(SOURCE_DIR, "bindings", "python"))
        with tempfile.TemporaryDirectory() as tmp:
            r = subprocess.run([sys.executable, os.path.join(SOURCE_DIR, "examples", "python", "txt2img.py"),
                                "-m", os.path.join(tmp, "no-such-model-folder"), "-p", "x", "-v",
                                "-o", os.path.join(tmp, "x.png")], env=env, capture_output=True, text=True)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stderr.count("no-such-model-folder"), 1, r.stderr)
        self.assertIn("txt2img: FileIOError: ", r.stderr)

    def test_rng(self):
        a = sf.Rng(42).randn(40)
        b = sf.Rng(42 + 2 ** 32).randn(40)  # only the low 32 bits of a seed count
        self.assertEqual(a, b)
        # successive calls continue one stream, as on one torch generator
        r, r2 = sf.Rng(7), sf.Rng(7)
        first, second = r.randn(20), r.randn(20)
        self.assertNotEqual(first, second)
        self.assertEqual((r2.randn(20), r2.randn(20)), (first, second))
        self.assertEqual(len(sf.Rng(1).rand(5)), 5)
        self.assertEqual(sf.Rng(1).randn_f64(3).typecode, "d")

    @needs_fixtures
    def test_rng_matches_fixture(self):
        entry, t = case("generator/seed_42")
        ref = tensor(t, "out.randn_1x4x5x7")
        within(self, sf.Rng(42).randn(140), ref, {"atol": 0.0, "rtol": 0.0}, "randn avx2")
        ref = tensor(t, "out.randn_1x4x5x7_scalar")
        within(self, sf.Rng(42, kind="scalar").randn(140), ref, {"atol": 0.0, "rtol": 0.0}, "randn scalar")

    @needs_fixtures
    def test_schedule_matches_fixture(self):
        entry, t = case("scheduler/ddim_eps/8steps")
        s = sf.Schedule("ddim", entry["params"]["config"])
        noise = tensor(t, "in.noise")
        s.set_steps(8, len(noise))
        self.assertEqual([int(x) for x in s.timesteps], list(tensor(t, "out.timesteps")))
        self.assertEqual(s.init_noise_sigma, 1.0)
        self.assertEqual(len(s.sigmas()), 0)
        # The case's fake model: model_output = 0.1*x_in + c(t)*phi, phi given.
        phi = tensor(t, "in.phi")
        x = array.array("f", noise)
        for i in range(s.evaluations):
            x_in = s.scale_input(i, x)
            c = 0.05 * float(s.timestep(i)) / 1000
            out = array.array("f", (0.1 * a + c * p for a, p in zip(x_in, phi)))
            self.assertIs(s.step(i, out, x), x)  # in place
        within(self, x, tensor(t, "out.final"), entry["tolerance"]["final"], "ddim final")
        with self.assertRaises(sf.InvalidArgumentError):
            sf.Schedule("no-such-sampler")
        s.close()

    @needs_fixtures
    def test_schedule_tables(self):
        entry, t = case("scheduler/alphas_cumprod")
        s = sf.Schedule("ddim", entry["params"]["config"])
        betas, acp = s.betas, s.alphas_cumprod  # no set_steps needed
        self.assertEqual((len(betas), len(acp)), (1000, 1000))
        self.assertEqual(betas.typecode, "f")
        tol = entry["tolerance"]
        within(self, betas, tensor(t, "out.betas"), tol["betas"], "betas")
        within(self, acp, tensor(t, "out.alphas_cumprod"), tol["alphas_cumprod"], "alphas_cumprod")
        within(self, [s.final_alpha_cumprod], tensor(t, "out.final_alpha_cumprod"), tol["final_alpha_cumprod"],
               "final_alpha_cumprod")
        self.assertEqual(s.final_alpha_cumprod, acp[0])  # set_alpha_to_one is false
        self.assertEqual(s.get_table("betas"), betas)
        self.assertEqual(s.get_table(sf.ScheduleTable.ALPHAS_CUMPROD), acp)
        # acp = cumprod(1 - betas) in float32
        prod = 1.0
        for i in (0, 1, 2):
            prod = f32(prod * f32(1.0 - betas[i]))
            self.assertEqual(acp[i], prod)
        with sf.Schedule("ddim", dict(entry["params"]["config"], set_alpha_to_one=True)) as one:
            self.assertEqual(one.final_alpha_cumprod, 1.0)
        # The C call's sizes: a size query, then too small a buffer is an error naming both.
        n = ctypes.c_size_t()
        self.assertEqual(raw.lib.sf_schedule_get_table(s._h.ptr, 1, None, 0, ctypes.byref(n)), 0)
        self.assertEqual(n.value, 1000)
        short = (ctypes.c_float * 999)()
        self.assertEqual(raw.lib.sf_schedule_get_table(s._h.ptr, 2, short, 999, ctypes.byref(n)), 1)
        self.assertIn("999 < 1000", raw.lib.sf_last_error().decode())
        with self.assertRaises(sf.InvalidArgumentError):
            s.get_table("gammas")
        s.close()

    @needs_fixtures
    def test_schedule_begin_index_and_add_noise(self):
        """DDIM: begin_index is diffusers' get_timesteps (t_start = steps - min(int(steps *
        strength), steps)); add_noise(i, x, noise) = sqrt(acp[t]) * x + sqrt(1 - acp[t]) * noise
        with t = timestep(i) and acp = alphas_cumprod, in float32 as torch computes it; both
        as the img2img fixture made them."""
        entry, t = case("pipeline/img2img_ddim_strength0.6_cfg7.5_neg")
        p = entry["params"]
        s = sf.Schedule("ddim", p["scheduler_config"])
        with self.assertRaises(sf.BadStateError):
            s.begin_index(0.5)
        steps = p["num_inference_steps"]
        s.set_steps(steps, 4 * 8 * 8)
        for strength in (0.125, 0.3, 0.5, 0.6, 0.75, 0.99, 1.0):
            self.assertEqual(s.begin_index(strength), steps - min(int(steps * strength), steps), strength)
        for strength in (0.0, 0.05, 1.5):
            with self.assertRaises(sf.InvalidArgumentError) as cm:
                s.begin_index(strength)
            self.assertIn("strength", str(cm.exception))
        begin = s.begin_index(p["strength"])
        self.assertEqual(begin, p["t_start"])
        self.assertEqual(int(s.timestep(begin)), tensor(t, "mid.latent_timestep")[0])
        self.assertEqual([int(s.timestep(i)) for i in range(begin, steps)], list(tensor(t, "mid.timesteps")))
        acp = s.alphas_cumprod
        x, noise = sf.Rng(1).randn(256), sf.Rng(2).randn(256)
        for i in range(steps):
            a = acp[int(s.timestep(i))]
            sa, sb = f32(a ** 0.5), f32(f32(1.0 - a) ** 0.5)
            want = array.array("f", (f32(f32(sa * xi) + f32(sb * ni)) for xi, ni in zip(x, noise)))
            self.assertEqual(s.add_noise(i, x, noise), want, "add_noise at evaluation %d" % i)
        # The fixture: the noisy latents from the init latents and the second generator draw.
        draws = tensor(t, "mid.generator_draws")
        noisy = s.add_noise(begin, tensor(t, "mid.init_latents"), draws[256:512])
        within(self, noisy, tensor(t, "mid.noisy_latents"), entry["tolerance"]["noisy_latents"], "noisy latents")
        with self.assertRaises(sf.InvalidArgumentError) as cm:  # one count for both buffers
            s.add_noise(begin, x, noise[:255])
        self.assertIn("255 noise values for 256", str(cm.exception))
        with self.assertRaises(sf.InvalidArgumentError) as cm:
            s.add_noise(steps, x, noise)
        self.assertIn("outside", str(cm.exception))
        with self.assertRaises(sf.InvalidArgumentError):
            s.step(begin, x, array.array("f", x), noise=noise[:10])
        s.close()


# ---- tests on the tiny-sd fixture model -------------------------------------------------------------------

@needs_fixtures
class TestPipeline(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pipe = sf.Pipeline.load(TINY_SD, threads=THREADS)

    @classmethod
    def tearDownClass(cls):
        cls.pipe.close()

    def test_load_and_describe(self):
        p = self.pipe
        self.assertEqual(p.text_tokens, 77)
        self.assertEqual(p.text_hidden, 32)
        self.assertEqual(p.latent_channels, 4)
        self.assertAlmostEqual(p.vae_scale, 0.18215, places=6)
        self.assertTrue(p.networks & sf.Network.UNET)
        self.assertGreater(p.parameter_count, 0)
        self.assertEqual(p.size_multiple, 16)  # the decoder's 8 times the UNet's one halving
        self.assertEqual(p.scale_factor, 8)
        self.assertEqual(p.active_runs, 0)
        text = p.describe()
        self.assertIn("StableDiffusionPipeline", text)
        d = p.describe("json")
        self.assertIsInstance(d, dict)
        self.assertIn("StableDiffusionPipeline", json.dumps(d))

    def test_load_options(self):
        with sf.Pipeline.load(TINY_SD, threads=THREADS, components=["text_encoder"]) as p:
            self.assertEqual(p.networks & (sf.Network.UNET | sf.Network.TEXT_ENCODER), sf.Network.TEXT_ENCODER)
            with self.assertRaises(sf.SnapFusionError):
                p.txt2img("x", steps=1)
        with sf.Pipeline.load(TINY_SD, threads=THREADS, random_weights=True, random_seed=3) as p:
            self.assertEqual(p.text_hidden, 32)
            a = p.encode_prompt("x")
            self.assertNotEqual(a, self.pipe.encode_prompt("x"))
        with sf.Pipeline.load(TINY_SD, threads=THREADS, variant="fp16", components=["unet"]) as p:
            self.assertTrue(p.networks & sf.Network.UNET)
        with sf.Pipeline.load(TINY_SD, threads=THREADS, components=["text_encoder"],
                              tokenizer_path=os.path.join(PUBLIC, "tokenizer")) as p:
            self.assertEqual(list(p.tokenize("a photo of a cat"))[:7], [49406, 320, 1125, 539, 320, 2368, 49407])
        with self.assertRaises(sf.FileIOError) as cm:
            sf.Pipeline.load(TINY_SD, threads=THREADS, tokenizer_path=os.path.join(PUBLIC, "no-such-tokenizer"))
        self.assertIn("no-such-tokenizer", str(cm.exception))

    def test_errors_carry_messages(self):
        missing = os.path.join(PUBLIC, "no-such-model")
        with self.assertRaises(sf.SnapFusionError) as cm:
            sf.Pipeline.load(missing, threads=THREADS)
        self.assertIn("no-such-model", str(cm.exception))
        self.assertIn(type(cm.exception), (sf.FileIOError, sf.NotFoundError, sf.BadModelError))
        for width in (60, 72):  # 72 is a multiple of 8 but not of tiny-sd's 16
            with self.assertRaises(sf.InvalidArgumentError) as cm:
                self.pipe.txt2img("x", width=width, height=64, steps=1)
            self.assertIn("multiples of 16", str(cm.exception))
            self.assertIn("%dx64" % width, str(cm.exception))
            self.assertEqual(cm.exception.status, 1)
        with self.assertRaises(sf.InvalidArgumentError) as cm:
            self.pipe.txt2img("x", sampler="nope")
        self.assertIn("ddim", str(cm.exception))
        with self.assertRaises(sf.UnsupportedError) as cm:
            self.pipe.txt2img("x", eta=0.5, steps=1)
        self.assertIn("eta", str(cm.exception))
        with self.assertRaises(TypeError):
            self.pipe.txt2img("x", no_such_option=1)
        with self.assertRaises(sf.InvalidArgumentError):
            self.pipe.unet_predict(array.array("f", [0.0] * 10), 1.0, [0.0] * 77 * 32)
        with self.assertRaises(sf.FileIOError):
            sf.Image.open(missing + ".png")

    def test_raising_log_callback(self):
        """An exception in a callback is re-raised after the C call returns, and the
        context stays usable."""
        def bad(level, msg):
            raise RuntimeError("from the log callback: " + msg)
        with sf.Context(threads=THREADS, log=bad) as ctx:
            p = sf.Pipeline.load(TINY_SD, context=ctx, components=["text_encoder"])
            with self.assertRaises(RuntimeError) as cm:
                p.tokenize("word " * 100)  # the library warns (WARN) that the prompt is truncated
            self.assertIn("prompt truncated", str(cm.exception))
            self.assertEqual(len(p.tokenize("a photo of a cat")), 77)  # a later call does not see it
            ctx.threads = 1
            self.assertEqual(ctx.threads, 1)

    def test_token_text(self):
        self.assertEqual(self.pipe.token_text(2368), "cat</w>")
        ids = self.pipe.tokenize("a photo of a cat")
        self.assertEqual([self.pipe.token_text(i) for i in ids[:7]],
                         ["<|startoftext|>", "a</w>", "photo</w>", "of</w>", "a</w>", "cat</w>", "<|endoftext|>"])
        for bad in (49408, -1, 2 ** 40):
            with self.assertRaises(sf.NotFoundError) as cm:
                self.pipe.token_text(bad)
            self.assertIn("outside the vocabulary", str(cm.exception))
        # The C call: a size query, then the text; a short buffer gets a truncated copy.
        needed = ctypes.c_size_t()
        self.assertEqual(raw.lib.sf_token_text(self.pipe._h.ptr, 2368, None, 0, ctypes.byref(needed)), 0)
        self.assertEqual(needed.value, len("cat</w>") + 1)
        buf = ctypes.create_string_buffer(4)
        self.assertEqual(raw.lib.sf_token_text(self.pipe._h.ptr, 2368, buf, 4, ctypes.byref(needed)), 0)
        self.assertEqual(buf.value, b"cat")

    def test_building_block_sizes_are_checked(self):
        """Every buffer crosses with its size (the _v2 calls): a wrong one is an
        InvalidArgumentError that names the size expected, never an overrun."""
        p = self.pipe
        text = p.encode_prompt("a cat")
        lat = sf.Rng(3).randn(4 * 8 * 8)
        cases = (
            (lambda: p.unet_predict(lat[:250], 999, text), "latents_count 250, expected 256"),
            (lambda: p.unet_predict(lat, 999, text[:-1]), "text_count 2463, expected 2432"),  # 76 tokens + 31
            (lambda: p.unet_predict(lat + lat, [999.0], text + text), "timesteps_count 1, expected 2"),
            (lambda: p.decode(lat[:255], height=8, width=8), "latents_count 255, expected 256"),
            (lambda: p.encode_image(array.array("f", bytes(4 * (3 * 64 * 64 - 1))), height=64, width=64),
             "image_count 12287, expected 12288"),
        )
        for call, message in cases:
            with self.assertRaises(sf.InvalidArgumentError) as cm:
                call()
            self.assertIn(message, str(cm.exception))
        # Output capacities, through the raw calls (the package always allocates enough).
        P = p._h.ptr
        short = (ctypes.c_float * 255)()
        L = raw.lib
        self.assertEqual(L.sf_unet_predict_v2(P, c_floats(lat), 256, 1, 8, 8, c_floats([999.0]), 1, c_floats(text),
                                              len(text), 77, short, 255), 1)
        self.assertIn("out_capacity 255, 256 needed", L.sf_last_error().decode())
        self.assertEqual(L.sf_decode_latents_v2(P, int(sf.Network.VAE_DECODER), c_floats(lat), 256, 1, 8, 8, 0, short,
                                                255), 1)
        self.assertIn("image_capacity 255, 12288 needed", L.sf_last_error().decode())
        image = c_floats([0.0] * (3 * 64 * 64))
        self.assertEqual(L.sf_encode_image_v2(P, int(sf.Network.VAE_ENCODER), image, 3 * 64 * 64, 1, 64, 64, 0, short,
                                              255, None, 0), 1)
        self.assertIn("mean_capacity 255, 256 needed", L.sf_last_error().decode())
        with p.generate("a cat", steps=1, seed=1) as job:
            job.finish()
            self.assertEqual(L.sf_job_image_count(job._h.ptr), 3 * 64 * 64)
            self.assertEqual(L.sf_job_image_f32(job._h.ptr, 0, image, 3 * 64 * 64 - 1), 1)
            self.assertIn("12287 floats given, 12288 needed", L.sf_last_error().decode())

    def test_img2img_from_building_blocks(self):
        """StableDiffusionImg2ImgPipeline written with the building blocks (encode_image,
        Rng, Schedule.begin_index / add_noise / step, unet_predict, decode) makes the
        fixture's image."""
        entry, t = case("pipeline/img2img_ddim_strength0.6_cfg7.5_neg")
        prm, tol = entry["params"], entry["tolerance"]
        p = self.pipe
        rgb = tensor(t, "in.init_image_uint8")
        hw = 64 * 64
        image = array.array("f", (f32(2.0 * f32(rgb[i * 3 + c] / 255.0) - 1.0) for c in range(3) for i in range(hw)))
        mean, logvar = p.encode_image(image, height=64, width=64, unscaled=True)
        within(self, mean, tensor(t, "mid.posterior_mean"), tol["posterior_mean"], "posterior mean")
        rng = sf.Rng(prm["seed"])
        draw = rng.randn(256)
        sample = [m + (2.718281828459045 ** (0.5 * max(-30.0, min(20.0, lv)))) * d
                  for m, lv, d in zip(mean, logvar, draw)]
        latents = array.array("f", (p.vae_scale * x for x in sample))
        within(self, latents, tensor(t, "mid.init_latents"), tol["init_latents"], "init latents")
        s = sf.Schedule("ddim", prm["scheduler_config"])
        s.set_steps(prm["num_inference_steps"], len(latents))
        begin = s.begin_index(prm["strength"])
        latents = s.add_noise(begin, latents, rng.randn(256))
        within(self, latents, tensor(t, "mid.noisy_latents"), tol["noisy_latents"], "noisy latents")
        text = p.encode_prompt(prm["negative_prompt"]) + p.encode_prompt(prm["prompt"])
        g = prm["guidance_scale"]
        for i in range(begin, s.evaluations):
            x_in = s.scale_input(i, latents)
            out = p.unet_predict(x_in + x_in, s.timestep(i), text)
            uncond, cond = out[:256], out[256:]
            guided = array.array("f", (f32(u + f32(g * f32(c - u))) for u, c in zip(uncond, cond)))
            s.step(i, guided, latents)
        decoded = p.decode(latents)
        within(self, decoded, tensor(t, "mid.vae_out"), tol["vae_out"], "decoded image")
        unit = [min(1.0, max(0.0, f32(f32(v / 2) + 0.5))) for v in decoded]
        nhwc = array.array("f", (unit[c * hw + i] for i in range(hw) for c in range(3)))
        within(self, nhwc, tensor(t, "out.image"), tol["image"], "image")
        # The library's own img2img of the same image and seed agrees.
        with p.generate(prm["prompt"], prm["negative_prompt"], init_image=(bytes(rgb), 64, 64),
                        strength=prm["strength"], steps=prm["num_inference_steps"], guidance_scale=g,
                        seed=prm["seed"], sampler="ddim") as job:
            job.finish()
            within(self, job.image_f32("nhwc"), tensor(t, "out.image"), tol["image"], "library img2img")
            within(self, job.image_f32("nhwc"), nhwc, {"atol": 1e-4, "rtol": 1e-4}, "library vs building blocks")

    def test_tokenize_matches_fixture(self):
        with open(os.path.join(PUBLIC, "tokenizer", "cases.json"), encoding="utf-8") as f:
            cases = json.load(f)["cases"]
        self.assertGreater(len(cases), 30)
        for c in cases:
            ids = self.pipe.tokenize(c["prompt"])
            self.assertEqual(list(ids), c["input_ids"], c["name"])
            self.assertEqual(ids.untruncated, c["num_tokens_untruncated"], c["name"])

    def test_encode_matches_fixture_and_c(self):
        entry, t = case("text_encoder/rows")
        ids = list(tensor(t, "in.input_ids"))
        rows = [ids[i * 77:(i + 1) * 77] for i in range(5)]
        got = self.pipe.encode_ids(rows)
        within(self, got, tensor(t, "out.last_hidden_state"), entry["tolerance"]["last_hidden_state"], "encode")
        skip = self.pipe.encode_ids(rows, clip_skip=2)
        within(self, skip, tensor(t, "out.clip_skip_1"), entry["tolerance"]["clip_skip_1"], "clip skip")
        # The same call made directly through ctypes gives the same bits.
        n = 5 * 77 * 32
        out = (ctypes.c_float * n)()
        cids = (ctypes.c_int32 * len(ids))(*ids)
        self.assertEqual(raw.lib.sf_encode_ids(self.pipe._h.ptr, cids, 5, 77, 0, out, n), 0)
        self.assertEqual(bytes(out), bytes(got))
        # One prompt: encode_prompt == encode_ids(tokenize(prompt)).
        prompt = entry["params"]["prompts"][0]
        self.assertEqual(bytes(self.pipe.encode_prompt(prompt)), bytes(self.pipe.encode_ids(self.pipe.tokenize(prompt))))
        self.assertEqual(bytes(self.pipe.encode_prompt(prompt)), bytes(got[:77 * 32]))

    def test_unet_matches_fixture_and_c(self):
        entry, t = case("unet/t999")
        sample, ts = tensor(t, "in.sample"), tensor(t, "in.timestep_f32")
        text = tensor(t, "in.encoder_hidden_states")
        got = self.pipe.unet_predict(sample, list(ts), text, height=8, width=8)
        within(self, got, tensor(t, "out.noise_pred"), entry["tolerance"]["noise_pred"], "unet")
        # bytes in, scalar timestep, default (model) size: the same values
        self.assertEqual(bytes(self.pipe.unet_predict(bytes(sample), 999, text)), bytes(got))
        out = (ctypes.c_float * len(sample))()
        st = raw.lib.sf_unet_predict_v2(self.pipe._h.ptr, c_floats(sample), len(sample), 2, 8, 8, c_floats(ts), 2,
                                        c_floats(text), len(text), 77, out, len(out))
        self.assertEqual(st, 0)
        self.assertEqual(bytes(out), bytes(got))
        # The deprecated version 1 (declared, never used by the package) computes the same.
        old = (ctypes.c_float * len(sample))()
        st = raw.lib.sf_unet_predict(self.pipe._h.ptr, c_floats(sample), 2, 8, 8, c_floats(ts), c_floats(text), 77,
                                     old)
        self.assertEqual(st, 0)
        self.assertEqual(bytes(old), bytes(got))

    def test_decode_matches_fixture_and_c(self):
        entry, t = case("vae/decode")
        latents, z = tensor(t, "in.latents"), tensor(t, "in.z")
        ref, tol = tensor(t, "out.image"), entry["tolerance"]["image"]
        got = self.pipe.decode(latents, height=8, width=8)
        within(self, got, ref, tol, "decode")
        within(self, self.pipe.decode(z, height=8, width=8, unscaled=True), ref, tol, "decode unscaled")
        out = (ctypes.c_float * len(ref))()
        st = raw.lib.sf_decode_latents_v2(self.pipe._h.ptr, int(sf.Network.VAE_DECODER), c_floats(latents),
                                          len(latents), 2, 8, 8, 0, out, len(out))
        self.assertEqual(st, 0)
        self.assertEqual(bytes(out), bytes(got))
        old = (ctypes.c_float * len(ref))()
        st = raw.lib.sf_decode_latents(self.pipe._h.ptr, int(sf.Network.VAE_DECODER), c_floats(latents), 2, 8, 8, 0,
                                       old)
        self.assertEqual(st, 0)
        self.assertEqual(bytes(old), bytes(got))

    def test_encode_image_shapes(self):
        with sf.Pipeline.load(TINY_SD, threads=THREADS, components=["vae_encoder"]) as p:
            image = array.array("f", [0.25] * (3 * 64 * 64))
            mean, logvar = p.encode_image(image, height=64, width=64)
            self.assertEqual(len(mean), 4 * 8 * 8)
            self.assertEqual(len(logvar), 4 * 8 * 8)
            # The same through sf_encode_image_v2 directly, and through the deprecated version 1.
            for fn in ("v2", "v1"):
                cmean, clogvar = (ctypes.c_float * 256)(), (ctypes.c_float * 256)()
                if fn == "v2":
                    st = raw.lib.sf_encode_image_v2(p._h.ptr, int(sf.Network.VAE_ENCODER), c_floats(image), len(image),
                                                    1, 64, 64, 0, cmean, 256, clogvar, 256)
                else:
                    st = raw.lib.sf_encode_image(p._h.ptr, int(sf.Network.VAE_ENCODER), c_floats(image), 1, 64, 64, 0,
                                                 cmean, clogvar)
                self.assertEqual(st, 0, fn)
                self.assertEqual((bytes(cmean), bytes(clogvar)), (bytes(mean), bytes(logvar)), fn)

    def test_gc_frees_native_objects(self):
        gc.collect()
        base = sf.live_handles()
        for _ in range(3):
            p = sf.Pipeline.load(TINY_SD, threads=THREADS, components=["text_encoder"])
            p.encode_prompt("x")
            ref = weakref.ref(p)
            del p
            self.assertIsNone(ref())  # plain refcounting frees it: no cycle in the binding
        self.assertEqual(sf.live_handles(), base)
        # A context dropped before its pipeline stays alive as long as the pipeline needs it.
        ctx = sf.Context(threads=THREADS)
        p = sf.Pipeline.load(TINY_SD, context=ctx, components=["text_encoder"])
        del ctx
        gc.collect()
        self.assertEqual(len(p.encode_prompt("x")), 77 * 32)
        del p
        self.assertEqual(sf.live_handles(), base)
        # A user-made cycle holding a context, a pipeline, a job and an image: the collector
        # frees all of it, children first.
        ctx = sf.Context(threads=THREADS)
        holder = {"ctx": ctx, "pipe": sf.Pipeline.load(TINY_SD, context=ctx)}
        holder["job"] = holder["pipe"].generate("x", steps=2, seed=1)
        holder["job"].step()
        holder["preview"] = holder["job"].preview()
        holder["self"] = holder
        del holder, ctx
        gc.collect()
        self.assertEqual(sf.live_handles(), base)
        # Closing a context closes what was made with it.
        ctx = sf.Context(threads=THREADS)
        p = sf.Pipeline.load(TINY_SD, context=ctx, components=["text_encoder"])
        ctx.close()
        self.assertTrue(p.closed)
        with self.assertRaises(sf.BadStateError):
            p.encode_prompt("x")
        self.assertEqual(sf.live_handles(), base)


# ---- a model from memory (Files, Pipeline.load_files) ------------------------------------------------------

def folder_bytes(folder):
    """{relative '/' path: bytes} of every file under folder."""
    out = {}
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            full = os.path.join(dirpath, name)
            with open(full, "rb") as f:
                out[os.path.relpath(full, folder).replace(os.sep, "/")] = f.read()
    return out


TINY_LCM = os.path.join(FIXTURES, "models", "tiny-lcm")


@unittest.skipUnless(os.path.isfile(os.path.join(TINY_LCM, "model_index.json")), "no %s" % TINY_LCM)
class TestLCM(unittest.TestCase):
    """An LCM-distilled model (the models set's tiny-lcm): its defaults (4 steps, guidance 8)
    when unset, and unet_guidance= reaching unet_predict."""

    def test_defaults_and_unet_guidance(self):
        opts = dict(width=64, height=64, seed=2024)
        with sf.Pipeline.load(TINY_LCM, threads=THREADS) as p:
            with p.generate("a watercolor fox sitting in tall grass", **opts) as job:
                self.assertEqual(job.steps_total, 4)
                image = job.finish()
            self.assertIn("Steps: 4", image.parameters)
            self.assertIn("CFG scale: 8", image.parameters)
            with p.generate("a watercolor fox sitting in tall grass", steps=4, guidance_scale=8.0, **opts) as job:
                self.assertEqual(bytes(job.finish().pixels), bytes(image.pixels))
            text = p.encode_prompt("a fox")
            lat = [0.1 * (i % 7) for i in range(4 * 8 * 8)]
            eps8 = p.unet_predict(lat, 999, text, height=8, width=8)
        with sf.Pipeline.load(TINY_LCM, threads=THREADS, unet_guidance=2.5) as p:
            eps25 = p.unet_predict(lat, 999, p.encode_prompt("a fox"), height=8, width=8)
        self.assertNotEqual(list(eps8), list(eps25))


@needs_fixtures
class TestFiles(unittest.TestCase):
    """Files and Pipeline.load_files against the same model loaded from its folder: the same
    image bit for bit, copied and borrowed (bytes, bytearray, memoryview, a read-only mmap), the
    lifetimes of both kinds, and the failures naming the file."""

    OPTIONS = dict(prompt="a photo of an astronaut riding a horse on mars", negative_prompt="blurry", width=64,
                   height=64, steps=2, seed=7, sampler="ddim")
    UNET = "unet/diffusion_pytorch_model.safetensors"

    @classmethod
    def setUpClass(cls):
        cls.files = folder_bytes(TINY_SD)
        with sf.Pipeline.load(TINY_SD, threads=THREADS) as p:
            cls.ref = p.txt2img(**cls.OPTIONS).pixels
            cls.ref_emb = p.encode_prompt("a photo of a cat")

    def generate(self, pipe):
        img = pipe.txt2img(**self.OPTIONS)
        self.assertEqual(img.size, (64, 64))
        return img.pixels

    def test_declared(self):
        for name in ("sf_files_create", "sf_files_destroy", "sf_files_add", "sf_pipeline_load_files"):
            self.assertIn(name, raw.FUNCTIONS)
        self.assertIn("Files", sf.__all__)

    def test_copied_set_may_close_right_after_loading(self):
        gc.collect()
        base = sf.live_handles()
        self.assertEqual(set(self.files), set(sf.Files.from_folder(TINY_SD).paths))
        for make in (lambda: sf.Files.from_folder(TINY_SD), lambda: sf.Files.from_dict(self.files)):
            files = make()
            self.assertFalse(files.borrowed)
            self.assertEqual(len(files), len(self.files))
            pipe = sf.Pipeline.load_files(files, threads=THREADS)
            files.close()  # copied files: the native set goes now, the pipeline keeps its bytes
            self.assertTrue(files.closed)
            self.assertNotIn("files", sf.live_handles())
            with self.assertRaises(sf.BadStateError):
                files.add("x.txt", b"x")
            with self.assertRaises(sf.BadStateError):
                sf.Pipeline.load_files(files, threads=THREADS)
            gc.collect()
            self.assertEqual(self.generate(pipe), self.ref)
            self.assertEqual(pipe.encode_prompt("a photo of a cat"), self.ref_emb)
            self.assertEqual(pipe.path, "memory:")
            self.assertTrue(pipe.describe().startswith("model: memory\n"))
            pipe.close()
        self.assertEqual(sf.live_handles(), base)
        # A context manager, and a raw sf_files_destroy-like drop: del frees it at once.
        with sf.Files.from_dict(self.files) as files, sf.Pipeline.load_files(files, threads=THREADS) as pipe:
            self.assertEqual(pipe.encode_prompt("a photo of a cat"), self.ref_emb)
        self.assertTrue(files.closed)
        self.assertEqual(sf.live_handles(), base)

    def test_borrowed_buffers(self):
        """copy=False: bytes, bytearray, memoryview and a read-only mmap are lent as they are;
        the set and the pipeline hold them (pinned: no resize, no close) until both are gone, and
        nothing writes them."""
        gc.collect()
        base = sf.live_handles()
        text = bytearray(self.files["text_encoder/model.safetensors"])
        text_before = bytes(text)
        vae = memoryview(bytearray(self.files["vae/diffusion_pytorch_model.safetensors"]))
        with open(os.path.join(TINY_SD, self.UNET), "rb") as f:
            unet = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        files = sf.Files()
        for path, data in self.files.items():
            files.add(path, data, copy=False)  # bytes: read-only, lent without a writable view
        files.add("text_encoder/model.safetensors", text, copy=False)
        files.add("vae/diffusion_pytorch_model.safetensors", vae, copy=False)
        files.add(self.UNET, unet, copy=False)
        self.assertTrue(files.borrowed)
        pipe = sf.Pipeline.load_files(files, threads=THREADS)
        files.close()
        self.assertTrue(files.closed)
        # The native set lives on with the pipeline (the header: a set of borrowed files is destroyed
        # after its pipelines), and so do the buffers, pinned.
        self.assertEqual(sf.live_handles().get("files"), 1)
        with self.assertRaises(BufferError):
            text.extend(b"x")
        with self.assertRaises(BufferError):
            unet.close()
        del files
        gc.collect()
        self.assertEqual(self.generate(pipe), self.ref)
        self.assertEqual(pipe.encode_prompt("a photo of a cat"), self.ref_emb)
        pipe.close()
        self.assertEqual(sf.live_handles(), base)
        self.assertEqual(bytes(text), text_before)  # never written
        text.extend(b"x")  # released: no longer pinned
        vae.release()
        unet.close()

    def test_borrowed_buffers_outlive_the_callers_references(self):
        """The only references left to the lent bytes are the binding's: the pipeline works
        after the caller dropped the set and the buffers, and a replaced borrowed file stays
        alive for the pipeline loaded before."""
        gc.collect()
        base = sf.live_handles()
        files = sf.Files.from_folder(TINY_SD, copy=False)
        self.assertTrue(files.borrowed)
        pipe = sf.Pipeline.load_files(files, threads=THREADS)
        junk = bytearray(16)
        files.add(self.UNET, junk, copy=False)  # replaces the file the pipeline reads
        with self.assertRaises(sf.BadModelError):  # a new load sees the junk
            sf.Pipeline.load_files(files, threads=THREADS)
        del files, junk
        gc.collect()
        self.assertEqual(sf.live_handles().get("files"), 1)
        self.assertEqual(self.generate(pipe), self.ref)
        pipe.close()
        self.assertEqual(sf.live_handles(), base)
        # A cycle holding a set, a pipeline loaded from its borrowed files and a job: the
        # collector frees everything, the pipeline before the set.
        holder = {"files": sf.Files.from_dict(self.files, copy=False)}
        holder["pipe"] = sf.Pipeline.load_files(holder["files"], threads=THREADS)
        holder["job"] = holder["pipe"].generate(**dict(self.OPTIONS))
        holder["job"].step()
        holder["self"] = holder
        del holder
        gc.collect()
        self.assertEqual(sf.live_handles(), base)

    def test_load_options(self):
        with sf.Files.from_dict(self.files) as files:
            with sf.Pipeline.load_files(files, threads=THREADS, components=["text_encoder"]) as p:
                self.assertEqual(p.networks & (sf.Network.UNET | sf.Network.TEXT_ENCODER), sf.Network.TEXT_ENCODER)
                self.assertEqual(p.encode_prompt("a photo of a cat"), self.ref_emb)
            with sf.Pipeline.load_files(files, threads=THREADS, variant="fp16", components=["unet"]) as p:
                self.assertIn("unet/diffusion_pytorch_model.fp16.safetensors", p.describe())
            with sf.Context(threads=THREADS) as ctx:
                p = sf.Pipeline.load_files(files, context=ctx, inspect_only=True)
                self.assertEqual(int(p.networks), 0)
                self.assertIs(p.context, ctx)
        with self.assertRaises(TypeError):
            sf.Pipeline.load_files(TINY_SD)  # a folder is Pipeline.load's

    def test_errors_name_the_file(self):
        files = sf.Files()
        for bad in ("../x", "/abs", "", "a//b", "a\\b"):
            with self.assertRaises(sf.InvalidArgumentError) as cm:
                files.add(bad, b"x")
            self.assertIn('"%s"' % bad, str(cm.exception))
            self.assertEqual(cm.exception.status, 1)
        self.assertEqual(len(files), 0)
        with self.assertRaises(sf.InvalidArgumentError):
            files.add("a\0b", b"x")
        with self.assertRaises(TypeError):
            files.add("a.txt", "text, not bytes")
        with self.assertRaises(BufferError):  # not contiguous
            files.add("a.bin", memoryview(b"abcdef")[::2])
        files.add("unet/config.json", b"{}")
        with self.assertRaises(sf.InvalidArgumentError) as cm:  # a folder of the set's files
            files.add("unet", b"{}")
        self.assertIn("unet", str(cm.exception))
        # No model_index.json.
        with self.assertRaises(sf.FileIOError) as cm:
            sf.Pipeline.load_files(files, threads=THREADS)
        self.assertIn("memory:model_index.json", str(cm.exception))
        files.close()
        without = {k: v for k, v in self.files.items() if k != "model_index.json"}
        with sf.Files.from_dict(without, copy=False) as files, self.assertRaises(sf.FileIOError) as cm:
            sf.Pipeline.load_files(files, threads=THREADS)
        self.assertIn("memory:model_index.json is missing", str(cm.exception))
        # A truncated safetensors file.
        for copy in (True, False):
            truncated = dict(self.files)
            truncated[self.UNET] = self.files[self.UNET][:len(self.files[self.UNET]) // 2]
            with sf.Files.from_dict(truncated, copy=copy) as files, self.assertRaises(sf.BadModelError) as cm:
                sf.Pipeline.load_files(files, threads=THREADS)
            self.assertIn("memory:" + self.UNET, str(cm.exception))
        # A missing folder for from_folder.
        with self.assertRaises(sf.FileIOError) as cm:
            sf.Files.from_folder(os.path.join(PUBLIC, "no-such-model"))
        self.assertIn("no-such-model", str(cm.exception))


# ---- generation ----------------------------------------------------------------------------------------

SEEDED = "pipeline/seeded_ddim_cfg7.5_neg"


@needs_fixtures
class TestGeneration(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pipe = sf.Pipeline.load(TINY_SD, threads=THREADS)
        cls.entry, cls.t = case(SEEDED)
        p = cls.entry["params"]
        cls.options = dict(prompt=p["prompt"], negative_prompt=p["negative_prompt"], width=p["width"],
                           height=p["height"], steps=p["num_inference_steps"], guidance_scale=p["guidance_scale"],
                           seed=p["seed"], sampler="ddim")

    @classmethod
    def tearDownClass(cls):
        cls.pipe.close()

    def raw_generate(self, o):
        """sf_generate called directly through ctypes with the same parameters."""
        L = raw.lib
        params = ctypes.POINTER(raw.Params)()
        self.assertEqual(L.sf_params_create(ctypes.byref(params)), 0)
        L.sf_params_set_string(params, 200, o["prompt"].encode())
        L.sf_params_set_string(params, 201, o["negative_prompt"].encode())
        for key, name in ((202, "width"), (203, "height"), (204, "steps"), (206, "seed")):
            self.assertEqual(L.sf_params_set_int(params, key, o[name]), 0)
        L.sf_params_set_float(params, 205, o["guidance_scale"])
        L.sf_params_set_int(params, 207, L.sf_sampler_from_name(o["sampler"].encode()))
        img = ctypes.POINTER(raw.Image)()
        st = L.sf_generate(self.pipe._h.ptr, params, raw.PROGRESS_FN(), None, ctypes.byref(img))
        L.sf_params_destroy(params)
        self.assertEqual(st, 0, L.sf_last_error())
        w, h, stride = L.sf_image_width(img), L.sf_image_height(img), L.sf_image_stride(img)
        data = ctypes.string_at(L.sf_image_pixels(img), stride * h)
        L.sf_image_destroy(img)
        return b"".join(data[r * stride:r * stride + 3 * w] for r in range(h))

    def test_txt2img_matches_c_and_fixture(self):
        img = self.pipe.txt2img(**self.options)
        self.assertEqual((img.width, img.height), (64, 64))
        self.assertEqual(img.pixels, self.raw_generate(self.options))
        uint8_close(self, img.pixels, tensor(self.t, "out.image_uint8"), "seeded pipeline image")
        self.assertIn("Seed: %d" % self.options["seed"], img.parameters)
        self.assertIn("Steps: 8", img.parameters)

    def test_txt2img_matches_cli(self):
        cli = os.environ.get("SNAPFUSION_CLI")
        if not cli:
            self.skipTest("SNAPFUSION_CLI not set")
        o = self.options
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "cli.png")
            r = subprocess.run([cli, "txt2img", "-m", TINY_SD, "-p", o["prompt"], "-n", o["negative_prompt"],
                                "-W", str(o["width"]), "-H", str(o["height"]), "--steps", str(o["steps"]),
                                "--cfg-scale", str(o["guidance_scale"]), "--seed", str(o["seed"]),
                                "--sampler", o["sampler"], "-t", str(THREADS), "-q", "-o", out],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(sf.Image.open(out).pixels, self.pipe.txt2img(**o).pixels)

    def test_prompt_syntax(self):
        o = dict(self.options, steps=2)
        plain = self.pipe.txt2img(**o).pixels
        # A1111's syntax without brackets reads the prompt as diffusers does; weights change it
        self.assertEqual(self.pipe.txt2img(**o, prompt_syntax="a1111").pixels, plain)
        weighted = self.pipe.txt2img(**dict(o, prompt="(%s:1.6)" % o["prompt"]), prompt_syntax=sf.PromptSyntax.A1111)
        self.assertNotEqual(weighted.pixels, plain)
        self.assertNotIn("Emphasis", weighted.parameters)
        long_prompt = " ".join(["cat"] * 100)
        self.assertEqual(len(self.pipe.txt2img(**dict(o, prompt=long_prompt), prompt_syntax="a1111").pixels),
                         len(plain))
        with self.assertRaises(sf.InvalidArgumentError):
            self.pipe.txt2img(**dict(o, prompt="(cat:1.2.3)"), prompt_syntax="a1111")
        with self.assertRaises(sf.InvalidArgumentError):
            self.pipe.txt2img(**o, prompt_syntax="comfy")

    def test_explicit_latents_match_fixture(self):
        entry, t = case("pipeline/ddim_eps_cfg7.5_neg")
        p = entry["params"]
        img = self.pipe.txt2img(p["prompt"], p["negative_prompt"], latents=tensor(t, "in.latents"),
                                steps=p["num_inference_steps"], guidance_scale=p["guidance_scale"], width=p["width"],
                                height=p["height"], sampler="ddim")
        uint8_close(self, img.pixels, tensor(t, "out.image_uint8"), "explicit-latents pipeline image")
        # prompt embeddings instead of prompts: the same image
        emb = self.pipe.encode_prompt(p["prompt"])
        neg = self.pipe.encode_prompt(p["negative_prompt"])
        img2 = self.pipe.txt2img(prompt_embeds=emb, negative_prompt_embeds=neg, latents=tensor(t, "in.latents"),
                                 steps=p["num_inference_steps"], guidance_scale=p["guidance_scale"],
                                 width=p["width"], height=p["height"], sampler="ddim")
        self.assertEqual(img.pixels, img2.pixels)

    def test_stepwise_iterator(self):
        ref = self.pipe.txt2img(**self.options)
        job = self.pipe.generate(**self.options)
        per_step = tensor(self.t, "mid.latents_per_step")
        tol = self.entry["tolerance"]["latents_per_step"]
        seen = []
        for step in job:
            seen.append(step.index)
            self.assertEqual(step.total, 8)
            lat = step.latents()
            self.assertEqual(len(lat), 4 * 8 * 8)
            i = step.index - 1
            within(self, lat, per_step[i * 256:(i + 1) * 256], tol, "latents after step %d" % step.index)
            prev = step.preview()
            self.assertEqual(prev.width, 8)
            self.assertEqual(len(prev.pixels), 8 * 8 * 3)
        self.assertEqual(seen, list(range(1, 9)))
        self.assertIsNotNone(job.image)
        self.assertEqual(job.image.pixels, ref.pixels)
        with self.assertRaises(sf.BadStateError):
            job.step()
        job.close()
        # finish() without iterating gives the same image.
        with self.pipe.generate(**self.options) as job:
            job.step()
            self.assertEqual(job.finish().pixels, ref.pixels)

    def test_progress_callback_and_stop(self):
        calls = []
        img = self.pipe.txt2img(progress=lambda s, t: calls.append((s, t)), **dict(self.options, steps=3))
        self.assertEqual(calls, [(1, 3), (2, 3), (3, 3)])
        self.assertIsInstance(img, sf.Image)
        with self.assertRaises(sf.CancelledError):
            self.pipe.txt2img(progress=lambda s, t: s >= 2, **dict(self.options, steps=4))

    def test_raising_progress_callback(self):
        def bad(step, total):
            if step == 2:
                raise ZeroDivisionError("in progress")
        with self.assertRaises(ZeroDivisionError):
            self.pipe.txt2img(progress=bad, **dict(self.options, steps=4))
        # The pipeline is still usable and gives the same image as before.
        self.assertEqual(self.pipe.txt2img(**self.options).pixels, self.raw_generate(self.options))

    def test_stopped_runs_are_not_logged(self):
        """A stop asked by the progress callback, or an exception it raises, is the call's
        exception only: the library's ERROR message about it reaches no log, then or later."""
        got = []
        with sf.Context(threads=THREADS, log=lambda level, msg: got.append((level, msg))) as ctx:
            with sf.Pipeline.load(TINY_SD, context=ctx) as pipe:
                with self.assertRaises(sf.CancelledError):
                    pipe.txt2img(progress=lambda s, t: True, **dict(self.options, steps=2))
                with self.assertRaises(ZeroDivisionError):
                    pipe.txt2img(progress=lambda s, t: 1 / 0, **dict(self.options, steps=2))
                pipe.txt2img(**dict(self.options, steps=1))
        self.assertEqual([m for level, m in got if level >= sf.LogLevel.ERROR], [])

    def test_cancel_from_another_thread(self):
        # pipeline.cancel() from another thread while sf_generate runs: the callback (on the
        # generating thread) starts the canceller and waits for it, so the next step sees it.
        def progress(step, total):
            if step == 2:
                th = threading.Thread(target=self.pipe.cancel)
                th.start()
                th.join()
        with self.assertRaises(sf.CancelledError):
            self.pipe.txt2img(progress=progress, **self.options)
        # job.cancel() from another thread between steps of the iterator.
        job = self.pipe.generate(**self.options)
        with self.assertRaises(sf.CancelledError):
            for step in job:
                if step.index == 3:
                    th = threading.Thread(target=job.cancel)
                    th.start()
                    th.join()
        self.assertEqual(job.steps_done, 3)
        job.close()
        self.assertEqual(self.pipe.txt2img(**self.options).pixels, self.raw_generate(self.options))

    def test_png_round_trip_and_img2img(self):
        img = self.pipe.txt2img(**self.options)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "out.png")
            img.save(path)
            with open(path, "rb") as f:
                data = f.read()
            self.assertTrue(data.startswith(b"\x89PNG"))
            self.assertIn(b"tEXtparameters\x00" + self.options["prompt"].encode(), data)
            back = sf.Image.open(path)
            self.assertEqual(back.pixels, img.pixels)
            self.assertEqual(back.size, (64, 64))
        o = dict(self.options)
        a = self.pipe.img2img(img, strength=0.6, **o)
        b = self.pipe.img2img((img.pixels, img.width, img.height), strength=0.6, **o)
        self.assertEqual(a.pixels, b.pixels)
        self.assertNotEqual(a.pixels, img.pixels)

    def test_img2img_takes_the_init_image_size(self):
        """The result has the init image's size, not the model's default (64x64 here)."""
        init = self.pipe.txt2img(**dict(self.options, width=128, height=64, steps=2))
        self.assertEqual(init.size, (128, 64))
        o = dict(self.options, steps=2)
        del o["width"], o["height"]
        a = self.pipe.img2img(init, strength=0.6, **o)
        self.assertEqual(a.size, (128, 64))
        b = self.pipe.img2img((init.pixels, 128, 64), strength=0.6, width=128, height=64, **o)
        self.assertEqual(a.pixels, b.pixels)
        with self.pipe.generate(init_image=init, strength=0.6, **o) as job:
            self.assertEqual(job.finish().size, (128, 64))
        self.assertEqual(job.image.pixels, a.pixels)
        with self.assertRaises(sf.InvalidArgumentError) as cm:  # an explicit, different size
            self.pipe.img2img(init, strength=0.6, width=64, height=64, **o)
        self.assertIn("128x64", str(cm.exception))

    def test_optional_pil_and_numpy(self):
        img = self.pipe.txt2img(**dict(self.options, steps=2))
        try:
            import numpy
        except ImportError:
            numpy = None
        try:
            import PIL  # noqa: F401
        except ImportError:
            PIL = None
        if numpy is None and PIL is None:
            self.skipTest("neither numpy nor Pillow is installed")
        if numpy is not None:
            a = img.to_numpy()
            self.assertEqual(a.shape, (64, 64, 3))
            self.assertEqual(a.tobytes(), img.pixels)
        if PIL is not None:
            self.assertEqual(img.to_pil().tobytes(), img.pixels)

    def test_batch_equals_single_generations(self):
        o = dict(self.options, steps=3)
        calls = []
        images = self.pipe.txt2img_batch(batch_count=3, progress=lambda s, t: calls.append((s, t)), **o)
        self.assertEqual(len(images), 3)
        self.assertEqual(calls, [(k, 9) for k in range(1, 10)])  # the whole batch's steps
        seed = o["seed"]
        for i, img in enumerate(images):
            self.assertEqual(img.seed, seed + i)
            self.assertIn("Seed: %d," % (seed + i), img.parameters)
            self.assertEqual(img.pixels, self.pipe.txt2img(**dict(o, seed=seed + i)).pixels, "image %d" % i)
        self.assertEqual([im.pixels for im in self.pipe.txt2img_batch(batch_count=1, **o)], [images[0].pixels])
        # Stopped in the second image: the first comes with the exception.
        with self.assertRaises(sf.CancelledError) as cm:
            self.pipe.txt2img_batch(batch_count=3, progress=lambda s, t: s >= 4, **o)
        self.assertEqual([im.pixels for im in cm.exception.images], [images[0].pixels])
        with self.assertRaises(sf.InvalidArgumentError) as cm:  # one image per txt2img
            self.pipe.txt2img(batch_count=2, **o)
        self.assertIn("sf_generate_batch", str(cm.exception))
        with self.assertRaises(sf.InvalidArgumentError):
            self.pipe.txt2img_batch(batch_count=0, **o)
        # The raw call: capacity below the count is an error naming both.
        params = sf.Params({sf.Param.PROMPT: "x", sf.Param.STEPS: 1, sf.Param.BATCH_COUNT: 2})
        outs = (ctypes.POINTER(raw.Image) * 1)()
        made = ctypes.c_size_t(7)
        self.assertEqual(raw.lib.sf_generate_batch(self.pipe._h.ptr, params._h.ptr, raw.PROGRESS_FN(), None, outs, 1,
                                                   ctypes.byref(made)), 1)
        self.assertEqual(made.value, 0)
        self.assertIn("room for 1 images, 2 asked for", raw.lib.sf_last_error().decode())

    def test_random_seed(self):
        """seed=SEED_RANDOM draws a seed; the job, the image's parameters and Image.seed tell
        which, and generating with that seed makes the same image."""
        o = dict(self.options, steps=2)
        self.assertEqual(sf.SEED_RANDOM, -1)
        with self.pipe.generate(**dict(o, seed=sf.SEED_RANDOM)) as job:
            drawn = job.seed
            image = job.finish()
        self.assertGreaterEqual(drawn, 0)
        self.assertEqual(image.seed, drawn)
        self.assertIn("Seed: %d," % drawn, image.parameters)
        self.assertEqual(self.pipe.txt2img(**dict(o, seed=drawn)).pixels, image.pixels)
        one = self.pipe.txt2img(**dict(o, seed=-1))
        self.assertNotEqual(one.seed, drawn)  # two draws of 63 bits
        self.assertEqual(self.pipe.txt2img(**dict(o, seed=one.seed)).pixels, one.pixels)
        batch = self.pipe.txt2img_batch(batch_count=2, **dict(o, seed=sf.SEED_RANDOM))
        self.assertEqual(batch[1].seed, batch[0].seed + 1)
        self.assertEqual(self.pipe.txt2img(**dict(o, seed=batch[1].seed)).pixels, batch[1].pixels)
        with self.pipe.generate(**dict(o, seed=2 ** 63 + 5)) as job:  # unsigned seeds read back as such
            self.assertEqual(job.seed, 2 ** 63 + 5)
            self.assertEqual(job.finish().seed, 2 ** 63 + 5)
        with self.pipe.generate(**o) as job:
            self.assertEqual(job.seed, o["seed"])

    def test_float_image_rounds_to_pixels(self):
        with self.pipe.generate(**self.options) as job:
            with self.assertRaises(sf.BadStateError):
                job.image_f32()
            image = job.finish()
            nchw, nhwc = job.image_f32(), job.image_f32(sf.Layout.NHWC)
            self.assertEqual(job.image_f32("nchw"), nchw)
            with self.assertRaises(sf.InvalidArgumentError):
                job.image_f32("chw")
        w, h = image.size
        hw = w * h
        self.assertEqual((len(nchw), len(nhwc), nchw.typecode), (3 * hw, 3 * hw, "f"))
        self.assertEqual(nhwc, array.array("f", (nchw[c * hw + i] for i in range(hw) for c in range(3))))
        self.assertTrue(all(0.0 <= v <= 1.0 for v in nchw))
        # The RGB8 pixels are the floats times 255 (in float32), rounded half to even.
        self.assertEqual(image.pixels, bytes(round(f32(v * 255.0)) for v in nhwc))
        within(self, nhwc, tensor(self.t, "out.image"), self.entry["tolerance"]["image"], "float image vs diffusers")
        view = memoryview(nchw).cast("B").cast("f", (3, h, w))  # shaped without numpy
        self.assertEqual(view[2, h - 1, w - 1], nchw[-1])

    def test_concurrent_runs_on_one_pipeline(self):
        """Two generations (one one-shot, one step-wise) and building-block calls run at
        once on one pipeline from two threads, and each gives what it gives alone."""
        a_opts = dict(self.options, steps=4)
        b_opts = dict(self.options, prompt="a red fox in the snow", seed=77, steps=4)
        alone_a = self.pipe.txt2img(**a_opts).pixels
        with self.pipe.generate(**b_opts) as job:
            alone_b = job.finish().pixels
            alone_b_f = job.image_f32()
        alone_emb = self.pipe.encode_prompt("a cat")
        barrier = threading.Barrier(2, timeout=120)
        runs_seen = []
        got = {}

        def run_a():
            def progress(step, total):
                if step == 1:
                    barrier.wait()  # both generations are in flight from here on
                runs_seen.append(self.pipe.active_runs)
            got["a"] = self.pipe.txt2img(progress=progress, **a_opts).pixels
            got["a_emb"] = self.pipe.encode_prompt("a cat")

        def run_b():
            with self.pipe.generate(**b_opts) as job:
                for step in job:
                    if step.index == 1:
                        barrier.wait()
                    runs_seen.append(self.pipe.active_runs)
                got["b"], got["b_f"] = job.image.pixels, job.image_f32()
            got["b_emb"] = self.pipe.encode_prompt("a cat")

        run_threads(run_a, run_b)
        self.assertEqual(got["a"], alone_a)
        self.assertEqual(got["b"], alone_b)
        self.assertEqual(got["b_f"], alone_b_f)
        self.assertEqual((got["a_emb"], got["b_emb"]), (alone_emb, alone_emb))
        self.assertGreaterEqual(max(runs_seen), 2)
        self.assertEqual(self.pipe.active_runs, 0)

    def test_errors_and_log_callbacks_are_per_thread(self):
        """Failing calls on two threads at once each raise their own message (sf_last_error,
        not the context's shared one), and an exception a log callback raises on one thread
        is re-raised by that thread's call only."""
        barrier = threading.Barrier(2, timeout=120)
        rounds = 30

        def fail_with(width, height):
            def run():
                for _ in range(rounds):
                    barrier.wait()
                    with self.assertRaises(sf.InvalidArgumentError) as cm:
                        self.pipe.txt2img("x", width=width, height=height, steps=1)
                    self.assertIn("size %dx%d" % (width, height), str(cm.exception))
            return run
        run_threads(fail_with(48, 40), fail_with(24, 72))

        # One call on thread "long" logs two warnings (prompt and negative prompt truncated);
        # its callback raises at both. At the second, the first exception is already kept for
        # that call: the callback waits there while thread "short" makes a whole call on the
        # same context, which must not see it.
        warnings = []
        kept, short_done = threading.Event(), threading.Event()

        def log(level, message):
            if "prompt truncated" in message:
                warnings.append(message)
                if len(warnings) == 2:
                    kept.set()
                    short_done.wait(60)
                raise RuntimeError("log callback: " + message)
        with sf.Context(threads=THREADS, log=log) as ctx:
            with sf.Pipeline.load(TINY_SD, context=ctx) as pipe:
                def long():
                    with self.assertRaises(RuntimeError) as cm:
                        pipe.txt2img("word " * 100, "word " * 90, steps=1)
                    self.assertIn("102 tokens", str(cm.exception))  # the first one is re-raised

                def short():
                    try:
                        self.assertTrue(kept.wait(60), "no second warning")
                        self.assertEqual(len(pipe.tokenize("a photo of a cat")), 77)
                    finally:
                        short_done.set()
                run_threads(long, short)
        self.assertEqual(len(warnings), 2)

    def test_generated_objects_are_freed(self):
        gc.collect()
        base = sf.live_handles()
        for _ in range(2):
            job = self.pipe.generate(**dict(self.options, steps=2))
            for step in job:
                step.preview()
            del job, step
        self.pipe.txt2img(**dict(self.options, steps=1))
        self.assertEqual(sf.live_handles(), base)


@needs_fixtures
class TestMemoryOptions(unittest.TestCase):
    """The 1.1 load options SF_PARAM_WEIGHT_TYPE (weights=) and SF_PARAM_LOW_MEMORY
    (low_memory=), and SF_INFO_WEIGHT_BYTES (weight_bytes), on tiny-sd (an f32 checkpoint)."""

    OPTIONS = dict(prompt="a photo of an astronaut riding a horse", negative_prompt="blurry", steps=2,
                   guidance_scale=7.5, seed=5, sampler="ddim")

    @classmethod
    def setUpClass(cls):
        cls.images, cls.bytes = {}, {}
        for weights in (None, "f32", "f16", "q8"):
            with sf.Pipeline.load(TINY_SD, threads=THREADS, weights=weights) as p:
                cls.bytes[weights] = p.weight_bytes
                cls.images[weights] = p.txt2img(**cls.OPTIONS).pixels

    def test_weight_types_shrink_the_weights(self):
        b = self.bytes
        self.assertGreater(b["f32"], b["f16"])
        self.assertGreater(b["f16"], b["q8"])
        self.assertGreater(b["q8"], 0)
        self.assertEqual(b[None], b["f32"])  # an f32 checkpoint is held as f32 by default
        # Convolution and linear weights are most of tiny-sd's: f16 nearly halves the total,
        # q8 at least halves it again for the layers it quantizes.
        self.assertLess(b["f16"], 0.6 * b["f32"])
        self.assertLess(b["q8"], 0.8 * b["f16"])

    def test_generation_with_each_weight_type(self):
        ref = self.images[None]
        self.assertEqual(self.images["f32"], ref)  # the checkpoint's own type: bit for bit
        # Rounded weights move the image a little (measured mean |diff| of the RGB8 values:
        # f16 0.05, q8 0.8), not a lot.
        for weights, bound in (("f16", 0.5), ("q8", 4.0)):
            img = self.images[weights]
            self.assertEqual(len(img), 64 * 64 * 3)
            mean_diff = sum(abs(a - b) for a, b in zip(img, ref)) / len(ref)
            self.assertLess(mean_diff, bound, weights)

    def test_weight_type_spellings(self):
        for weights in (sf.WeightType.F16, "F16"):
            with sf.Pipeline.load(TINY_SD, threads=THREADS, weights=weights, components=["unet"]) as p:
                unet_f16 = p.weight_bytes
        with sf.Pipeline.load(TINY_SD, threads=THREADS, weights="f16", components=["unet"]) as p:
            self.assertEqual(p.weight_bytes, unet_f16)
        with sf.Pipeline.load(TINY_SD, threads=THREADS, weights="default", components=["unet"]) as p:
            with sf.Pipeline.load(TINY_SD, threads=THREADS, weights=sf.WeightType.DEFAULT, components=["unet"]) as q:
                self.assertEqual(p.weight_bytes, q.weight_bytes)
            self.assertGreater(p.weight_bytes, unet_f16)
        # The fp16 variant is held as f16 by default, exactly: forcing f16 changes nothing.
        with sf.Pipeline.load(TINY_SD, threads=THREADS, variant="fp16", components=["unet"]) as p:
            self.assertEqual(p.weight_bytes, unet_f16)

    def test_pack_round_trip(self):
        """write_pack, then load(pack=...): the same image bit for bit; another weight type is refused."""
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "tiny-q8.sfpack")
            with sf.Pipeline.load(TINY_SD, threads=THREADS, weights="q8") as p:
                p.write_pack(path)
            with sf.Pipeline.load(TINY_SD, threads=THREADS, pack=path) as p:
                self.assertEqual(p.txt2img(**self.OPTIONS).pixels, self.images["q8"])
            with self.assertRaises(sf.InvalidArgumentError):
                sf.Pipeline.load(TINY_SD, threads=THREADS, pack=path, weights="f16")

    def test_load_files_takes_the_options(self):
        with sf.Files.from_folder(TINY_SD) as files:
            with sf.Pipeline.load_files(files, threads=THREADS, weights="q8") as p:
                self.assertEqual(p.weight_bytes, self.bytes["q8"])
                self.assertEqual(p.txt2img(**self.OPTIONS).pixels, self.images["q8"])
            with sf.Pipeline.load_files(files, threads=THREADS, low_memory=True) as p:
                self.assertLess(p.weight_bytes, self.bytes[None] // 4)
                self.assertEqual(p.txt2img(**self.OPTIONS).pixels, self.images[None])

    def test_low_memory(self):
        with sf.Pipeline.load(TINY_SD, threads=THREADS, low_memory=True) as p:
            after_load = p.weight_bytes
            self.assertLess(after_load, self.bytes[None] // 4)  # nothing packed before a run needs it
            self.assertEqual(p.txt2img(**self.OPTIONS).pixels, self.images[None])
            self.assertLess(p.weight_bytes, self.bytes[None])  # one network resident: the decoder
            self.assertEqual(p.txt2img(**self.OPTIONS).pixels, self.images[None])  # again, repacked
            job = p.generate(**self.OPTIONS)  # the step-wise API too
            for _ in job:
                pass
            self.assertEqual(job.finish().pixels, self.images[None])
            job.close()
        with sf.Pipeline.load(TINY_SD, threads=THREADS) as normal:
            emb = normal.encode_prompt("a red fox")
        with sf.Pipeline.load(TINY_SD, threads=THREADS, low_memory=True) as p:
            self.assertEqual(p.encode_prompt("a red fox"), emb)  # building blocks pack what they use
        with sf.Pipeline.load(TINY_SD, threads=THREADS, low_memory=True, weights="q8") as p:
            self.assertEqual(p.txt2img(**self.OPTIONS).pixels, self.images["q8"])
            self.assertLessEqual(p.weight_bytes, self.bytes["q8"])

    def test_invalid_weight_type(self):
        gc.collect()
        base = sf.live_handles()
        with self.assertRaises(sf.InvalidArgumentError) as cm:
            sf.Pipeline.load(TINY_SD, threads=THREADS, weights="q4")
        self.assertIn("q4", str(cm.exception))
        self.assertIn("f16", str(cm.exception))  # the known names
        with self.assertRaises(sf.InvalidArgumentError) as cm:  # a number the library refuses
            sf.Pipeline.load(TINY_SD, threads=THREADS, weights=9)
        self.assertIn("SF_PARAM_WEIGHT_TYPE", str(cm.exception))
        with sf.Files.from_folder(TINY_SD) as files:
            with self.assertRaises(sf.InvalidArgumentError):
                sf.Pipeline.load_files(files, threads=THREADS, weights="int4")
        with self.assertRaises(ValueError):  # InvalidArgumentError is a ValueError
            sf.Pipeline.load(TINY_SD, threads=THREADS, weights="")
        gc.collect()
        self.assertEqual(sf.live_handles(), base)  # the contexts made for the loads are closed

    def test_example_command_line(self):
        """examples/python/txt2img.py --weights q8 --low-memory makes the image of
        Pipeline.load(weights="q8") and tells the weights' memory."""
        env = dict(os.environ, PYTHONPATH=os.path.join(SOURCE_DIR, "bindings", "python"))
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "q8.png")
            r = subprocess.run([sys.executable, os.path.join(SOURCE_DIR, "examples", "python", "txt2img.py"),
                                "-m", TINY_SD, "-p", "a red fox", "--steps", "2", "--seed", "5", "-t", str(THREADS),
                                "--weights", "q8", "--low-memory", "-o", out], env=env, capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertRegex(r.stdout, r"weights in memory \d+\.\d\d MB")
            got = sf.Image.open(out).pixels
        with sf.Pipeline.load(TINY_SD, threads=THREADS, weights="q8") as p:
            self.assertEqual(got, p.txt2img("a red fox", steps=2, seed=5, guidance_scale=7.5).pixels)
        r = subprocess.run([sys.executable, os.path.join(SOURCE_DIR, "examples", "python", "txt2img.py"),
                            "-m", TINY_SD, "-p", "x", "--weights", "q4"], env=env, capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)  # argparse refuses it, naming the choices
        self.assertIn("'q4'", r.stderr)

    def test_params_keys(self):
        p = sf.Params({sf.Param.WEIGHT_TYPE: sf.WeightType.Q8, sf.Param.LOW_MEMORY: 1})
        self.assertEqual(p.get(sf.Param.WEIGHT_TYPE), 3)
        self.assertEqual(p.get(sf.Param.LOW_MEMORY), 1)
        p.close()


MODELS = os.path.join(FIXTURES, "models")
HAVE_MODELS = os.path.isfile(os.path.join(MODELS, "manifest.json"))


@unittest.skipUnless(HAVE_MODELS, "model-format fixtures not found at %s" % MODELS)
class TestLoras(unittest.TestCase):
    """Pipeline.load(..., loras=[(path, scale), ...]) (SF_PARAM_LORAS) against the model-format
    set's lora/* UNet and text encoder cases (each under its own tolerance), scale 0 = the base
    model, the argument's checks, and a LoRA that matches nothing refused with its name."""

    @classmethod
    def setUpClass(cls):
        with open(os.path.join(MODELS, "manifest.json"), encoding="utf-8") as f:
            cls.cases = [c for c in json.load(f)["cases"]
                         if c["name"].startswith("lora/") and c["component"] in ("unet", "text_encoder")]

    def load(self, entry, **kw):
        base = entry["model"].split(" + ")[0].split("/")[0]
        loras = [(os.path.join(MODELS, l["file"]), l["scale"]) for l in entry["params"]["loras"]]
        return sf.Pipeline.load(os.path.join(MODELS, base), threads=THREADS, loras=loras,
                                components=[entry["component"]], **kw)

    def run_case(self, p, entry, tensors):
        if entry["component"] == "unet":
            sample = tensor(tensors, "in.sample")
            batch, _, h, w = tensors["in.sample"][1]
            t = float(tensor(tensors, "in.timestep")[0])
            return "noise_pred", p.unet_predict(sample, [t] * batch, tensor(tensors, "in.encoder_hidden_states"),
                                                height=h, width=w)
        ids = list(tensor(tensors, "in.input_ids"))
        n = tensors["in.input_ids"][1][1]
        return "last_hidden_state", p.encode_ids([ids[i:i + n] for i in range(0, len(ids), n)])

    def test_cases(self):
        self.assertTrue(self.cases, "no lora/* cases")
        for entry in self.cases:
            with self.subTest(entry["name"]):
                tensors = read_safetensors(os.path.join(MODELS, entry["file"]))
                with self.load(entry) as p:
                    out, got = self.run_case(p, entry, tensors)
                within(self, got, tensor(tensors, "out." + out), entry["tolerance"][out], entry["name"])

    def test_scale_zero_is_the_base_model(self):
        entry = next(c for c in self.cases if c["component"] == "unet")
        tensors = read_safetensors(os.path.join(MODELS, entry["file"]))
        base = entry["model"].split(" + ")[0].split("/")[0]
        zero = dict(entry, params=dict(entry["params"], loras=[dict(l, scale=0.0) for l in entry["params"]["loras"]]))
        with self.load(zero) as p:
            _, with_zero = self.run_case(p, entry, tensors)
        with sf.Pipeline.load(os.path.join(MODELS, base), threads=THREADS, components=["unet"]) as p:
            _, plain = self.run_case(p, entry, tensors)
        self.assertEqual(list(with_zero), list(plain))

    def test_bad_arguments(self):
        entry = self.cases[0]
        base = os.path.join(MODELS, entry["model"].split(" + ")[0].split("/")[0])
        lora = os.path.join(MODELS, entry["params"]["loras"][0]["file"])
        with self.assertRaises(TypeError):
            sf.Pipeline.load(base, threads=THREADS, loras=lora)  # one path, not a list
        with self.assertRaises(ValueError):
            sf.Pipeline.load(base, threads=THREADS, loras=[(lora, float("nan"))])
        with self.assertRaises(ValueError):
            sf.Pipeline.load(base, threads=THREADS, loras=["a\tb"])
        with tempfile.TemporaryDirectory() as tmp:
            bad = os.path.join(tmp, "other.safetensors")
            header = json.dumps({"lora_unet_no_such_layer.lora_down.weight":
                                 {"dtype": "F32", "shape": [1, 1], "data_offsets": [0, 4]},
                                 "lora_unet_no_such_layer.lora_up.weight":
                                 {"dtype": "F32", "shape": [1, 1], "data_offsets": [4, 8]}}).encode()
            header += b" " * (-len(header) % 8)
            with open(bad, "wb") as f:
                f.write(struct.pack("<Q", len(header)) + header + bytes(8))
            with self.assertRaises(sf.BadModelError) as e:
                sf.Pipeline.load(base, threads=THREADS, loras=[bad], components=["unet"])
            self.assertIn("lora_unet_no_such_layer", str(e.exception))
            # inspect checks the LoRA too (names and shapes)
            with self.assertRaises(sf.BadModelError):
                sf.Pipeline.inspect(base, loras=[(bad, 0.5)], components=["unet"])
        with sf.Pipeline.inspect(base, loras=[(lora, 0.5)]) as p:
            self.assertGreater(p.weight_bytes, 0)


def broken_copy(tmp):
    """A copy of tiny-sd with three problems: unet/config.json without "block_out_channels", and
    the VAE's tensor decoder.conv_in.bias renamed decoder.conv_in.biaz (missing + left over)."""
    folder = os.path.join(tmp, "broken-tiny-sd")
    shutil.copytree(TINY_SD, folder)
    path = os.path.join(folder, "unet", "config.json")
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    del config["block_out_channels"]
    with open(path, "w", encoding="utf-8") as f:
        json.dump(config, f)
    path = os.path.join(folder, "vae", "diffusion_pytorch_model.safetensors")
    with open(path, "rb") as f:
        data = bytearray(f.read())
    (n,) = struct.unpack("<Q", data[:8])
    at = data.find(b'"decoder.conv_in.bias"', 8, 8 + n)
    assert at > 0
    data[at + len(b'"decoder.conv_in.bia')] = ord("z")  # same length: the header stays valid
    with open(path, "wb") as f:
        f.write(data)
    return folder


SD15_CONFIGS = os.path.join(SOURCE_DIR, "..", "shared", "configs", "sd-v1-5")


@needs_fixtures
class TestInspectAndEstimate(unittest.TestCase):
    """Pipeline.inspect (SF_PARAM_INSPECT_ONLY), Pipeline.estimate_memory
    (sf_pipeline_estimate_memory) and Pipeline.weight_type (SF_INFO_WEIGHT_TYPE) on tiny-sd."""

    GEN = dict(width=64, height=64, guidance_scale=7.5)

    def test_inspect_answers_as_the_load(self):
        """An inspected pipeline runs nothing but tells what the load with the same options has:
        weight bytes, parameters, weight type, shapes; and the estimates are the same on both."""
        for weights, want in ((None, sf.WeightType.F32), ("f32", sf.WeightType.F32), ("f16", sf.WeightType.F16),
                              ("q8", sf.WeightType.Q8)):
            with sf.Pipeline.inspect(TINY_SD, threads=THREADS, weights=weights) as probe, \
                    sf.Pipeline.load(TINY_SD, threads=THREADS, weights=weights) as full:
                self.assertTrue(probe.inspect_only)
                self.assertFalse(full.inspect_only)
                self.assertEqual(int(probe.networks), 0)
                self.assertEqual(probe.weight_type, want)
                self.assertIsInstance(probe.weight_type, sf.WeightType)
                self.assertEqual(full.weight_type, want)
                self.assertEqual(probe.weight_bytes, full.weight_bytes)
                self.assertEqual(probe.parameter_count, full.parameter_count)
                for name in ("default_width", "default_height", "size_multiple", "scale_factor", "latent_channels",
                             "text_tokens", "text_hidden"):
                    self.assertEqual(getattr(probe, name), getattr(full, name), name)
                for options in (self.GEN, dict(width=32, height=48, guidance_scale=1.0), {}):
                    e = probe.estimate_memory(**options)
                    self.assertIsInstance(e, sf.MemoryEstimate)
                    self.assertEqual(full.estimate_memory(**options), e, (weights, options))
                    self.assertEqual(e.peak, e.weights + e.workspace + e.other)
                    self.assertEqual(e.weights_total, full.weight_bytes)
                    self.assertGreater(e.peak, e.weights_total)
                    self.assertEqual(e[sf.Memory.PEAK], e.peak)
                    self.assertEqual(e[sf.Memory.WORKSPACE_RUN], e.workspace_run)
            # Pipeline.load(inspect_only=True) is the same thing.
            with sf.Pipeline.load(TINY_SD, threads=THREADS, weights=weights, inspect_only=True) as probe2:
                self.assertTrue(probe2.inspect_only)
                with sf.Pipeline.inspect(TINY_SD, threads=THREADS, weights=weights) as probe:
                    self.assertEqual(probe2.estimate_memory(**self.GEN), probe.estimate_memory(**self.GEN))

    def test_workspace_is_what_a_generation_holds(self):
        """workspace_run is the arena a generation of the same size and guidance then holds
        (arena_bytes), weights_total the loaded weight bytes; bigger images need more."""
        for options in (self.GEN, dict(width=32, height=48, guidance_scale=1.0), dict(width=96, height=96)):
            with sf.Pipeline.inspect(TINY_SD, threads=THREADS) as probe:
                e = probe.estimate_memory(**options)
            with sf.Pipeline.load(TINY_SD, threads=THREADS) as full:
                self.assertEqual(full.arena_bytes, 0)  # nothing ran yet
                image = full.txt2img("a red fox", steps=2, seed=1, **options)
                self.assertEqual(image.size, (options.get("width", 64), options.get("height", 64)))
                self.assertEqual(full.arena_bytes, e.workspace_run, options)
                self.assertEqual(full.weight_bytes, e.weights_total)
        with sf.Pipeline.inspect(TINY_SD, threads=THREADS) as probe:
            small, big = probe.estimate_memory(**self.GEN), probe.estimate_memory(width=256, height=256)
            self.assertGreater(big.workspace_run, small.workspace_run)
            self.assertGreater(big.peak, small.peak)
            # The prompt does not matter; the default size is the model's.
            self.assertEqual(probe.estimate_memory("a cat", "blurry", steps=30, seed=5, **self.GEN), small)
            self.assertEqual(probe.estimate_memory(guidance_scale=7.5), small)  # tiny-sd's default is 64x64

    def test_weight_types_and_low_memory(self):
        """f32 > f16 > q8 weights; low_memory lowers the peak and the weights resident at it."""
        est = {}
        for weights in ("f32", "f16", "q8"):
            with sf.Pipeline.inspect(TINY_SD, threads=THREADS, weights=weights) as probe:
                est[weights] = probe.estimate_memory(**self.GEN)
        self.assertGreater(est["f32"].weights_total, est["f16"].weights_total)
        self.assertGreater(est["f16"].weights_total, est["q8"].weights_total)
        # (The peaks of tiny-sd are not in that order: its weights are a few MB next to the process
        # base, and converting its f32 checkpoint takes staging; measured peak RSS agrees.)
        with sf.Pipeline.inspect(TINY_SD, threads=THREADS, low_memory=True) as low:
            lo = low.estimate_memory(**self.GEN)
        self.assertLess(lo.peak, est["f32"].peak)
        self.assertLess(lo.weights, est["f32"].weights)
        self.assertEqual(lo.weights_total, est["f32"].weights_total)
        with sf.Pipeline.load(TINY_SD, threads=THREADS, low_memory=True) as loaded:
            self.assertEqual(loaded.estimate_memory(**self.GEN), lo)
        # The weight type of the fp16 variant is f16 by default.
        with sf.Pipeline.inspect(TINY_SD, threads=THREADS, variant="fp16") as probe:
            self.assertEqual(probe.weight_type, sf.WeightType.F16)
        with sf.Pipeline.load(TINY_SD, threads=THREADS, variant="fp16", components=["unet"]) as full:
            self.assertEqual(full.weight_type, sf.WeightType.F16)

    @unittest.skipUnless(os.path.isfile(os.path.join(SD15_CONFIGS, "model_index.json")),
                         "no ../shared/configs/sd-v1-5")
    def test_sd15_peaks(self):
        """On SD-1.5's architecture (config-only folder, random weights: nothing to read) the peak
        is f32 > f16 > q8, and low_memory lowers it."""
        peaks = {}
        for weights, low in (("f32", False), ("f16", False), ("q8", False), ("f32", True)):
            with sf.Pipeline.inspect(SD15_CONFIGS, threads=THREADS, random_weights=True, weights=weights,
                                     low_memory=low, tokenizer_path=os.path.join(PUBLIC, "tokenizer")) as probe:
                self.assertEqual(probe.default_width, 512)
                peaks[weights, low] = e = probe.estimate_memory(guidance_scale=7.5)
                self.assertEqual(e.peak, e.weights + e.workspace + e.other)
        self.assertGreater(peaks["f32", False].peak, peaks["f16", False].peak)
        self.assertGreater(peaks["f16", False].peak, peaks["q8", False].peak)
        self.assertLess(peaks["f32", True].peak, peaks["f32", False].peak)
        self.assertGreater(peaks["f32", False].weights_total, 3e9)  # SD-1.5's ~1.07 G parameters in f32

    def test_inspected_pipelines_refuse_to_run(self):
        gc.collect()
        base = sf.live_handles()
        with sf.Pipeline.inspect(TINY_SD, threads=THREADS) as probe:
            runs = (lambda: probe.txt2img("a cat", steps=1), lambda: probe.generate("a cat", steps=1),
                    lambda: probe.txt2img_batch("a cat", batch_count=2, steps=1),
                    lambda: probe.encode_prompt("a cat"))
            for run in runs:
                with self.assertRaises(sf.BadStateError) as cm:
                    run()
                self.assertIn("SF_PARAM_INSPECT_ONLY", str(cm.exception))  # inspect_only=True
                self.assertIn("load it again", str(cm.exception))
            # The building blocks say so too, naming themselves.
            blocks = (lambda: probe.unet_predict(array.array("f", [0.0] * 256), 1.0, [0.0] * 77 * 32),
                      lambda: probe.decode(array.array("f", [0.0] * 256)),
                      lambda: probe.encode_image(array.array("f", [0.0] * 3 * 64 * 64), height=64, width=64))
            for run in blocks:
                with self.assertRaises(sf.BadStateError) as cm:
                    run()
                self.assertIn("SF_PARAM_INSPECT_ONLY", str(cm.exception))
                self.assertIn("load it again", str(cm.exception))
            self.assertEqual(probe.tokenize("a cat")[:4], [49406, 320, 2368, 49407])  # the tokenizer is data
            self.assertEqual(probe.active_runs, 0)
            self.assertEqual(probe.estimate_memory(**self.GEN).weights_total, probe.weight_bytes)  # still usable
        with self.assertRaises(sf.BadStateError):
            probe.estimate_memory()  # closed
        gc.collect()
        self.assertEqual(sf.live_handles(), base)

    def test_estimate_refusals(self):
        with sf.Pipeline.inspect(TINY_SD, threads=THREADS) as probe:
            with self.assertRaises(sf.InvalidArgumentError) as cm:
                probe.estimate_memory(width=72, height=64)  # not a multiple of 16
            self.assertIn("72", str(cm.exception))
        with sf.Pipeline.inspect(TINY_SD, threads=THREADS, components=["text_encoder"]) as probe:
            with self.assertRaises(sf.BadStateError) as cm:
                probe.estimate_memory()
            self.assertIn("UNet", str(cm.exception))
            with self.assertRaises(sf.BadStateError):
                probe.weight_type  # no UNet

    def test_sound_folder_reports_nothing(self):
        got = []
        with sf.Context(threads=THREADS, log=lambda level, msg: got.append((level, msg))) as ctx:
            sf.Pipeline.inspect(TINY_SD, context=ctx).close()
        self.assertEqual([m for level, m in got if level >= sf.LogLevel.WARN], [])

    def test_broken_folder_lists_every_problem(self):
        records = []

        class Keep(logging.Handler):
            def emit(self, record):
                records.append(record)

        logger = logging.getLogger("snapfusion")
        handler = Keep(level=logging.DEBUG)
        logger.addHandler(handler)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                folder = broken_copy(tmp)
                with self.assertRaises(sf.BadModelError) as cm:
                    sf.Pipeline.inspect(folder, threads=THREADS)
                e = cm.exception
                self.assertEqual(len(e.problems), 3, e.problems)
                self.assertTrue(e.message.startswith("3 problems: "), e.message)
                self.assertIn("unet/config.json", e.problems[0])
                self.assertIn("block_out_channels", e.problems[0])
                self.assertTrue(any("'decoder.conv_in.bias'" in p for p in e.problems), e.problems)
                self.assertTrue(any("'decoder.conv_in.biaz'" in p for p in e.problems), e.problems)
                for p in e.problems:
                    self.assertIn(p, e.message)  # these fit in the message
                # Reported once, as the exception: the problems are not logged too.
                self.assertEqual([r.getMessage() for r in records if r.levelno >= logging.ERROR], [])
                # A full load stops at the first problem, one of those.
                with self.assertRaises(sf.BadModelError) as cm:
                    sf.Pipeline.load(folder, threads=THREADS)
                self.assertIn(cm.exception.message, e.problems)
                self.assertEqual(cm.exception.problems, ())  # just its message
                # The same through a log callable, a context without logging, and a set in memory.
                got = []
                with sf.Context(threads=THREADS, log=lambda level, msg: got.append(msg)) as ctx:
                    with self.assertRaises(sf.BadModelError) as cm:
                        sf.Pipeline.inspect(folder, context=ctx)
                    self.assertEqual(tuple(cm.exception.problems), tuple(e.problems))
                    self.assertFalse(any("conv_in" in m for m in got), got)
                    self.assertEqual(sf.Pipeline.inspect(TINY_SD, context=ctx).weight_type, sf.WeightType.F32)
                with sf.Context(threads=THREADS, log=False) as ctx:
                    with self.assertRaises(sf.BadModelError) as cm:
                        sf.Pipeline.inspect(folder, context=ctx)
                    self.assertEqual(tuple(cm.exception.problems), tuple(e.problems))
                with sf.Files.from_folder(folder) as files, self.assertRaises(sf.BadModelError) as cm:
                    sf.Pipeline.inspect(files, threads=THREADS)
                self.assertEqual(len(cm.exception.problems), 3)
                self.assertIn("memory:unet/config.json", cm.exception.problems[0])
                # One problem: it is the message alone (logged once), so `problems` is empty.
                os.rename(os.path.join(folder, "vae"), os.path.join(tmp, "vae"))
                shutil.copytree(os.path.join(TINY_SD, "vae"), os.path.join(folder, "vae"))
                with self.assertRaises(sf.BadModelError) as cm:
                    sf.Pipeline.inspect(folder, threads=THREADS)
                self.assertEqual(cm.exception.problems, ())
                self.assertIn("block_out_channels", cm.exception.message)
        finally:
            logger.removeHandler(handler)

    def test_example_estimate(self):
        """examples/python/txt2img.py --estimate prints Pipeline.inspect(...).estimate_memory(...)
        and writes nothing; on a broken folder, one line per problem."""
        env = dict(os.environ, PYTHONPATH=os.path.join(SOURCE_DIR, "bindings", "python"))
        script = os.path.join(SOURCE_DIR, "examples", "python", "txt2img.py")
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "x.png")
            r = subprocess.run([sys.executable, script, "-m", TINY_SD, "--estimate", "--weights", "q8", "-W", "64",
                                "-H", "96", "--cfg-scale", "7.5", "-t", str(THREADS), "-o", out],
                               env=env, capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertFalse(os.path.exists(out))
            with sf.Pipeline.inspect(TINY_SD, threads=THREADS, weights="q8") as probe:
                e = probe.estimate_memory(width=64, height=96, guidance_scale=7.5)
            self.assertIn("64x96, cfg scale 7.5, q8 weights: peak %.2f MB (weights %.2f MB, workspace %.2f MB, "
                          "other %.2f MB); all weights %.2f MB, workspace of the run %.2f MB"
                          % tuple(x / 1e6 for x in e), r.stdout)
            r = subprocess.run([sys.executable, script, "-m", broken_copy(tmp), "--estimate", "-t", str(THREADS)],
                               env=env, capture_output=True, text=True)
            self.assertEqual(r.returncode, 1, r.stderr)
            lines = r.stderr.splitlines()
            self.assertTrue(lines[0].startswith("txt2img: BadModelError: 3 problems in "), r.stderr)
            self.assertEqual(len(lines), 4, r.stderr)
            self.assertIn("block_out_channels", lines[1])


MODELS = os.path.join(FIXTURES, "models")
SINGLE_FILE = os.path.join(MODELS, "single-file", "tiny-sd-mini.safetensors")
SINGLE_FILE_CONFIG = os.path.join(MODELS, "tiny-sd-mini")


@unittest.skipUnless(os.path.isfile(SINGLE_FILE), "single-file fixture not found at %s" % SINGLE_FILE)
class TestSingleFile(unittest.TestCase):
    """Pipeline.load(FILE, config_path=DIR) (Param.CONFIG_PATH) on the models set's single-file
    checkpoint: the same text embedding and UNet output as its diffusers folder, bit for bit."""

    def test_single_file_equals_folder(self):
        with sf.Pipeline.load(SINGLE_FILE, threads=THREADS, config_path=SINGLE_FILE_CONFIG) as single, \
                sf.Pipeline.load(SINGLE_FILE_CONFIG, threads=THREADS) as folder:
            a = single.encode_prompt("a watercolor fox")
            self.assertEqual(list(a), list(folder.encode_prompt("a watercolor fox")))
            latents = [((i * 37) % 101) / 50.0 - 1.0 for i in range(4 * 8 * 8)]
            self.assertEqual(list(single.unet_predict(latents, 621.0, a, height=8, width=8)),
                             list(folder.unet_predict(latents, 621.0, a, height=8, width=8)))
            d = single.describe(format="json")
            self.assertTrue(d["single_file"])
            self.assertEqual(d["config"], SINGLE_FILE_CONFIG)

    def test_config_path_with_a_folder_is_refused(self):
        with self.assertRaises(sf.InvalidArgumentError):
            sf.Pipeline.load(SINGLE_FILE_CONFIG, threads=THREADS, config_path=SINGLE_FILE_CONFIG)

    def test_param_key(self):
        self.assertEqual(int(sf.Param.CONFIG_PATH), 110)


def main():
    runner = unittest.TextTestRunner(verbosity=2)
    result = runner.run(unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__]))
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    skipped = len(result.skipped)
    print("%d passed, %d failed, %d skipped" % (result.testsRun - failed - skipped, failed, skipped))
    if failed:
        return 1
    if not HAVE_FIXTURES:
        print("SKIPPED: fixtures not found at %s (set SNAPFUSION_FIXTURES)" % FIXTURES)
        return 77
    return 0


if __name__ == "__main__":
    sys.exit(main())
