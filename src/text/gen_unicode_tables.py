#!/usr/bin/env python3
"""Generates src/text/unicode_tables.c: the Unicode and HTML data the CLIP tokenizer needs.

Run with the Python whose behaviour the tokenizer must reproduce (SD pipelines were
checked with CPython 3.11, whose unicodedata is Unicode 14.0):

    python3 src/text/gen_unicode_tables.py > src/text/unicode_tables.c

Everything is derived from the running interpreter (unicodedata, str.lower, html),
so the C tables agree with what transformers/ftfy compute under that interpreter.
"""

import html
import html.entities
import sys
import unicodedata

MAX_CP = 0x110000


def cps():
    for c in range(MAX_CP):
        if 0xD800 <= c <= 0xDFFF:
            continue
        yield c


def ranges_of(pred):
    out = []
    start = None
    prev = None
    for c in range(MAX_CP):
        ok = not (0xD800 <= c <= 0xDFFF) and pred(c)
        if ok:
            if start is None:
                start = c
            prev = c
        elif start is not None:
            out.append((start, prev))
            start = None
    if start is not None:
        out.append((start, prev))
    return out


def emit_ranges(name, rs, w):
    w(f"static const sf_uc_range {name}[{len(rs)}] = {{\n")
    line = ""
    for a, b in rs:
        item = f"{{0x{a:X},0x{b:X}}},"
        if len(line) + len(item) > 100:
            w(line + "\n")
            line = ""
        line += item
    if line:
        w(line + "\n")
    w("};\n\n")


def emit_u32_rows(name, rows, width, w):
    w(f"static const uint32_t {name}[{len(rows)}][{width}] = {{\n")
    line = ""
    for r in rows:
        item = "{" + ",".join(f"0x{v:X}" for v in r) + "},"
        if len(line) + len(item) > 100:
            w(line + "\n")
            line = ""
        line += item
    if line:
        w(line + "\n")
    w("};\n\n")


def emit_u32_rows2(name, rows, w):
    w(f"static const uint32_t {name}[{len(rows)}][2] = {{\n")
    line = ""
    for r in rows:
        item = "{" + ",".join(f"0x{v:X}" for v in r) + "},"
        if len(line) + len(item) > 100:
            w(line + "\n")
            line = ""
        line += item
    if line:
        w(line + "\n")
    w("};\n\n")


def expand(spec):
    """Code points of a category given as a list of single code points and (lo, hi) ranges."""
    out = []
    for item in spec:
        if isinstance(item, tuple):
            out.extend(range(item[0], item[1] + 1))
        else:
            out.append(item)
    return out


def c_string(bs):
    out = '"'
    for b in bs:
        if 0x20 <= b < 0x7F and b not in (0x22, 0x5C, 0x3F):
            out += chr(b)
        else:
            out += f"\\{b:03o}"
    return out + '"'


def main():
    parts = []
    w = parts.append
    cat = unicodedata.category

    letter = ranges_of(lambda c: cat(chr(c)).startswith("L"))
    number = ranges_of(lambda c: cat(chr(c)).startswith("N"))
    # `regex`'s \s is the White_Space property; Python's str.isspace() additionally
    # counts U+001C..U+001F (bidi class B/S), which matters for str.strip().
    ws_regex = ranges_of(lambda c: c in WHITE_SPACE)
    ws_py = ranges_of(lambda c: chr(c).isspace())

    # Cased / Case_Ignorable are not exposed by unicodedata; recover them from the
    # Final_Sigma rule that CPython's str.lower() implements with exactly these sets.
    def cased(c):
        return (chr(c) + "\u03a3").lower()[-1] == "\u03c2"

    cased_set = set(c for c in cps() if cased(c))

    def case_ignorable(c):
        if c in cased_set:
            # forward scan: 'A' SIGMA c -> final iff c is skipped (ignorable)
            return ("A\u03a3" + chr(c)).lower()[1] == "\u03c2"
        return ("A" + chr(c) + "\u03a3").lower()[-1] == "\u03c2"

    cased_r = ranges_of(lambda c: c in cased_set)
    ci_r = ranges_of(case_ignorable)

    lower = []
    for c in cps():
        lo = chr(c).lower()
        if lo != chr(c):
            if len(lo) == 1:
                lower.append((c, ord(lo)))
            elif c != 0x130:
                raise SystemExit(f"unexpected multi-code-point lower case of U+{c:04X}")

    # Canonical combining classes, as ranges with one value.
    ccc = []
    for c in cps():
        v = unicodedata.combining(chr(c))
        if v:
            if ccc and ccc[-1][1] == c - 1 and ccc[-1][2] == v:
                ccc[-1][1] = c
            else:
                ccc.append([c, c, v])

    # One level of canonical decomposition (Hangul syllables are algorithmic).
    decomp = []
    compose = []
    for c in cps():
        if 0xAC00 <= c <= 0xD7A3:
            continue
        d = unicodedata.decomposition(chr(c))
        if not d or d.startswith("<"):
            continue
        seq = [int(x, 16) for x in d.split()]
        assert 1 <= len(seq) <= 2
        decomp.append((c, seq[0], seq[1] if len(seq) == 2 else 0))
        # A primary composite is one NFC gives back unchanged.
        if len(seq) == 2 and unicodedata.normalize("NFC", chr(c)) == chr(c):
            compose.append((seq[0], seq[1], c))
    compose.sort()

    # ftfy's HTML entity table (chardata._build_html_entities of ftfy 6.2).
    ents = {}
    for name, ch in html.entities.html5.items():
        if name.endswith(";"):
            ents[name] = ch
            if name == name.lower():
                up = name.upper()
                if html.unescape("&" + up) == "&" + up:
                    ents[up] = ch.upper()
    ent_items = sorted((k.encode(), v.encode()) for k, v in ents.items())

    invalid_charrefs = sorted(html._invalid_charrefs.items())
    invalid_cps = sorted(html._invalid_codepoints)
    inv_cp_r = []
    for c in invalid_cps:
        if inv_cp_r and inv_cp_r[-1][1] == c - 1:
            inv_cp_r[-1][1] = c
        else:
            inv_cp_r.append([c, c])

    # sloppy-windows-1252: Windows-1252 with its 5 holes filled by the Latin-1 character.
    cp1252 = []
    for b in range(0x80, 0xA0):
        try:
            cp1252.append(ord(bytes([b]).decode("cp1252")))
        except UnicodeDecodeError:
            cp1252.append(b)

    w("/* Generated by src/text/gen_unicode_tables.py from Python "
      f"{sys.version.split()[0]} (Unicode {unicodedata.unidata_version}). Do not edit. */\n")
    w('#include "text/unicode_tables.h"\n\n#include <string.h>\n\n')
    w("typedef struct sf_uc_range {\n  uint32_t lo, hi;\n} sf_uc_range;\n\n")
    emit_ranges("uc_letter", letter, w)
    emit_ranges("uc_number", number, w)
    emit_ranges("uc_ws_regex", ws_regex, w)
    emit_ranges("uc_ws_py", ws_py, w)
    emit_ranges("uc_cased", cased_r, w)
    emit_ranges("uc_case_ignorable", ci_r, w)
    emit_u32_rows("uc_lower", lower, 2, w)
    emit_u32_rows("uc_ccc", ccc, 3, w)
    emit_u32_rows("uc_decomp", decomp, 3, w)
    emit_u32_rows("uc_compose", compose, 3, w)
    w(f"static const uint16_t uc_cp1252_80_9f[32] = {{{','.join(f'0x{v:X}' for v in cp1252)}}};\n\n")
    w(f"static const uint32_t html_invalid_charref[{len(invalid_charrefs)}][2] = {{")
    w(",".join(f"{{0x{k:X},0x{ord(v):X}}}" for k, v in invalid_charrefs))
    w("};\n\n")
    emit_ranges("html_invalid_cp", inv_cp_r, w)
    w("typedef struct html_entity_row {\n  const char *name; /* without '&', with ';' */\n"
      "  const char *utf8;\n} html_entity_row;\n\n")
    w(f"static const html_entity_row html_entities[{len(ent_items)}] = {{\n")
    for k, v in ent_items:
        w(f"{{{c_string(k)},{c_string(v)}}},\n")
    w("};\n\n")
    # ftfy.badness character categories (the characters that occur in UTF-8 mojibake).
    masks = {}
    for bit, name in enumerate(MOJIBAKE_ORDER):
        for c in expand(MOJIBAKE[name]):
            masks[c] = masks.get(c, 0) | (1 << bit)
    w("/* ftfy 6.2 badness categories; bit order: " + ", ".join(MOJIBAKE_ORDER) + " */\n")
    emit_u32_rows2("moji_cat", sorted(masks.items()), w)
    # ftfy.fix_character_width: U+3000 and the NFKC forms of U+FF01..U+FFEF.
    width = [(0x3000, 0x20, 0)]
    for c in range(0xFF01, 0xFFF0):
        alt = unicodedata.normalize("NFKC", chr(c))
        if alt != chr(c):
            assert len(alt) <= 2
            width.append((c, ord(alt[0]), ord(alt[1]) if len(alt) == 2 else 0))
    emit_u32_rows("uc_width", width, 3, w)
    w(C_FUNCS)
    sys.stdout.write("".join(parts))


MOJIBAKE_ORDER = ["common", "c1", "bad", "law", "currency", "start_punctuation",
                  "end_punctuation", "numeric", "kaomoji", "upper_accented", "lower_accented",
                  "upper_common", "lower_common", "box"]
MOJIBAKE = {
    "common": [0xA0, 0xAD, 0xB7, 0xB4, 0x2013, 0x2014, 0x2015, 0x2026, 0x2019],
    "c1": [(0x80, 0x9F)],
    "bad": [0xA6, 0xA4, 0xA8, 0xAC, 0xAF, 0xB8, 0x192, 0x2C6, 0x2C7, 0x2D8, 0x2DB, 0x2DC,
            0x2020, 0x2021, 0x2030, 0x2310, 0x25CA, 0xFFFD, 0xAA, 0xBA],
    "law": [0xB6, 0xA7],
    "currency": [0xA2, 0xA3, 0xA5, 0x20A7, 0x20AC],
    "start_punctuation": [0xA1, 0xAB, 0xBF, 0xA9, 0x384, 0x385, 0x2018, 0x201A, 0x201C, 0x201E,
                          0x2022, 0x2039, 0xF8FF],
    "end_punctuation": [0xAE, 0xBB, 0x2DD, 0x201D, 0x203A, 0x2122],
    "numeric": [0xB2, 0xB3, 0xB9, 0xB1, 0xBC, 0xBD, 0xBE, 0xD7, 0xB5, 0xF7, 0x2044, 0x2202,
                0x2206, 0x220F, 0x2211, 0x221A, 0x221E, 0x2229, 0x222B, 0x2248, 0x2260, 0x2261,
                0x2264, 0x2265, 0x2116],
    "kaomoji": [(0xD2, 0xD6), (0xD9, 0xDC), (0xF2, 0xF6), (0xF8, 0xFC), 0x150, 0x14C, 0x16A,
                0x172, 0xB0],
    "upper_accented": [(0xC0, 0xD1), 0xD8, 0xDC, 0xDD, 0x102, 0x100, 0x104, 0x106, 0x10C, 0x10E,
                       0x110, 0x118, 0x11A, 0x112, 0x116, 0x11E, 0x122, 0x130, 0x12A, 0x136,
                       0x139, 0x13D, 0x141, 0x13B, 0x143, 0x147, 0x145, 0x152, 0x158, 0x15A,
                       0x15E, 0x160, 0x162, 0x164, 0x16E, 0x170, 0x178, 0x179, 0x17B, 0x17D,
                       0x490],
    "lower_accented": [0xDF, (0xE0, 0xF1), 0x103, 0x105, 0x101, 0x107, 0x10D, 0x10F, 0x111,
                       0x119, 0x11B, 0x113, 0x117, 0x11F, 0x123, 0x12F, 0x12B, 0x137, 0x13A,
                       0x13E, 0x142, 0x13C, 0x153, 0x155, 0x15B, 0x15F, 0x161, 0x165, 0xFC,
                       0x17A, 0x17C, 0x17E, 0x491, 0xFB01, 0xFB02],
    "upper_common": [0xDE, (0x391, 0x3A9), 0x386, 0x388, 0x389, 0x38A, 0x38C, 0x38E, 0x38F,
                     0x3AA, 0x3AB, (0x401, 0x42F)],
    "lower_common": [(0x3B1, 0x3C9), 0x3AC, 0x3AD, 0x3AE, 0x3AF, 0x3B0, (0x430, 0x45F)],
    "box": [0x2502, 0x250C, 0x2510, 0x2518, 0x251C, 0x2524, 0x252C, 0x253C, (0x2550, 0x256C),
            0x2580, 0x2584, 0x2588, 0x258C, 0x2590, 0x2591, 0x2592, 0x2593],
}

WHITE_SPACE = {
    0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2000, 0x2001, 0x2002,
    0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200A, 0x2028, 0x2029,
    0x202F, 0x205F, 0x3000,
}

C_FUNCS = r"""#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int in_ranges(const sf_uc_range *r, size_t n, uint32_t cp) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (cp < r[mid].lo) {
      hi = mid;
    } else if (cp > r[mid].hi) {
      lo = mid + 1;
    } else {
      return 1;
    }
  }
  return 0;
}

/* Index of the row whose first column is cp, or -1. */
static long find_row(const uint32_t (*rows)[3], size_t n, uint32_t cp) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (rows[mid][0] < cp) {
      lo = mid + 1;
    } else if (rows[mid][0] > cp) {
      hi = mid;
    } else {
      return (long)mid;
    }
  }
  return -1;
}

int sf_uc_is_letter(uint32_t cp) { return in_ranges(uc_letter, COUNT(uc_letter), cp); }
int sf_uc_is_number(uint32_t cp) { return in_ranges(uc_number, COUNT(uc_number), cp); }
int sf_uc_is_regex_space(uint32_t cp) { return in_ranges(uc_ws_regex, COUNT(uc_ws_regex), cp); }
int sf_uc_is_py_space(uint32_t cp) { return in_ranges(uc_ws_py, COUNT(uc_ws_py), cp); }
int sf_uc_is_cased(uint32_t cp) { return in_ranges(uc_cased, COUNT(uc_cased), cp); }
int sf_uc_is_case_ignorable(uint32_t cp) {
  return in_ranges(uc_case_ignorable, COUNT(uc_case_ignorable), cp);
}

uint32_t sf_uc_lower(uint32_t cp) {
  size_t lo = 0, hi = COUNT(uc_lower);
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (uc_lower[mid][0] < cp) {
      lo = mid + 1;
    } else if (uc_lower[mid][0] > cp) {
      hi = mid;
    } else {
      return uc_lower[mid][1];
    }
  }
  return cp;
}

int sf_uc_ccc(uint32_t cp) {
  size_t lo = 0, hi = COUNT(uc_ccc);
  if (cp < 0x300) return 0;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (cp < uc_ccc[mid][0]) {
      hi = mid;
    } else if (cp > uc_ccc[mid][1]) {
      lo = mid + 1;
    } else {
      return (int)uc_ccc[mid][2];
    }
  }
  return 0;
}

int sf_uc_decompose(uint32_t cp, uint32_t out[2]) {
  if (cp < 0xC0) return 0;
  long i = find_row(uc_decomp, COUNT(uc_decomp), cp);
  if (i < 0) return 0;
  out[0] = uc_decomp[i][1];
  out[1] = uc_decomp[i][2];
  return out[1] ? 2 : 1;
}

uint32_t sf_uc_compose(uint32_t a, uint32_t b) {
  size_t lo = 0, hi = COUNT(uc_compose);
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const uint32_t *r = uc_compose[mid];
    if (r[0] < a || (r[0] == a && r[1] < b)) {
      lo = mid + 1;
    } else if (r[0] > a || r[1] > b) {
      hi = mid;
    } else {
      return r[2];
    }
  }
  return 0;
}

uint32_t sf_uc_cp1252(uint8_t byte) {
  if (byte >= 0x80 && byte < 0xA0) return uc_cp1252_80_9f[byte - 0x80];
  return byte;
}

int sf_uc_cp1252_byte(uint32_t cp) {
  if (cp < 0x80 || (cp >= 0xA0 && cp < 0x100)) return (int)cp;
  for (int i = 0; i < 32; i++) {
    if (uc_cp1252_80_9f[i] == cp) return 0x80 + i;
  }
  return -1;
}

const char *sf_html_entity(const char *name, size_t len) {
  size_t lo = 0, hi = COUNT(html_entities);
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const char *k = html_entities[mid].name;
    size_t klen = strlen(k);
    int c = memcmp(k, name, klen < len ? klen : len);
    if (c == 0) c = (klen > len) - (klen < len);
    if (c < 0) {
      lo = mid + 1;
    } else if (c > 0) {
      hi = mid;
    } else {
      return html_entities[mid].utf8;
    }
  }
  return NULL;
}

unsigned sf_uc_mojibake_class(uint32_t cp) {
  size_t lo = 0, hi = COUNT(moji_cat);
  if (cp < 0x80) return 0;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (moji_cat[mid][0] < cp) {
      lo = mid + 1;
    } else if (moji_cat[mid][0] > cp) {
      hi = mid;
    } else {
      return moji_cat[mid][1];
    }
  }
  return 0;
}

int sf_uc_width_fix(uint32_t cp, uint32_t out[2]) {
  if (cp == 0x3000 || (cp >= 0xFF01 && cp <= 0xFFEF)) {
    long i = find_row(uc_width, COUNT(uc_width), cp);
    if (i >= 0) {
      out[0] = uc_width[i][1];
      out[1] = uc_width[i][2];
      return out[1] ? 2 : 1;
    }
  }
  return 0;
}

int64_t sf_html_charref(uint64_t num) {
  for (size_t i = 0; i < COUNT(html_invalid_charref); i++) {
    if (html_invalid_charref[i][0] == num) return html_invalid_charref[i][1];
  }
  if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) return 0xFFFD;
  if (in_ranges(html_invalid_cp, COUNT(html_invalid_cp), (uint32_t)num)) return -1;
  return (int64_t)num;
}
"""

if __name__ == "__main__":
    main()
