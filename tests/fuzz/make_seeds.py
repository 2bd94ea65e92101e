#!/usr/bin/env python3
"""Seed corpora of the fuzz targets, derived from the fixtures at build time (nothing binary is
kept in the repository). Writes OUT/<target>/<name> for every target of tests/fuzz and
OUT/stamp last.

    make_seeds.py --fixtures ../shared/fixtures --out BUILD/tests/fuzz/seeds

$SNAPFUSION_FIXTURES, when set, overrides --fixtures (as for the tests). The input formats the
targets expect are described at the top of each fuzz_*.c; the seeds follow them."""
import argparse
import gzip
import hashlib
import json
import os
import shutil
import struct
import sys
import zlib


def read(path):
    with open(path, "rb") as f:
        return f.read()


class Corpus:
    def __init__(self, root, target):
        self.dir = os.path.join(root, target)
        os.makedirs(self.dir, exist_ok=True)
        self.n = 0

    def add(self, name, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:80]
        with open(os.path.join(self.dir, "%03d-%s" % (self.n, safe)), "wb") as f:
            f.write(data)
        self.n += 1


# ---- safetensors ------------------------------------------------------------------------------

def st_parse(blob):
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    return n, header, blob[8 + n:]


def st_build(tensors, metadata=None, pad_to=8):
    """tensors: list of (name, dtype, shape, bytes)."""
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((-len(h)) % pad_to)
    return struct.pack("<Q", len(h)) + h + data


def st_small(blob, max_tensors=4, max_bytes=4096):
    """A valid file of a few small tensors of blob (with their real bytes)."""
    _, header, data = st_parse(blob)
    picked = []
    for name, t in header.items():
        if name == "__metadata__":
            continue
        b, e = t["data_offsets"]
        if e - b <= max_bytes:
            picked.append((name, t["dtype"], t["shape"], data[b:e]))
        if len(picked) == max_tensors:
            break
    return st_build(picked, header.get("__metadata__"))


DTYPES = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def st_every_dtype():
    tensors = []
    for i, (dt, size) in enumerate(sorted(DTYPES.items())):
        shape = [2, 3] if i % 2 == 0 else [6]
        raw = bytes((k * 37 + i) & 0x7F for k in range(6 * size))
        tensors.append(("t_" + dt.lower(), dt, shape, raw))
    tensors.append(("scalar", "F32", [], struct.pack("<f", 1.5)))
    tensors.append(("empty", "F32", [0, 3], b""))
    return st_build(tensors, {"format": "pt", "note": "every dtype"})


# ---- tokenizer --------------------------------------------------------------------------------

def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) + \
        list(range(ord("\u00ae"), ord("\u00ff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def small_tokenizer(merge_lines):
    """vocab.json + merges.txt of the first merges, built as CLIP's SimpleTokenizer builds its
    encoder (byte symbols, the same with </w>, one token per merge, the specials)."""
    vocab = bytes_to_unicode()
    vocab = vocab + [v + "</w>" for v in vocab]
    for m in merge_lines:
        vocab.append("".join(m.split()))
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    vocab_json = json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False)
    merges = "#version: 0.2\n" + "".join(m + "\n" for m in merge_lines)
    return vocab_json.encode(), merges.encode()


# ---- PNG --------------------------------------------------------------------------------------

def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(width, height, color, filt=0, parameters=None, split_idat=1, level=6):
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color]
    rows = b""
    for y in range(height):
        f = filt if filt >= 0 else y % 5
        rows += bytes([f]) + bytes(((x * 7 + y * 13 + c * 29) * (f + 1)) & 0xFF
                                   for x in range(width) for c in range(channels))
    z = zlib.compress(rows, level)
    out = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0))
    if parameters is not None:
        out += png_chunk(b"tEXt", b"parameters\0" + parameters.encode("utf-8"))
    step = max(1, (len(z) + split_idat - 1) // split_idat)
    for i in range(0, len(z), step):
        out += png_chunk(b"IDAT", z[i:i + step])
    return out + png_chunk(b"IEND", b"")


# ---- the corpora ------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    fx = os.environ.get("SNAPFUSION_FIXTURES") or args.fixtures
    pub = os.path.join(fx, "public")
    if not os.path.isfile(os.path.join(pub, "manifest.json")):
        sys.exit("make_seeds.py: fixtures not found at %s (set SNAPFUSION_FIXTURES)" % fx)
    if os.path.isdir(args.out):
        shutil.rmtree(args.out)
    os.makedirs(args.out)
    tiny = os.path.join(pub, "tiny-sd")
    manifest = json.loads(read(os.path.join(pub, "manifest.json")))
    cases = {c["name"]: c for c in manifest["cases"]}

    # Every small JSON file of the fixtures (configs, tokenizer configs, model indexes).
    json_files = []
    for root, _, names in os.walk(fx):
        for n in sorted(names):
            p = os.path.join(root, n)
            if n.endswith(".json") and os.path.getsize(p) <= 64 * 1024:
                json_files.append(p)
    json_files.sort()

    # fuzz_json: the configs, safetensors headers, slices of the big files, edge cases.
    c = Corpus(args.out, "fuzz_json")
    for p in json_files:
        c.add(os.path.relpath(p, fx), read(p))
    for p in ["unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors"]:
        n, _, _ = st_parse(read(os.path.join(tiny, p)))
        c.add("header-" + p, read(os.path.join(tiny, p))[8:8 + n][:16384])
    vocab = json.loads(read(os.path.join(pub, "tokenizer", "vocab.json")))
    c.add("vocab-slice", json.dumps(dict(list(vocab.items())[:300] + list(vocab.items())[-300:]), ensure_ascii=False))
    c.add("manifest-case", json.dumps(cases["pipeline/ddim_eps_cfg7.5_neg"]))
    for i, s in enumerate(['[1, -0, 0.5e-3, 1E+2, -1.5e308, 123456789012345678901234567890, 9007199254740993]',
                           '{"a": "\\u00e9\\ud83d\\ude00\\u0000x", "b": [true, false, null, {}], "c": "\\"\\\\\\/\\b\\f\\n\\r\\t"}',
                           '{"nan": NaN, "inf": [Infinity, -Infinity], "x": 1}',
                           '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]',
                           '"\u00e9\u4e2d\U0001f600"', ' \t\r\n 42 \n']):
        c.add("edge-%d" % i, s)

    # fuzz_safetensors: small valid files of real tensors, every dtype, truncations.
    c = Corpus(args.out, "fuzz_safetensors")
    st_files = [os.path.join(tiny, p) for p in ["unet/diffusion_pytorch_model.safetensors",
                                                  "unet/diffusion_pytorch_model.fp16.safetensors",
                                                  "vae/diffusion_pytorch_model.safetensors",
                                                  "text_encoder/model.safetensors"]]
    for n in ["unet__t999", "scheduler__ddim_eps__8steps", "generator__seed_0", "tokenizer__cases"]:
        p = os.path.join(pub, "cases", n + ".safetensors")
        if os.path.isfile(p):
            st_files.append(p)
    for p in st_files:
        blob = read(p)
        c.add("small-" + os.path.relpath(p, pub), st_small(blob))
        c.add("one-" + os.path.relpath(p, pub), st_small(blob, max_tensors=1, max_bytes=256))
        n, _, _ = st_parse(blob)
        c.add("header-only-" + os.path.relpath(p, pub), blob[:8 + n][:65536])
    c.add("every-dtype", st_every_dtype())
    c.add("empty-header", st_build([], None))
    c.add("metadata-only", st_build([], {"format": "pt"}))

    # fuzz_unet_weights: the real UNet file and truncations of it.
    c = Corpus(args.out, "fuzz_unet_weights")
    unet = read(os.path.join(tiny, "unet/diffusion_pytorch_model.safetensors"))
    n, _, _ = st_parse(unet)
    c.add("unet", unet)
    c.add("unet-fp16", read(os.path.join(tiny, "unet/diffusion_pytorch_model.fp16.safetensors")))
    c.add("unet-header-only", unet[:8 + n])
    c.add("unet-half", unet[:len(unet) // 2])

    # fuzz_single_file: the models set's single-file checkpoints (fp32, fp16), the header alone,
    # a truncation, and the VAE's part alone (a file with some components only).
    c = Corpus(args.out, "fuzz_single_file")
    single = os.path.join(os.path.dirname(pub), "models", "single-file")
    for name in ("tiny-sd-mini.safetensors", "tiny-sd-mini.fp16.safetensors"):
        path = os.path.join(single, name)
        if not os.path.isfile(path):
            continue
        blob = read(path)
        n, _, _ = st_parse(blob)
        c.add(name, blob)
        c.add("header-only-" + name, blob[:8 + n])
        c.add("half-" + name, blob[:len(blob) // 2])
    if c.n == 0:
        c.add("empty-header", st_build([], None))

    # fuzz_lora: the models set's LoRA files (kohya and PEFT), their headers alone, truncations.
    c = Corpus(args.out, "fuzz_lora")
    lora_dir = os.path.join(os.path.dirname(pub), "models", "lora")
    if os.path.isdir(lora_dir):
        for name in sorted(os.listdir(lora_dir)):
            if not name.endswith(".safetensors"):
                continue
            blob = read(os.path.join(lora_dir, name))
            n, _, _ = st_parse(blob)
            c.add(name, blob)
            c.add("header-only-" + name, blob[:8 + n])
            c.add("half-" + name, blob[:len(blob) // 2])
    if c.n == 0:
        c.add("empty-header", st_build([], None))

    # fuzz_model_config: one selector byte (0 unet, 1 vae, 2 text encoder, 3 model_index) then
    # the file: tiny-sd's own (which loads) and the other fixture models' (which must be refused
    # or load consistently).
    c = Corpus(args.out, "fuzz_model_config")
    for sel, rel in enumerate(["unet/config.json", "vae/config.json", "text_encoder/config.json", "model_index.json"]):
        c.add("%d-tiny-sd-%s" % (sel, rel), bytes([sel]) + read(os.path.join(tiny, rel)))
        for other in ["models/tiny-sd-mini", "models/tiny-lcm"]:
            p = os.path.join(fx, other, rel)
            if os.path.isfile(p):
                c.add("%d-%s-%s" % (sel, other, rel), bytes([sel]) + read(p))
    for v in ["bksdm_like_nomid", "snapfusion_like"]:
        c.add("0-pruned-" + v, bytes([0]) + read(os.path.join(pub, "tiny-pruned", v, "config.json")))

    # fuzz_scheduler: sampler byte, steps byte, flags byte, then the config JSON.
    c = Corpus(args.out, "fuzz_scheduler")
    configs = [("tiny-sd", read(os.path.join(tiny, "scheduler/scheduler_config.json")))]
    for name, case in cases.items():
        cfg = case.get("params", {}).get("config") if name.startswith("scheduler/") else None
        if cfg and name.endswith("/8steps"):
            configs.append((name, json.dumps(dict(cfg, _class_name=case["params"].get("class", "")))))
    for k, cfg in (cases["scheduler/timestep_tables"]["params"].get("kinds") or {}).items():
        if isinstance(cfg, dict):
            configs.append(("tables-" + k, json.dumps(cfg)))
    p = os.path.join(fx, "models/tiny-lcm/scheduler/scheduler_config.json")
    if os.path.isfile(p):
        configs.append(("lcm", read(p)))
    for i, (name, cfg) in enumerate(configs):
        for sampler, steps, flags in [(0, 8, 0), (i % 7, 25, 0), ((i + 3) % 7, 4, 0x15), (2, 1, 0x2a)]:
            c.add("%s-%d-%d-%d" % (name, sampler, steps, flags), bytes([sampler, steps, flags]) +
                  (cfg if isinstance(cfg, bytes) else cfg.encode()))
    c.add("null-config", bytes([5, 20, 0x10]))

    # fuzz_tokenizer_files: vocab.json, a NUL byte, merges.txt; small tokenizers made like
    # CLIP's from the real merges.
    c = Corpus(args.out, "fuzz_tokenizer_files")
    merges = read(os.path.join(pub, "tokenizer", "merges.txt")).decode("utf-8").split("\n")[1:]
    for k in [0, 20, 300, 1500]:
        v, m = small_tokenizer(merges[:k])
        c.add("merges-%d" % k, v + b"\0" + m)

    # fuzz_tokenizer_gz: a mode byte (odd: plain text the target compresses; even: a .gz
    # file) and OpenAI's bpe_simple_vocab_16e6.txt.gz cut to its first merges.
    c = Corpus(args.out, "fuzz_tokenizer_gz")
    text = gzip.decompress(read(os.path.join(pub, "tokenizer", "bpe_simple_vocab_16e6.txt.gz"))).split(b"\n")
    for k in [1, 30, 400, 3000]:
        c.add("gz-lines-%d" % k, b"\0" + gzip.compress(b"\n".join(text[:k]) + b"\n", 9, mtime=0))
        c.add("text-lines-%d" % k, b"\1" + b"\n".join(text[:k]) + b"\n")
    c.add("gz-no-newline", b"\0" + gzip.compress(b"#version: 0.2", 9, mtime=0))

    # fuzz_prompt: the tokenizer cases' prompts and the pipelines' prompts.
    c = Corpus(args.out, "fuzz_prompt")
    tcases = json.loads(read(os.path.join(pub, "tokenizer", "cases.json")))["cases"]
    for t in tcases:
        c.add("case-" + t["name"], t["prompt"])
    seen = set()
    for case in manifest["cases"]:
        for k in ("prompt", "negative_prompt"):
            s = case.get("params", {}).get(k)
            if isinstance(s, str) and s not in seen:
                seen.add(s)
                c.add("manifest-" + k, s)
    c.add("invalid-utf8", b"a \xff\xfe cat \xc3 \xe2\x82 <|endoftext|> dog \xed\xa0\x80")
    # A1111's syntax (A1111's doctest examples, BREAK, a comma near a chunk's end)
    c.add("a1111-doctest", "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).")
    c.add("a1111-escapes", "\\(literal\\] (unbalanced [x:1.2) \\\\ (a:-.5) ratio 16:9")
    c.add("a1111-break", "a cat BREAK (a dog BREAK b) BREAKs aBREAK")
    c.add("a1111-long", " ".join(["cat"] * 70) + ", " + " ".join(["dog"] * 20))

    # fuzz_png: what the library writes (RGB, a "parameters" text) and the other kinds it reads.
    c = Corpus(args.out, "fuzz_png")
    c.add("as-written", png(64, 64, 2, 0, "a photo of a cat\nSteps: 1, Sampler: DDIM, CFG scale: 7.5, Seed: 1, "
                                          "Size: 64x64, Model: tiny-sd", level=9))
    for color in (0, 2, 4, 6):
        c.add("color%d-filters" % color, png(7, 5, color, -1))
        c.add("color%d-1x1" % color, png(1, 1, color, 0))
    c.add("split-idat", png(9, 6, 6, 4, "x", split_idat=3))
    c.add("utf8-parameters", png(3, 2, 2, 1, "caf\u00e9 \u732b"))

    with open(os.path.join(args.out, "stamp"), "w") as f:
        f.write("seeds from %s\n" % fx)


if __name__ == "__main__":
    main()
