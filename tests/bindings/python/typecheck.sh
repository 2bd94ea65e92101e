#!/bin/sh
# `mypy --strict` (settings: bindings/python/pyproject.toml) over the Python package, its
# build backend and the example. typecheck.sh SOURCE_DIR PYTHON. Skipped (77) when no mypy is
# found: the test's interpreter, `mypy` on PATH, then Debian's python3 (python3-mypy).
src=$1 py=$2
if "$py" -m mypy --version >/dev/null 2>&1; then set -- "$py" -m mypy
elif command -v mypy >/dev/null 2>&1; then set -- mypy
elif /usr/bin/python3 -m mypy --version >/dev/null 2>&1; then set -- /usr/bin/python3 -m mypy
else echo "SKIPPED: mypy not found (apt-get install python3-mypy)"; exit 77; fi
"$@" --version
cd "$src/bindings/python" || exit 1
MYPYPATH=. exec "$@" --config-file pyproject.toml --cache-dir=/dev/null snapfusion _build/snapfusion_build.py \
  "$src/examples/python/txt2img.py"
