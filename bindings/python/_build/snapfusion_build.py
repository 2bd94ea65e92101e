"""A minimal in-tree PEP 517 backend: the package is pure Python, so a wheel is a zip of
snapfusion/ plus metadata. It needs nothing but the standard library, which makes
`pip install bindings/python` work offline (setuptools/wheel are not always installable
into pip's isolated build environment without a network).

By default the wheel holds no native code (py3-none-any) and the package finds an installed
libsnapfusion at import. With the config setting `bundle-library=true`

    pip wheel bindings/python --config-settings bundle-library=true

the backend builds libsnapfusion from this source tree and puts it in the wheel as
snapfusion/libsnapfusion.so.1 (a platform wheel). That build is always configured with
-DSF_NATIVE=OFF: the library's default, -march=native, would tie the wheel to the build
machine's CPU (SIGILL elsewhere), while its GEMM and attention kernels pick AVX2/AVX-512 at
run time anyway. A libsnapfusion* lying in snapfusion/ (say, a copy of a native build) is
never bundled. Other settings: `source-dir` (the libsnapfusion source tree, default ../..
of this folder), `build-dir` (default: a temporary folder), `cmake` (default: cmake).
"""
from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator, Mapping

NAME = "snapfusion"
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIBRARY = "libsnapfusion.so.1"  # the SONAME: what snapfusion._lib looks for next to the package

ConfigSettings = Mapping[str, "str | list[str]"]

# The CMake options of a bundled library. SF_NATIVE=OFF is the point: see the module docstring.
LIBRARY_CMAKE_OPTIONS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DSF_NATIVE=OFF",
    "-DSF_BUILD_TESTS=OFF",
    "-DSF_BUILD_EXAMPLES=OFF",
    "-DSF_BUILD_STATIC=OFF",
    "-DSF_SANITIZE=OFF",
)


def _project_field(key: str) -> str:
    """A string field of pyproject.toml's [project] table (tomllib is not in every Python this
    backend runs on, and the fields read here are one-line strings)."""
    section = None
    with open(os.path.join(HERE, "pyproject.toml"), encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line.startswith("["):
                section = line
            elif section == "[project]" and line.split("=", 1)[0].strip() == key:
                return line.split("=", 1)[1].strip().strip('"')
    raise RuntimeError("pyproject.toml has no [project] %s" % key)


def _version() -> str:
    return _project_field("version")


def _metadata() -> str:
    with open(os.path.join(HERE, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    return ("Metadata-Version: 2.1\nName: %s\nVersion: %s\nSummary: %s\nRequires-Python: %s\n"
            "Classifier: Typing :: Typed\nDescription-Content-Type: text/markdown\n\n%s"
            % (NAME, _version(), _project_field("description"), _project_field("requires-python"), readme))


def _package_files() -> Iterator[tuple[str, str]]:
    """(path, name in the archive) of the package's Python files and its py.typed marker."""
    root = os.path.join(HERE, NAME)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for fn in sorted(filenames):
            full = os.path.join(dirpath, fn)
            if fn.endswith(".py") or fn == "py.typed":
                yield full, os.path.relpath(full, HERE).replace(os.sep, "/")
            elif fn.startswith("libsnapfusion"):
                print("snapfusion_build: not bundling %s: a bundled library is built by this backend with "
                      "-DSF_NATIVE=OFF (--config-settings bundle-library=true)" % full, file=sys.stderr)


def _setting(config_settings: ConfigSettings | None, key: str, default: str) -> str:
    value = (config_settings or {}).get(key, default)
    return value[-1] if isinstance(value, list) else value


def _bundle_requested(config_settings: ConfigSettings | None) -> bool:
    value = _setting(config_settings, "bundle-library", "false").strip().lower()
    if value not in ("true", "1", "yes", "on", "false", "0", "no", "off", ""):
        raise ValueError("bundle-library=%r: expected true or false" % value)
    return value in ("true", "1", "yes", "on")


def configure_library(source_dir: str, build_dir: str, cmake: str = "cmake") -> None:
    """Configures a libsnapfusion build for bundling (LIBRARY_CMAKE_OPTIONS) and checks that
    the cache really says SF_NATIVE=OFF."""
    if not os.path.isfile(os.path.join(source_dir, "include", "snapfusion.h")):
        raise RuntimeError("%s is not a libsnapfusion source tree (set --config-settings source-dir=...)"
                           % source_dir)
    subprocess.run([cmake, "-S", source_dir, "-B", build_dir, *LIBRARY_CMAKE_OPTIONS], check=True,
                   stdout=sys.stderr)
    with open(os.path.join(build_dir, "CMakeCache.txt"), encoding="utf-8") as f:
        native = [line.strip() for line in f if line.startswith("SF_NATIVE:")]
    if native != ["SF_NATIVE:BOOL=OFF"]:
        raise RuntimeError("%s: expected SF_NATIVE:BOOL=OFF in the CMake cache, found %s" % (build_dir, native))


def build_library(source_dir: str, build_dir: str, cmake: str = "cmake") -> str:
    """Configures and builds the shared library for a wheel; returns its path."""
    configure_library(source_dir, build_dir, cmake)
    subprocess.run([cmake, "--build", build_dir, "--target", "snapfusion", "--parallel", str(os.cpu_count() or 1)],
                   check=True, stdout=sys.stderr)
    path = os.path.join(build_dir, LIBRARY)
    if not os.path.isfile(path):
        raise RuntimeError("the build made no %s" % path)
    return os.path.realpath(path)


def _record_line(arcname: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return "%s,sha256=%s,%d" % (arcname, digest, len(data))


def get_requires_for_build_wheel(config_settings: ConfigSettings | None = None) -> list[str]:
    return []


def get_requires_for_build_sdist(config_settings: ConfigSettings | None = None) -> list[str]:
    return []


def _dist_info() -> str:
    return "%s-%s.dist-info" % (NAME, _version())


def prepare_metadata_for_build_wheel(metadata_directory: str, config_settings: ConfigSettings | None = None) -> str:
    d = os.path.join(metadata_directory, _dist_info())
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "METADATA"), "w", encoding="utf-8") as f:
        f.write(_metadata())
    return _dist_info()


def _platform_tag() -> str:
    return sysconfig.get_platform().replace("-", "_").replace(".", "_")


def _write_wheel(wheel_directory: str, entries: list[tuple[str, bytes]], platform: str | None = None) -> str:
    """A wheel of entries; platform None: pure Python (py3-none-any)."""
    tag = "py3-none-" + (platform or "any")
    wheel_name = "%s-%s-%s.whl" % (NAME, _version(), tag)
    info = _dist_info()
    record = []
    with zipfile.ZipFile(os.path.join(wheel_directory, wheel_name), "w", zipfile.ZIP_DEFLATED) as z:
        def add(arcname: str, data: bytes) -> None:
            z.writestr(arcname, data)
            record.append(_record_line(arcname, data))
        for arcname, data in entries:
            add(arcname, data)
        add(info + "/METADATA", _metadata().encode())
        add(info + "/WHEEL", ("Wheel-Version: 1.0\nGenerator: snapfusion_build\nRoot-Is-Purelib: %s\nTag: %s\n"
                              % ("false" if platform else "true", tag)).encode())
        record.append(info + "/RECORD,,")
        z.writestr(info + "/RECORD", "\n".join(record) + "\n")
    return wheel_name


def build_wheel(wheel_directory: str, config_settings: ConfigSettings | None = None,
                metadata_directory: str | None = None) -> str:
    entries = []
    for full, arcname in _package_files():
        with open(full, "rb") as f:
            entries.append((arcname, f.read()))
    if not _bundle_requested(config_settings):
        return _write_wheel(wheel_directory, entries)
    source_dir = os.path.abspath(_setting(config_settings, "source-dir", os.path.join(HERE, "..", "..")))
    cmake = _setting(config_settings, "cmake", "cmake")
    build_dir = _setting(config_settings, "build-dir", "")
    tmp = None if build_dir else tempfile.mkdtemp(prefix="snapfusion-wheel-build-")
    try:
        lib = build_library(source_dir, build_dir or str(tmp), cmake)
        with open(lib, "rb") as f:
            entries.append((NAME + "/" + LIBRARY, f.read()))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return _write_wheel(wheel_directory, entries, _platform_tag())


def build_editable(wheel_directory: str, config_settings: ConfigSettings | None = None,
                   metadata_directory: str | None = None) -> str:
    # A .pth file that puts this folder on sys.path (PEP 660's simplest form).
    return _write_wheel(wheel_directory, [(NAME + "_editable.pth", (HERE + "\n").encode())])


get_requires_for_build_editable = get_requires_for_build_wheel
prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_sdist(sdist_directory: str, config_settings: ConfigSettings | None = None) -> str:
    base = "%s-%s" % (NAME, _version())
    name = base + ".tar.gz"
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz") as t:
        for rel in ("pyproject.toml", "README.md", "_build/snapfusion_build.py"):
            t.add(os.path.join(HERE, rel), base + "/" + rel)
        for full, arcname in _package_files():
            t.add(full, base + "/" + arcname)
        pkg_info = tarfile.TarInfo(base + "/PKG-INFO")
        data = _metadata().encode()
        pkg_info.size = len(data)
        t.addfile(pkg_info, io.BytesIO(data))
    return name
