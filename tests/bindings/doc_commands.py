"""Runs the commands and examples the bindings' documentation shows, exactly as written.

A documented block is tagged where it is written, and this script finds it by its tag:

`check` also fails on a literal thread count (`threads=4`, `threads: 4`, `SF_PARAM_THREADS, 4`)
in those files and the bindings' sources: examples use the default, one thread per core.

- Markdown: the fenced block right after a line `<!-- doc-test: TAG -->`. A fenced `sh`
  block that must not run is tagged `<!-- doc-test: skip (why) -->`; an untagged one is an
  error (`check`), so no command goes undocumented by the tests.
- Source comments and docstrings: the lines right after a line containing `doc-test: TAG`,
  each with the marker line's comment prefix (`//` or none) followed by two or more spaces.

A tag may appear in several files (the Kotlin example's header and bindings/README.md show
the same commands): the copies must be identical, and they run once.

Commands run as a user at the root of a built source tree would run them: in a sandbox
WORK/repo whose bindings/, examples/ and include/ link to the source tree, build/ to the CMake
build folder, models/tiny-sd to the fixture model, and ../shared/fixtures to the fixtures, so
that `build/libsnapfusion.so`, `../shared/fixtures/public/tiny-sd` and the files the commands
write all resolve there. `sh` blocks run with `sh -e`; `python` blocks with PYTHON, with
PYTHONPATH=bindings/python and SNAPFUSION_LIBRARY=build/libsnapfusion.so (the documented way
to use the package uninstalled). Every *.png a block names must exist afterwards.

    doc_commands.py --source SRC check
    doc_commands.py --source SRC --build BUILD --fixtures FX --work WORK [--python PY] run TAG...
                                                  (exits 77 when the fixtures are missing)
    doc_commands.py --source SRC extract TAG OUT_FILE
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap

# Where documented blocks live (relative to the source tree).
DOC_FILES = (
    "bindings/README.md",
    "bindings/python/README.md",
    "bindings/kotlin/examples/Txt2Img.kt",
    "examples/python/txt2img.py",
)
# Files whose examples must not hard-code a thread count (the default is one per core).
THREAD_LINT_FILES = DOC_FILES + (
    "bindings/python/snapfusion/__init__.py",
    "bindings/kotlin/src/snapfusion/SnapFusion.kt",
    "bindings/swift/Sources/SnapFusion/SnapFusion.swift",
    "bindings/swift/Sources/txt2img/main.swift",
)
HARD_CODED_THREADS = re.compile(r"\bthreads\s*[=:]\s*\d|SF_PARAM_THREADS\s*,\s*\d")
MARKER = re.compile(r"doc-test:\s*([\w-]+)")
FENCE = re.compile(r"^\s*```(\w*)\s*$")


@dataclasses.dataclass
class Block:
    tag: str
    lang: str  # "sh", "python", "kotlin", ...
    text: str
    where: str  # FILE:LINE


def _comment_block(lines: list[str], start: int, prefix: str) -> str:
    """The command lines after a marker line: PREFIX + two or more spaces + text."""
    body = []
    for line in lines[start:]:
        if not line.startswith(prefix):
            break
        rest = line[len(prefix):]
        if not rest.startswith("  ") or not rest.strip():
            break
        body.append(rest)
    return textwrap.dedent("\n".join(body)).strip("\n") + "\n"


def parse(path: str, rel: str) -> tuple[list[Block], list[str]]:
    """The tagged blocks of a file, and (Markdown) where untagged sh blocks are."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    blocks: list[Block] = []
    untagged: list[str] = []
    markdown = path.endswith(".md")
    i = 0
    while i < len(lines):
        line = lines[i]
        m = MARKER.search(line)
        if markdown:
            fence = FENCE.match(line)
            if fence and fence.group(1):
                tag = None
                prev = lines[i - 1] if i else ""
                pm = MARKER.search(prev) if prev.strip().startswith("<!--") else None
                if pm:
                    tag = pm.group(1)
                end = i + 1
                while end < len(lines) and not FENCE.match(lines[end]):
                    end += 1
                text = "\n".join(lines[i + 1:end]) + "\n"
                if tag and tag != "skip":
                    blocks.append(Block(tag, fence.group(1), text, "%s:%d" % (rel, i + 1)))
                elif tag is None and fence.group(1) == "sh":
                    untagged.append("%s:%d" % (rel, i + 1))
                i = end + 1
                continue
        elif m:
            prefix = "//" if line.lstrip().startswith("//") else ""
            blocks.append(Block(m.group(1), "sh", _comment_block(lines, i + 1, prefix), "%s:%d" % (rel, i + 1)))
        i += 1
    return blocks, untagged


def collect(source: str) -> tuple[dict[str, list[Block]], list[str]]:
    by_tag: dict[str, list[Block]] = {}
    untagged: list[str] = []
    for rel in DOC_FILES:
        path = os.path.join(source, rel)
        if not os.path.exists(path):
            continue
        blocks, missing = parse(path, rel)
        untagged += missing
        for b in blocks:
            by_tag.setdefault(b.tag, []).append(b)
    return by_tag, untagged


def the_block(by_tag: dict[str, list[Block]], tag: str) -> Block:
    copies = by_tag.get(tag)
    if not copies:
        sys.exit("doc_commands: no block tagged doc-test: %s in %s" % (tag, ", ".join(DOC_FILES)))
    first = copies[0]
    for other in copies[1:]:
        if other.text.strip() != first.text.strip():
            sys.exit("doc_commands: the copies of doc-test: %s differ:\n--- %s\n%s--- %s\n%s"
                     % (tag, first.where, first.text, other.where, other.text))
    return first


def hard_coded_threads(source: str) -> list[str]:
    """FILE:LINE: text of every literal thread count in the bindings' docs and examples."""
    found = []
    for rel in THREAD_LINT_FILES:
        path = os.path.join(source, rel)
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if HARD_CODED_THREADS.search(line):
                    found.append("%s:%d: %s" % (rel, n, line.strip()))
    return found


def make_sandbox(work: str, source: str, build: str, fixtures: str) -> str:
    repo = os.path.join(work, "repo")
    for made in (repo, os.path.join(work, "shared")):
        shutil.rmtree(made, ignore_errors=True)
    os.makedirs(os.path.join(repo, "models"))
    os.makedirs(os.path.join(work, "shared"))
    for name in ("bindings", "examples", "include"):
        os.symlink(os.path.join(source, name), os.path.join(repo, name))
    os.symlink(os.path.abspath(build), os.path.join(repo, "build"))
    os.symlink(os.path.abspath(fixtures), os.path.join(work, "shared", "fixtures"))
    os.symlink(os.path.join(os.path.abspath(fixtures), "public", "tiny-sd"), os.path.join(repo, "models", "tiny-sd"))
    return repo


def run_block(block: Block, repo: str, python: str) -> None:
    print("== doc-test: %s (%s, %s)\n%s" % (block.tag, block.where, block.lang, block.text.rstrip()), flush=True)
    if block.lang == "sh":
        cmd = ["sh", "-e", "-c", block.text]
        env = dict(os.environ)
    elif block.lang == "python":
        cmd = [python, "-c", block.text]
        env = dict(os.environ, PYTHONPATH="bindings/python", SNAPFUSION_LIBRARY="build/libsnapfusion.so")
    else:
        sys.exit("doc_commands: %s: cannot run a %s block (extract it instead)" % (block.where, block.lang))
    r = subprocess.run(cmd, cwd=repo, env=env)
    if r.returncode != 0:
        sys.exit("doc_commands: doc-test: %s (%s) exited with status %d" % (block.tag, block.where, r.returncode))
    names = [n for n in re.findall(r"[^\s\"'()]+\.png", block.text) if not any(c in n for c in "%{$")]
    missing = [n for n in names if not os.path.isfile(os.path.join(repo, n))]
    if missing:
        sys.exit("doc_commands: doc-test: %s (%s) wrote no %s" % (block.tag, block.where, ", ".join(missing)))
    print("== doc-test: %s passed%s" % (block.tag, ": wrote " + " ".join(shlex.quote(n) for n in names)
                                       if names else ""), flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", required=True)
    ap.add_argument("--build", help="the CMake build folder (holds libsnapfusion.so)")
    ap.add_argument("--fixtures", help="the fixtures folder (holds public/tiny-sd); $SNAPFUSION_FIXTURES wins")
    ap.add_argument("--work", help="sandbox folder (recreated)")
    ap.add_argument("--python", default=sys.executable)
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("check")
    run = sub.add_parser("run")
    run.add_argument("tags", nargs="+")
    ext = sub.add_parser("extract")
    ext.add_argument("tag")
    ext.add_argument("out")
    args = ap.parse_args(argv)
    source = os.path.abspath(args.source)
    by_tag, untagged = collect(source)
    if args.command == "check":
        if untagged:
            sys.exit("doc_commands: sh blocks without a doc-test tag (tag them, or `doc-test: skip (why)`): "
                     + ", ".join(untagged))
        threads = hard_coded_threads(source)
        if threads:
            sys.exit("doc_commands: examples hard-code a thread count (leave the default, one per core, "
                     "or explain):\n  " + "\n  ".join(threads))
        for tag in sorted(by_tag):
            the_block(by_tag, tag)
            print("%-24s %s" % (tag, ", ".join(b.where for b in by_tag[tag])))
        return 0
    if args.command == "extract":
        block = the_block(by_tag, args.tag)
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(block.text)
        return 0
    fixtures = os.environ.get("SNAPFUSION_FIXTURES") or args.fixtures
    if not (args.build and fixtures and args.work):
        ap.error("run needs --build, --fixtures (or $SNAPFUSION_FIXTURES) and --work")
    if untagged:
        sys.exit("doc_commands: sh blocks without a doc-test tag: " + ", ".join(untagged))
    blocks = [the_block(by_tag, tag) for tag in args.tags]
    if not os.path.isfile(os.path.join(fixtures, "public", "manifest.json")):
        print("SKIPPED: fixtures not found at %s (set SNAPFUSION_FIXTURES)" % fixtures)
        return 77
    repo = make_sandbox(os.path.abspath(args.work), source, args.build, fixtures)
    for block in blocks:
        run_block(block, repo, args.python)
    return 0


if __name__ == "__main__":
    sys.exit(main())
