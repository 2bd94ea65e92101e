"""A minimal in-tree PEP 517 backend: the package is pure Python, so a wheel is a zip of
snapfusion/ plus metadata. It needs nothing but the standard library, which makes
`pip install bindings/python` work offline (setuptools/wheel are not always installable
into pip's isolated build environment without a network)."""
import base64
import hashlib
import os
import tarfile
import zipfile

NAME = "snapfusion"
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _project_field(key):
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


def _version():
    return _project_field("version")


def _metadata():
    with open(os.path.join(HERE, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    return ("Metadata-Version: 2.1\nName: %s\nVersion: %s\nSummary: %s\nRequires-Python: %s\n"
            "Classifier: Typing :: Typed\nDescription-Content-Type: text/markdown\n\n%s"
            % (NAME, _version(), _project_field("description"), _project_field("requires-python"), readme))


def _package_files():
    root = os.path.join(HERE, NAME)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for fn in sorted(filenames):
            if fn.endswith((".py", ".typed")) or fn.startswith("libsnapfusion"):
                full = os.path.join(dirpath, fn)
                yield full, os.path.relpath(full, HERE).replace(os.sep, "/")


def _record_line(arcname, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return "%s,sha256=%s,%d" % (arcname, digest, len(data))


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def _dist_info():
    return "%s-%s.dist-info" % (NAME, _version())


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    d = os.path.join(metadata_directory, _dist_info())
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "METADATA"), "w", encoding="utf-8") as f:
        f.write(_metadata())
    return _dist_info()


def _write_wheel(wheel_directory, entries):
    wheel_name = "%s-%s-py3-none-any.whl" % (NAME, _version())
    info = _dist_info()
    record = []
    with zipfile.ZipFile(os.path.join(wheel_directory, wheel_name), "w", zipfile.ZIP_DEFLATED) as z:
        def add(arcname, data):
            z.writestr(arcname, data)
            record.append(_record_line(arcname, data))
        for arcname, data in entries:
            add(arcname, data)
        add(info + "/METADATA", _metadata().encode())
        add(info + "/WHEEL", b"Wheel-Version: 1.0\nGenerator: snapfusion_build\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        record.append(info + "/RECORD,,")
        z.writestr(info + "/RECORD", "\n".join(record) + "\n")
    return wheel_name


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    entries = []
    for full, arcname in _package_files():
        with open(full, "rb") as f:
            entries.append((arcname, f.read()))
    return _write_wheel(wheel_directory, entries)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    # A .pth file that puts this folder on sys.path (PEP 660's simplest form).
    return _write_wheel(wheel_directory, [(NAME + "_editable.pth", (HERE + "\n").encode())])


get_requires_for_build_editable = get_requires_for_build_wheel
prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_sdist(sdist_directory, config_settings=None):
    base = "%s-%s" % (NAME, _version())
    name = base + ".tar.gz"
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz") as t:
        for rel in ("pyproject.toml", "README.md", "_build/snapfusion_build.py"):
            t.add(os.path.join(HERE, rel), base + "/" + rel)
        for full, arcname in _package_files():
            if not os.path.basename(full).startswith("libsnapfusion"):
                t.add(full, base + "/" + arcname)
        pkg_info = tarfile.TarInfo(base + "/PKG-INFO")
        data = _metadata().encode()
        pkg_info.size = len(data)
        import io
        t.addfile(pkg_info, io.BytesIO(data))
    return name
