#!/usr/bin/env python3
"""Text to image with the snapfusion Python package: prompt in, PNG out.

From the root of a built source tree, without installing anything (the same command is in
bindings/README.md; the tests run it as written, doc-test: python-example):
    PYTHONPATH=bindings/python SNAPFUSION_LIBRARY=build/libsnapfusion.so \
        python3 examples/python/txt2img.py -m ../shared/fixtures/public/tiny-sd -p "a photo of a cat" -o cat.png

Threads: one per core unless -t says otherwise. --seed -1 draws a seed (printed, and in the
PNG's parameters); -b N makes N images from consecutive seeds (OUT-0.png, OUT-1.png, ...).
Memory: --weights f16 halves the weights' memory, q8 quarters it (default: as the checkpoint
stores them); --low-memory keeps one network resident at a time. The last line tells the
weights' memory at the end (with --low-memory: of the network resident then, the decoder).
--estimate only checks the model (Pipeline.inspect: no weight is read) and prints the memory
a generation with these options would need (Pipeline.estimate_memory); no prompt needed.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time

try:
    import snapfusion
except ImportError:  # run from a source tree without installing the package
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bindings", "python"))
    import snapfusion


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-m", "--model", required=True, help="diffusers model folder")
    ap.add_argument("-p", "--prompt", help="required unless --estimate")
    ap.add_argument("-n", "--negative", default=None, help="negative prompt")
    ap.add_argument("-W", "--width", type=int, default=None)
    ap.add_argument("-H", "--height", type=int, default=None)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--cfg-scale", type=float, default=7.5)
    ap.add_argument("--sampler", default=None, help=", ".join(snapfusion.sampler_names()) + " (default: the folder's)")
    ap.add_argument("--seed", type=int, default=0, help="-1: a random seed")
    ap.add_argument("-b", "--batch-count", type=int, default=1, help="images from seeds S, S+1, ...")
    ap.add_argument("--variant", default=None, help="prefer *.VARIANT.safetensors (e.g. fp16)")
    ap.add_argument("--weights", choices=("f32", "f16", "q8"), default=None,
                    help="how the networks' weights are held (default: as the checkpoint stores them)")
    ap.add_argument("--low-memory", action="store_true",
                    help="one network resident at a time, each packed when needed")
    ap.add_argument("--estimate", action="store_true",
                    help="print the memory the generation would need (no weight is read) and exit")
    ap.add_argument("--preview-dir", default=None, help="write a preview PNG after every step")
    ap.add_argument("-t", "--threads", type=int, default=None, help="worker threads (default: one per core)")
    ap.add_argument("-o", "--output", default="output.png")
    ap.add_argument("-v", "--verbose", action="store_true", help="show the library's log")
    args = ap.parse_args(argv)
    if args.prompt is None and not args.estimate:
        ap.error("the following arguments are required: -p/--prompt")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    if args.estimate:
        return estimate(args)

    start = time.monotonic()
    try:
        with snapfusion.Pipeline.load(args.model, threads=args.threads, variant=args.variant, weights=args.weights,
                                      low_memory=args.low_memory) as pipe:
            loaded = time.monotonic()
            if args.batch_count != 1:
                def progress(step: int, total: int) -> None:
                    print("\rstep %d/%d" % (step, total), end="", file=sys.stderr, flush=True)
                images = pipe.txt2img_batch(args.prompt, args.negative, batch_count=args.batch_count,
                                            width=args.width, height=args.height, steps=args.steps,
                                            guidance_scale=args.cfg_scale, sampler=args.sampler, seed=args.seed,
                                            progress=progress)
                print(file=sys.stderr)
                root, ext = os.path.splitext(args.output)
                ext = ext or ".png"
                for i, image in enumerate(images):
                    image.save("%s-%d%s" % (root, i, ext))
                print("%s-0%s .. %s-%d%s: seeds %s" % (root, ext, root, len(images) - 1, ext,
                                                       ", ".join(str(im.seed) for im in images)))
                return 0
            job = pipe.generate(args.prompt, args.negative, width=args.width, height=args.height, steps=args.steps,
                                guidance_scale=args.cfg_scale, sampler=args.sampler, seed=args.seed)
            if args.seed == snapfusion.SEED_RANDOM:
                print("seed %d" % job.seed)
            with job:
                for step in job:
                    print("\rstep %d/%d" % (step.index, step.total), end="", file=sys.stderr, flush=True)
                    if args.preview_dir:
                        os.makedirs(args.preview_dir, exist_ok=True)
                        step.preview().save(os.path.join(args.preview_dir, "step-%02d.png" % step.index))
                print(file=sys.stderr)
                image = job.finish()  # decoded when the iteration ended: finish() returns it
                image.save(args.output)
                size = image.size
            weight_bytes = pipe.weight_bytes  # with --low-memory: the networks resident at the end
    except snapfusion.SnapFusionError as e:
        print("txt2img: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    done = time.monotonic()
    print("%s: %dx%d, load %.2f s, generate %.2f s, weights in memory %.2f MB"
          % (args.output, size[0], size[1], loaded - start, done - loaded, weight_bytes / 1e6))
    return 0


def estimate(args: argparse.Namespace) -> int:
    """--estimate: the model checked, not loaded, and the memory the generation would need."""
    try:
        with snapfusion.Pipeline.inspect(args.model, threads=args.threads, variant=args.variant,
                                         weights=args.weights, low_memory=args.low_memory) as probe:
            width = args.width or probe.default_width
            height = args.height or probe.default_height
            need = probe.estimate_memory(args.prompt, args.negative, width=width, height=height,
                                      guidance_scale=args.cfg_scale, batch_count=args.batch_count)
            weights = probe.weight_type.name.lower()
    except snapfusion.SnapFusionError as e:
        if not e.problems:
            print("txt2img: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        else:  # an inspection reports every problem it finds: one line each
            print("txt2img: %s: %d problem%s in %s:" % (type(e).__name__, len(e.problems),
                                                       "s" if len(e.problems) > 1 else "", args.model),
                  file=sys.stderr)
            for problem in e.problems:
                print("  " + problem, file=sys.stderr)
        return 1

    def mb(n: int) -> str:
        return "%.2f MB" % (n / 1e6)
    print("%dx%d, cfg scale %g, %s weights%s: peak %s (weights %s, workspace %s, other %s); all weights %s, "
          "workspace of the run %s" % (width, height, args.cfg_scale, weights, ", low memory" if args.low_memory else "",
                                       mb(need.peak), mb(need.weights), mb(need.workspace), mb(need.other),
                                       mb(need.weights_total), mb(need.workspace_run)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
