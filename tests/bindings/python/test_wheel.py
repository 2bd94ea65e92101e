"""The Python package's build backend (bindings/python/_build/snapfusion_build.py) never ships a
native-only library.

    SNAPFUSION_SOURCE_DIR=. python3 tests/bindings/python/test_wheel.py

- A plain wheel is pure Python (py3-none-any), with py.typed, and leaves out a libsnapfusion*
  copied into the package folder (it could be a -march=native build).
- The library the backend builds for `bundle-library=true` is configured with
  -DSF_NATIVE=OFF: the CMake cache says so and no compile flag is -march=native.
- A wheel with `bundle-library=true` is built (this compiles the library: about a minute on
  two cores; SNAPFUSION_SKIP_WHEEL_BUILD=1 skips it), installed with pip --target, and
  imports its own library.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import types
import unittest
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("SNAPFUSION_SOURCE_DIR") or os.path.normpath(os.path.join(HERE, "..", "..", ".."))
PACKAGE_DIR = os.path.join(SOURCE_DIR, "bindings", "python")
CMAKE = os.environ.get("CMAKE_COMMAND") or shutil.which("cmake") or "cmake"


def load_backend(package_dir: str) -> types.ModuleType:
    """The backend module of a package folder (a copy has its own HERE)."""
    path = os.path.join(package_dir, "_build", "snapfusion_build.py")
    spec = importlib.util.spec_from_file_location("snapfusion_build_%d" % id(package_dir), path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def wheel_entries(path: str) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


class TestWheel(unittest.TestCase):
    def test_plain_wheel_is_pure_python_without_a_stray_library(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            copy = os.path.join(tmp, "python")
            shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__", ".mypy_cache"))
            with open(os.path.join(copy, "snapfusion", "libsnapfusion.so.1"), "wb") as f:
                f.write(b"\x7fELF a -march=native build, say")
            backend = load_backend(copy)
            out = os.path.join(tmp, "dist")
            os.makedirs(out)
            name = backend.build_wheel(out)
            self.assertTrue(name.endswith("-py3-none-any.whl"), name)
            entries = wheel_entries(os.path.join(out, name))
            self.assertEqual([n for n in entries if "libsnapfusion" in n], [])
            self.assertIn("snapfusion/py.typed", entries)
            wheel_file = next(v for n, v in entries.items() if n.endswith(".dist-info/WHEEL"))
            self.assertIn(b"Root-Is-Purelib: true", wheel_file)
            sdist = backend.build_sdist(out)
            with __import__("tarfile").open(os.path.join(out, sdist)) as t:
                self.assertEqual([n for n in t.getnames() if "libsnapfusion" in n], [])

    def test_bundled_library_is_configured_without_native(self) -> None:
        backend = load_backend(PACKAGE_DIR)
        self.assertIn("-DSF_NATIVE=OFF", backend.LIBRARY_CMAKE_OPTIONS)
        with tempfile.TemporaryDirectory() as build:
            backend.configure_library(SOURCE_DIR, build, CMAKE)
            with open(os.path.join(build, "CMakeCache.txt"), encoding="utf-8") as f:
                self.assertIn("SF_NATIVE:BOOL=OFF\n", f.read())
            flag_files = [os.path.join(d, n) for d, _, files in os.walk(build) for n in files
                          if n in ("flags.make", "build.ninja")]
            self.assertTrue(flag_files, "no compile flags generated in " + build)
            for path in flag_files:
                with open(path, encoding="utf-8") as f:
                    self.assertNotIn("-march=native", f.read(), path)

    @unittest.skipIf(os.environ.get("SNAPFUSION_SKIP_WHEEL_BUILD") == "1", "SNAPFUSION_SKIP_WHEEL_BUILD=1")
    def test_bundled_wheel_imports_its_library(self) -> None:
        backend = load_backend(PACKAGE_DIR)
        with tempfile.TemporaryDirectory() as tmp:
            if subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode != 0:
                self.skipTest("no pip for " + sys.executable)
            name = backend.build_wheel(tmp, {"bundle-library": "true", "cmake": CMAKE})
            self.assertNotIn("-none-any", name)
            entries = wheel_entries(os.path.join(tmp, name))
            self.assertIn("snapfusion/libsnapfusion.so.1", entries)
            target = os.path.join(tmp, "site")
            subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
                            "--disable-pip-version-check", "--target", target, os.path.join(tmp, name)], check=True)
            env = {k: v for k, v in os.environ.items() if k not in ("SNAPFUSION_LIBRARY", "LD_LIBRARY_PATH")}
            env["PYTHONPATH"] = target
            r = subprocess.run([sys.executable, "-c", "import snapfusion._lib as l; print(l.found_by, l.lib._name)"],
                               env=env, capture_output=True, text=True, cwd=tmp)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout.split(), ["bundled", os.path.join(target, "snapfusion", "libsnapfusion.so.1")])


def main() -> int:
    result = unittest.TextTestRunner(verbosity=2).run(
        unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__]))
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
