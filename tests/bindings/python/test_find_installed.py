"""The Python package finds an installed libsnapfusion on its own (no $SNAPFUSION_LIBRARY).

    SNAPFUSION_BUILD_DIR=build python3 tests/bindings/python/test_find_installed.py

Installs the built library with `cmake --install $SNAPFUSION_BUILD_DIR --prefix TMP`, installs
the package with `pip install --target` (the source folder when the interpreter has no pip),
then imports it in clean subprocesses: with PKG_CONFIG_PATH=TMP/lib/pkgconfig alone, with
CMAKE_PREFIX_PATH=TMP alone, and with neither (the ImportError must list every place tried).
Exits 77 (ctest: skipped) when nothing could run.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("SNAPFUSION_SOURCE_DIR") or os.path.normpath(os.path.join(HERE, "..", "..", ".."))
BUILD_DIR = os.environ.get("SNAPFUSION_BUILD_DIR", "")
CMAKE = os.environ.get("CMAKE_COMMAND") or shutil.which("cmake") or "cmake"
# Everything that could point the package at a library, removed from the subprocesses' environment.
LOOKUP_VARS = ("SNAPFUSION_LIBRARY", "PKG_CONFIG_PATH", "PKG_CONFIG_LIBDIR", "CMAKE_PREFIX_PATH", "LD_LIBRARY_PATH")
PROBE = "import snapfusion, snapfusion._lib as l; print(l.found_by); print(l.lib._name); print(snapfusion.version())"


class Env:
    """The installed library and package, made once for all tests."""

    tmp: tempfile.TemporaryDirectory[str]
    prefix = ""
    package_dir = ""
    system_copy = ""  # what a clean environment loads without any hint ("" when nothing)

    @classmethod
    def set_up(cls) -> None:
        if not os.path.isfile(os.path.join(BUILD_DIR, "CMakeCache.txt")):
            raise unittest.SkipTest("SNAPFUSION_BUILD_DIR=%r is not a CMake build folder" % BUILD_DIR)
        cls.tmp = tempfile.TemporaryDirectory(prefix="sf-find-installed-")
        cls.prefix = os.path.join(cls.tmp.name, "prefix")
        r = subprocess.run([CMAKE, "--install", BUILD_DIR, "--prefix", cls.prefix], capture_output=True, text=True)
        if r.returncode != 0:
            raise AssertionError("cmake --install failed:\n" + r.stdout + r.stderr)
        cls.package_dir = os.path.join(SOURCE_DIR, "bindings", "python")
        pip = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True)
        if pip.returncode == 0:
            target = os.path.join(cls.tmp.name, "site")
            r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
                                "--disable-pip-version-check", "--target", target, cls.package_dir],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise AssertionError("pip install failed:\n" + r.stdout + r.stderr)
            cls.package_dir = target
        r = run_probe({})
        cls.system_copy = r.stdout.splitlines()[1] if r.returncode == 0 else ""

    @classmethod
    def tear_down(cls) -> None:
        if hasattr(cls, "tmp"):
            cls.tmp.cleanup()


def run_probe(extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in LOOKUP_VARS}
    env.update(extra, PYTHONPATH=Env.package_dir, PYTHONDONTWRITEBYTECODE="1")
    # A neutral working folder: nothing of the source tree is importable by accident.
    return subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                          cwd=Env.tmp.name)


def setUpModule() -> None:
    Env.set_up()


def tearDownModule() -> None:
    Env.tear_down()


class TestFindInstalled(unittest.TestCase):
    def installed_lib(self) -> str:
        return os.path.join(Env.prefix, "lib", "libsnapfusion.so.1")

    def require_isolation(self) -> None:
        if Env.system_copy:
            self.skipTest("a libsnapfusion is already visible without hints (%s): the lookup of the "
                          "temporary install cannot be isolated" % Env.system_copy)

    def assert_found(self, extra: dict[str, str], method: str) -> None:
        r = run_probe(extra)
        self.assertEqual(r.returncode, 0, r.stderr)
        found_by, path, version = r.stdout.splitlines()
        self.assertEqual(found_by, method)
        self.assertEqual(os.path.realpath(path), os.path.realpath(self.installed_lib()))
        self.assertRegex(version, r"^\d+\.\d+\.\d+$")

    def test_installed_package_has_no_library(self) -> None:
        """What pip installs is pure Python: the library must come from elsewhere."""
        names = [n for _, _, files in os.walk(Env.package_dir) for n in files if n.startswith("libsnapfusion")]
        self.assertEqual(names, [])
        self.assertTrue(os.path.isfile(self.installed_lib()), "cmake --install made no " + self.installed_lib())

    def test_installed_package_is_typed_and_versioned(self) -> None:
        """pip installs the PEP 561 marker, and the metadata's version is snapfusion.__version__."""
        if Env.package_dir == os.path.join(SOURCE_DIR, "bindings", "python"):
            self.skipTest("no pip: the package was not installed")
        self.assertTrue(os.path.isfile(os.path.join(Env.package_dir, "snapfusion", "py.typed")))
        lib = os.path.join(Env.prefix, "lib", "libsnapfusion.so.1")
        code = ("import importlib.metadata as m, snapfusion; "
                "print(snapfusion.__version__, m.version('snapfusion'), snapfusion.version())")
        env = dict(os.environ, PYTHONPATH=Env.package_dir, SNAPFUSION_LIBRARY=lib)
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=Env.tmp.name)
        self.assertEqual(r.returncode, 0, r.stderr)
        package, metadata, library = r.stdout.split()
        self.assertEqual(package, metadata)
        self.assertRegex(library, r"^\d+\.\d+\.\d+$")

    def test_pkg_config_path_alone(self) -> None:
        self.require_isolation()
        if shutil.which("pkg-config") is None:
            self.skipTest("pkg-config is not installed")
        self.assert_found({"PKG_CONFIG_PATH": os.path.join(Env.prefix, "lib", "pkgconfig")}, "pkg-config")

    def test_cmake_prefix_path_alone(self) -> None:
        self.require_isolation()
        self.assert_found({"CMAKE_PREFIX_PATH": os.pathsep.join(["/nonexistent-prefix", Env.prefix])},
                          "CMAKE_PREFIX_PATH")

    def test_snapfusion_library_wins(self) -> None:
        lib = self.installed_lib()
        r = run_probe({"SNAPFUSION_LIBRARY": lib, "CMAKE_PREFIX_PATH": "/nonexistent-prefix"})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.splitlines()[:2], ["SNAPFUSION_LIBRARY", lib])

    def test_not_found_lists_every_place_tried(self) -> None:
        self.require_isolation()
        empty = os.path.join(Env.tmp.name, "empty")
        os.makedirs(empty, exist_ok=True)
        missing = os.path.join(Env.tmp.name, "no-such-prefix")
        r = run_probe({"PKG_CONFIG_PATH": empty, "CMAKE_PREFIX_PATH": missing})
        self.assertNotEqual(r.returncode, 0)
        err = r.stderr
        self.assertIn("ImportError: libsnapfusion.so.1 not found; tried, in order:", err)
        expected = [
            "SNAPFUSION_LIBRARY: $SNAPFUSION_LIBRARY: not set",
            "bundled: " + os.path.join(Env.package_dir, "snapfusion", "libsnapfusion.so.1") + ": no such file",
            "system loader: libsnapfusion.so.1: ",
            "system loader: ctypes.util.find_library('snapfusion'): found nothing",
            "CMAKE_PREFIX_PATH: " + os.path.join(missing, "lib", "libsnapfusion.so.1") + ": no such file",
            "CMAKE_PREFIX_PATH: " + os.path.join(missing, "lib64", "libsnapfusion.so.1") + ": no such file",
            "common prefix: /usr/local/lib/libsnapfusion.so.1: no such file",
            "common prefix: /opt/snapfusion/lib/libsnapfusion.so.1: no such file",
        ]
        if shutil.which("pkg-config"):
            expected.append("pkg-config: pkg-config --variable=libdir snapfusion: ")
            expected.append("(PKG_CONFIG_PATH=%s)" % empty)
        else:
            expected.append("pkg-config: pkg-config --variable=libdir snapfusion: pkg-config is not installed")
        for line in expected:
            self.assertIn(line, err)
        # ... in the documented order.
        order = [err.index(s) for s in ("SNAPFUSION_LIBRARY:", "bundled:", "system loader:", "pkg-config:",
                                        "CMAKE_PREFIX_PATH:", "common prefix:")]
        self.assertEqual(order, sorted(order))


def main() -> int:
    runner = unittest.TextTestRunner(verbosity=2)
    result = runner.run(unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__]))
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    if failed:
        return 1
    if result.skipped and result.testsRun - len(result.skipped) <= 0:
        print("SKIPPED: " + "; ".join(reason for _, reason in result.skipped))
        return 77
    return 0


if __name__ == "__main__":
    sys.exit(main())
