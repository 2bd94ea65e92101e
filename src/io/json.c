/* Strict RFC 8259 reader. Nodes and decoded strings are bump-allocated from a few large
 * chunks owned by the document; containers are collected on a scratch stack and copied
 * into the arena once their size is known, so a document costs a handful of mallocs. */
#define _GNU_SOURCE /* strtod_l / newlocale: number parsing must not follow the host's locale */
#include "io/json.h"

#include <errno.h>
#include <locale.h>
#ifdef __APPLE__
#include <xlocale.h> /* strtod_l, newlocale */
#endif
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/vfs.h"

#define SF_JSON_MAX_DEPTH 64
#define SF_JSON_MIN_CHUNK ((size_t)64 * 1024)

typedef struct arena_chunk {
  struct arena_chunk *next;
  size_t cap, used;
  max_align_t data[];
} arena_chunk;

struct sf_json_doc {
  arena_chunk *chunks; /* newest first */
  size_t next_chunk;
  sf_json root;
};

typedef struct key_slot {
  const char *key;
  size_t len;
  size_t offset; /* byte offset of the key's opening quote, for messages */
} key_slot;

typedef struct parser {
  const unsigned char *start, *p, *end;
  sf_json_doc *doc;
  sf_diag *d;
  int depth;
  sf_json *vals;
  size_t n_vals, cap_vals;
  key_slot *keys;
  size_t n_keys, cap_keys;
  size_t *hash;
  size_t cap_hash;
  locale_t c_locale;
  unsigned flags;
} parser;

/* ---- arena ------------------------------------------------------------------------------ */

static void *arena_alloc(sf_json_doc *doc, size_t size, size_t align) {
  arena_chunk *c = doc->chunks;
  if (c != NULL) {
    size_t at = (c->used + align - 1) & ~(align - 1);
    if (at <= c->cap && size <= c->cap - at) {
      c->used = at + size;
      return (char *)c->data + at;
    }
  }
  size_t cap = doc->next_chunk;
  if (cap < size) cap = size;
  if (cap > SIZE_MAX - sizeof(arena_chunk)) return NULL;
  c = malloc(sizeof(arena_chunk) + cap);
  if (c == NULL) return NULL;
  c->cap = cap;
  c->used = size;
  c->next = doc->chunks;
  doc->chunks = c;
  if (doc->next_chunk < ((size_t)1 << 30)) doc->next_chunk *= 2;
  return c->data;
}

/* Gives back the tail of the most recent allocation (strings are sized for the raw text
 * and shrink once decoded). */
static void arena_shrink_last(sf_json_doc *doc, const void *block, size_t used) {
  arena_chunk *c = doc->chunks;
  c->used = (size_t)((const char *)block - (const char *)c->data) + used;
}

/* ---- errors ----------------------------------------------------------------------------- */

/* The line and column of a byte (1-based), for messages. */
static void line_col(const parser *P, const unsigned char *at, size_t *line, size_t *col) {
  *line = 1;
  *col = 1;
  for (const unsigned char *q = P->start; q < at; q++) {
    if (*q == '\n') {
      (*line)++;
      *col = 1;
    } else {
      (*col)++;
    }
  }
}

static sf_json *fail_at(parser *P, const unsigned char *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static sf_json *fail_at(parser *P, const unsigned char *at, const char *fmt, ...) {
  char what[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  size_t line, col;
  line_col(P, at, &line, &col);
  sf_diag_set(P->d, SF_ERR_BAD_MODEL, "invalid JSON: %s at byte %zu (line %zu, column %zu)", what,
              (size_t)(at - P->start), line, col);
  return NULL;
}

/* Input that ends inside a string, array or object: where it was cut, and where the open one
 * began. */
static void fail_cut(parser *P, const unsigned char *open, const char *what) {
  size_t line, col;
  line_col(P, open, &line, &col);
  fail_at(P, P->end, "unterminated %s (the input is cut off inside the %s opened at line %zu, column %zu)", what,
          what, line, col);
}

static int fail_oom(parser *P) {
  sf_diag_set(P->d, SF_ERR_OUT_OF_MEMORY, "out of memory while parsing JSON (%zu bytes)",
              (size_t)(P->end - P->start));
  return 0;
}

/* Copies a key into buf for a message, replacing control bytes and cutting long keys. */
static const char *printable(char *buf, size_t cap, const char *s, size_t len) {
  size_t n = 0;
  for (size_t i = 0; i < len && n + 4 < cap; i++) {
    unsigned char c = (unsigned char)s[i];
    buf[n++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
  }
  if (n + 4 >= cap) {
    memcpy(buf + n, "...", 3);
    n += 3;
  }
  buf[n] = '\0';
  return buf;
}

/* ---- lexical helpers -------------------------------------------------------------------- */

static void skip_ws(parser *P) {
  while (P->p < P->end) {
    unsigned char c = *P->p;
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
    P->p++;
  }
}

/* Length of the valid UTF-8 sequence at s (s < lim, *s >= 0x80), or 0 with *why set. */
static size_t utf8_seq(const unsigned char *s, const unsigned char *lim, const char **why) {
  unsigned char c = s[0];
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
  if (c < 0xC0) {
    *why = "unexpected continuation byte";
    return 0;
  } else if (c < 0xC2) {
    *why = "overlong encoding";
    return 0;
  } else if (c < 0xE0) {
    n = 2;
  } else if (c < 0xF0) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c < 0xF5) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    *why = "code point above U+10FFFF";
    return 0;
  }
  if ((size_t)(lim - s) < 2 || (s[1] & 0xC0) != 0x80) {
    *why = "truncated multi-byte sequence";
    return 0;
  }
  if (s[1] < lo) {
    *why = "overlong encoding";
    return 0;
  }
  if (s[1] > hi) {
    *why = c == 0xED ? "UTF-16 surrogate encoded in UTF-8" : "code point above U+10FFFF";
    return 0;
  }
  for (size_t i = 2; i < n; i++) {
    if ((size_t)(lim - s) <= i || (s[i] & 0xC0) != 0x80) {
      *why = "truncated multi-byte sequence";
      return 0;
    }
  }
  return n;
}

static int hex4(const unsigned char *s, const unsigned char *lim, unsigned *out) {
  if (lim - s < 4) return 0;
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    unsigned c = s[i], d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else return 0;
    v = v * 16 + d;
  }
  *out = v;
  return 1;
}

static size_t put_utf8(char *o, unsigned cp) {
  if (cp < 0x80) {
    o[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (char)(0xC0 | (cp >> 6));
    o[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (char)(0xE0 | (cp >> 12));
    o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (char)(0xF0 | (cp >> 18));
  o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  o[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* P->p is at the opening quote. Decoded text goes to the arena (NUL-terminated). */
static int parse_string(parser *P, const char **out, size_t *out_len) {
  const unsigned char *open = P->p;
  const unsigned char *q = open + 1;
  int plain = 1;
  while (q < P->end && *q != '"') {
    if (*q == '\\') {
      plain = 0;
      if (P->end - q < 2) break;
      q++;
    } else if (*q < 0x20 || *q >= 0x80) {
      plain = 0;
    }
    q++;
  }
  if (q >= P->end || *q != '"') {
    fail_cut(P, open, "string");
    return 0;
  }
  const unsigned char *close = q;
  size_t raw = (size_t)(close - open - 1);
  char *buf = arena_alloc(P->doc, raw + 1, 1);
  if (buf == NULL) return fail_oom(P);
  if (plain) {
    memcpy(buf, open + 1, raw);
    buf[raw] = '\0';
    *out = buf;
    *out_len = raw;
    P->p = close + 1;
    return 1;
  }
  size_t n = 0;
  for (const unsigned char *s = open + 1; s < close;) {
    unsigned char c = *s;
    if (c == '\\') {
      unsigned char e = s[1]; /* s + 1 < close: pass 1 never lets a backslash end the string */
      char simple = 0;
      switch (e) {
        case '"': simple = '"'; break;
        case '\\': simple = '\\'; break;
        case '/': simple = '/'; break;
        case 'b': simple = '\b'; break;
        case 'f': simple = '\f'; break;
        case 'n': simple = '\n'; break;
        case 'r': simple = '\r'; break;
        case 't': simple = '\t'; break;
        case 'u': break;
        default:
          if (e >= 0x20 && e < 0x7f) fail_at(P, s, "invalid escape '\\%c' in string", e);
          else fail_at(P, s, "invalid escape (byte 0x%02x after backslash) in string", e);
          return 0;
      }
      if (simple) {
        buf[n++] = simple;
        s += 2;
        continue;
      }
      unsigned cp;
      if (!hex4(s + 2, close, &cp)) {
        fail_at(P, s, "invalid \\u escape (needs 4 hex digits)");
        return 0;
      }
      if (cp >= 0xDC00 && cp <= 0xDFFF) {
        fail_at(P, s, "lone low surrogate \\u%04X in string", cp);
        return 0;
      }
      if (cp >= 0xD800 && cp <= 0xDBFF) {
        unsigned lo;
        if (close - (s + 6) < 6 || s[6] != '\\' || s[7] != 'u' || !hex4(s + 8, close, &lo) ||
            lo < 0xDC00 || lo > 0xDFFF) {
          fail_at(P, s, "lone high surrogate \\u%04X in string (not followed by a low surrogate)",
                  cp);
          return 0;
        }
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        s += 6;
      }
      n += put_utf8(buf + n, cp);
      s += 6;
    } else if (c < 0x20) {
      fail_at(P, s, "unescaped control character 0x%02x in string", c);
      return 0;
    } else if (c < 0x80) {
      buf[n++] = (char)c;
      s++;
    } else {
      const char *why = NULL;
      size_t len = utf8_seq(s, close, &why);
      if (len == 0) {
        fail_at(P, s, "invalid UTF-8 in string (%s, byte 0x%02x)", why, c);
        return 0;
      }
      memcpy(buf + n, s, len);
      n += len;
      s += len;
    }
  }
  buf[n] = '\0';
  arena_shrink_last(P->doc, buf, n + 1);
  *out = buf;
  *out_len = n;
  P->p = close + 1;
  return 1;
}

static const double pow10_exact[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                       1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                       1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static int parse_number(parser *P, sf_json *out) {
  const unsigned char *s = P->p, *q = s;
  int neg = 0;
  if (*q == '-') {
    neg = 1;
    q++;
  }
  if (q >= P->end || *q < '0' || *q > '9') {
    fail_at(P, s, "invalid number (expected a digit after '-')");
    return 0;
  }
  uint64_t mant = 0;
  int digits = 0; /* significant digits accumulated in mant */
  int exp10 = 0;
  int exact = 1; /* mant holds every significant digit */
  if (*q == '0') {
    q++;
    if (q < P->end && *q >= '0' && *q <= '9') {
      fail_at(P, s, "invalid number (leading zero)");
      return 0;
    }
  } else {
    while (q < P->end && *q >= '0' && *q <= '9') {
      if (digits < 19) {
        mant = mant * 10 + (uint64_t)(*q - '0');
        if (mant) digits++;
      } else {
        exact = 0;
      }
      q++;
    }
  }
  if (q < P->end && *q == '.') {
    q++;
    if (q >= P->end || *q < '0' || *q > '9') {
      fail_at(P, q, "invalid number (expected a digit after '.')");
      return 0;
    }
    while (q < P->end && *q >= '0' && *q <= '9') {
      if (digits < 19) {
        mant = mant * 10 + (uint64_t)(*q - '0');
        if (mant) digits++;
        exp10--;
      } else if (*q != '0') {
        exact = 0;
      }
      q++;
    }
  }
  long long e = 0;
  if (q < P->end && (*q == 'e' || *q == 'E')) {
    q++;
    int eneg = 0;
    if (q < P->end && (*q == '+' || *q == '-')) {
      eneg = *q == '-';
      q++;
    }
    if (q >= P->end || *q < '0' || *q > '9') {
      fail_at(P, q, "invalid number (expected a digit in the exponent)");
      return 0;
    }
    while (q < P->end && *q >= '0' && *q <= '9') {
      if (e < 100000) e = e * 10 + (*q - '0');
      q++;
    }
    if (eneg) e = -e;
  }
  /* The literal is copied so the document does not borrow the caller's text. */
  size_t tl = (size_t)(q - s);
  char *text = arena_alloc(P->doc, tl + 1, 1);
  if (text == NULL) return fail_oom(P);
  memcpy(text, s, tl);
  text[tl] = '\0';
  out->type = SF_JSON_NUMBER;
  out->len = 0;
  out->u.num.text = text;
  out->u.num.text_len = tl;
  P->p = q;
  /* Clinger's fast path: both operands exact doubles, so one IEEE operation rounds once. */
  long long total = (long long)exp10 + e;
  if (exact && mant <= ((uint64_t)1 << 53) && total >= -22 && total <= 22) {
    double v = (double)mant;
    v = total < 0 ? v / pow10_exact[-total] : v * pow10_exact[total];
    out->u.num.value = neg ? -v : v;
    return 1;
  }
  if (mant == 0 && exact) {
    out->u.num.value = neg ? -0.0 : 0.0;
    return 1;
  }
  if (P->c_locale == (locale_t)0) {
    P->c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (P->c_locale == (locale_t)0) return fail_oom(P);
  }
  errno = 0;
  double v = strtod_l(text, NULL, P->c_locale);
  if (errno == ERANGE && isinf(v)) {
    fail_at(P, s, "number out of the range of a double");
    return 0;
  }
  out->u.num.value = v;
  return 1;
}

/* ---- containers ------------------------------------------------------------------------- */

static int push_val(parser *P, const sf_json *v) {
  if (P->n_vals == P->cap_vals) {
    size_t cap = P->cap_vals ? P->cap_vals * 2 : 256;
    sf_json *nv = realloc(P->vals, cap * sizeof *nv);
    if (nv == NULL) return fail_oom(P);
    P->vals = nv;
    P->cap_vals = cap;
  }
  P->vals[P->n_vals++] = *v;
  return 1;
}

static int push_key(parser *P, const char *key, size_t len, size_t offset) {
  if (P->n_keys == P->cap_keys) {
    size_t cap = P->cap_keys ? P->cap_keys * 2 : 256;
    key_slot *nk = realloc(P->keys, cap * sizeof *nk);
    if (nk == NULL) return fail_oom(P);
    P->keys = nk;
    P->cap_keys = cap;
  }
  P->keys[P->n_keys].key = key;
  P->keys[P->n_keys].len = len;
  P->keys[P->n_keys].offset = offset;
  P->n_keys++;
  return 1;
}

static uint64_t hash_bytes(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 1099511628211ull;
  }
  return h;
}

static int same_key(const key_slot *a, const key_slot *b) {
  return a->len == b->len && memcmp(a->key, b->key, a->len) == 0;
}

static int report_duplicate(parser *P, const key_slot *k) {
  char name[96];
  fail_at(P, P->start + k->offset, "duplicate key \"%s\" in object",
          printable(name, sizeof name, k->key, k->len));
  return 0;
}

/* The second occurrence (in document order) of a repeated key is reported. */
static int check_duplicates(parser *P, const key_slot *k, size_t n) {
  if (n <= 12) {
    for (size_t i = 1; i < n; i++)
      for (size_t j = 0; j < i; j++)
        if (same_key(&k[i], &k[j])) return report_duplicate(P, &k[i]);
    return 1;
  }
  size_t cap = 16;
  while (cap < 2 * n) cap *= 2;
  if (cap > P->cap_hash) {
    size_t *nh = realloc(P->hash, cap * sizeof *nh);
    if (nh == NULL) return fail_oom(P);
    P->hash = nh;
    P->cap_hash = cap;
  }
  memset(P->hash, 0, cap * sizeof *P->hash);
  for (size_t i = 0; i < n; i++) {
    size_t slot = (size_t)hash_bytes(k[i].key, k[i].len) & (cap - 1);
    while (P->hash[slot] != 0) {
      if (same_key(&k[P->hash[slot] - 1], &k[i])) return report_duplicate(P, &k[i]);
      slot = (slot + 1) & (cap - 1);
    }
    P->hash[slot] = i + 1;
  }
  return 1;
}

static int parse_value(parser *P, sf_json *out);

static int parse_array(parser *P, sf_json *out) {
  const unsigned char *open = P->p;
  if (++P->depth > SF_JSON_MAX_DEPTH) {
    fail_at(P, open, "nesting deeper than %d levels", SF_JSON_MAX_DEPTH);
    return 0;
  }
  P->p++;
  size_t base = P->n_vals;
  skip_ws(P);
  if (P->p < P->end && *P->p == ']') {
    P->p++;
  } else {
    for (;;) {
      sf_json v;
      if (!parse_value(P, &v) || !push_val(P, &v)) return 0;
      skip_ws(P);
      if (P->p >= P->end) {
        fail_cut(P, open, "array");
        return 0;
      }
      if (*P->p == ']') {
        P->p++;
        break;
      }
      if (*P->p != ',') {
        fail_at(P, P->p, "expected ',' or ']' in array");
        return 0;
      }
      P->p++;
      skip_ws(P);
      if (P->p < P->end && *P->p == ']') {
        fail_at(P, P->p, "trailing comma in array");
        return 0;
      }
    }
  }
  size_t n = P->n_vals - base;
  out->type = SF_JSON_ARRAY;
  out->len = n;
  out->u.items = NULL;
  if (n) {
    sf_json *items = arena_alloc(P->doc, n * sizeof *items, _Alignof(sf_json));
    if (items == NULL) return fail_oom(P);
    memcpy(items, P->vals + base, n * sizeof *items);
    out->u.items = items;
  }
  P->n_vals = base;
  P->depth--;
  return 1;
}

static int parse_object(parser *P, sf_json *out) {
  const unsigned char *open = P->p;
  if (++P->depth > SF_JSON_MAX_DEPTH) {
    fail_at(P, open, "nesting deeper than %d levels", SF_JSON_MAX_DEPTH);
    return 0;
  }
  P->p++;
  size_t vbase = P->n_vals, kbase = P->n_keys;
  skip_ws(P);
  if (P->p < P->end && *P->p == '}') {
    P->p++;
  } else {
    for (;;) {
      if (P->p >= P->end) {
        fail_cut(P, open, "object");
        return 0;
      }
      if (*P->p != '"') {
        fail_at(P, P->p, "expected a string key in object");
        return 0;
      }
      size_t key_off = (size_t)(P->p - P->start);
      const char *key;
      size_t key_len;
      if (!parse_string(P, &key, &key_len)) return 0;
      skip_ws(P);
      if (P->p >= P->end || *P->p != ':') {
        fail_at(P, P->p, "expected ':' after object key");
        return 0;
      }
      P->p++;
      sf_json v;
      if (!parse_value(P, &v) || !push_val(P, &v) || !push_key(P, key, key_len, key_off))
        return 0;
      skip_ws(P);
      if (P->p >= P->end) {
        fail_cut(P, open, "object");
        return 0;
      }
      if (*P->p == '}') {
        P->p++;
        break;
      }
      if (*P->p != ',') {
        fail_at(P, P->p, "expected ',' or '}' in object");
        return 0;
      }
      P->p++;
      skip_ws(P);
      if (P->p < P->end && *P->p == '}') {
        fail_at(P, P->p, "trailing comma in object");
        return 0;
      }
    }
  }
  size_t n = P->n_vals - vbase;
  if (n > 0 && !check_duplicates(P, P->keys + kbase, n)) return 0;
  out->type = SF_JSON_OBJECT;
  out->len = n;
  out->u.obj.keys = NULL;
  out->u.obj.key_lens = NULL;
  out->u.obj.values = NULL;
  if (n) {
    sf_json *values = arena_alloc(P->doc, n * sizeof *values, _Alignof(sf_json));
    const char **keys = arena_alloc(P->doc, n * sizeof *keys, _Alignof(const char *));
    size_t *lens = arena_alloc(P->doc, n * sizeof *lens, _Alignof(size_t));
    if (values == NULL || keys == NULL || lens == NULL) return fail_oom(P);
    memcpy(values, P->vals + vbase, n * sizeof *values);
    for (size_t i = 0; i < n; i++) {
      keys[i] = P->keys[kbase + i].key;
      lens[i] = P->keys[kbase + i].len;
    }
    out->u.obj.keys = keys;
    out->u.obj.key_lens = lens;
    out->u.obj.values = values;
  }
  P->n_vals = vbase;
  P->n_keys = kbase;
  P->depth--;
  return 1;
}

static int match_literal(parser *P, const char *lit, size_t n) {
  if ((size_t)(P->end - P->p) < n || memcmp(P->p, lit, n) != 0) {
    fail_at(P, P->p, "invalid literal (expected '%s')", lit);
    return 0;
  }
  P->p += n;
  return 1;
}

/* Python's json module writes these for float('nan') / float('inf') (e.g. a scheduler's
 * lambda_min_clipped = -inf): accepted only when the caller opts in. */
static int parse_nonfinite(parser *P, sf_json *out) {
  static const struct {
    const char *lit;
    size_t len;
  } lits[3] = {{"NaN", 3}, {"Infinity", 8}, {"-Infinity", 9}};
  for (int i = 0; i < 3; i++) {
    if ((size_t)(P->end - P->p) >= lits[i].len && memcmp(P->p, lits[i].lit, lits[i].len) == 0) {
      out->type = SF_JSON_NUMBER;
      out->u.num.value = i == 0 ? NAN : i == 1 ? INFINITY : -INFINITY;
      out->u.num.text = lits[i].lit;
      out->u.num.text_len = lits[i].len;
      P->p += lits[i].len;
      return 1;
    }
  }
  return 0;
}

static int parse_value(parser *P, sf_json *out) {
  skip_ws(P);
  if (P->p >= P->end) {
    fail_at(P, P->p, "unexpected end of input (expected a value)");
    return 0;
  }
  memset(out, 0, sizeof *out);
  unsigned char c = *P->p;
  if ((P->flags & SF_JSON_ALLOW_NONFINITE) && (c == 'N' || c == 'I' || c == '-') &&
      parse_nonfinite(P, out))
    return 1;
  switch (c) {
    case '{': return parse_object(P, out);
    case '[': return parse_array(P, out);
    case '"': {
      const char *s;
      size_t n;
      if (!parse_string(P, &s, &n)) return 0;
      out->type = SF_JSON_STRING;
      out->len = n;
      out->u.str = s;
      return 1;
    }
    case 't':
      out->type = SF_JSON_BOOL;
      out->u.boolean = 1;
      return match_literal(P, "true", 4);
    case 'f':
      out->type = SF_JSON_BOOL;
      out->u.boolean = 0;
      return match_literal(P, "false", 5);
    case 'n':
      out->type = SF_JSON_NULL;
      return match_literal(P, "null", 4);
    default:
      if (c == '-' || (c >= '0' && c <= '9')) return parse_number(P, out);
      if (c >= 0x21 && c < 0x7f) fail_at(P, P->p, "unexpected character '%c'", c);
      else fail_at(P, P->p, "unexpected byte 0x%02x", c);
      return 0;
  }
}

/* ---- public ----------------------------------------------------------------------------- */

sf_json_doc *sf_json_parse(const char *text, size_t len, sf_diag *d) {
  return sf_json_parse_ex(text, len, 0, d);
}

sf_json_doc *sf_json_parse_ex(const char *text, size_t len, unsigned flags, sf_diag *d) {
  sf_json_doc *doc = calloc(1, sizeof *doc);
  if (doc == NULL) {
    sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "out of memory while parsing JSON");
    return NULL;
  }
  /* Decoded strings never exceed the input and nodes are a few times the input: sizing the
   * first chunk from the input keeps a large document to two or three chunks. */
  size_t first = len < ((size_t)1 << 28) ? len + len / 2 : ((size_t)1 << 28);
  doc->next_chunk = first < SF_JSON_MIN_CHUNK ? SF_JSON_MIN_CHUNK : first;
  parser P;
  memset(&P, 0, sizeof P);
  P.start = P.p = (const unsigned char *)(text ? text : "");
  P.end = P.start + (text ? len : 0);
  P.doc = doc;
  P.d = d;
  P.flags = flags;
  int ok = 1;
  /* RFC 8259 section 8.1 lets a parser ignore a byte order mark. */
  if (P.end - P.p >= 3 && P.p[0] == 0xEF && P.p[1] == 0xBB && P.p[2] == 0xBF) P.p += 3;
  skip_ws(&P);
  if (P.p >= P.end) {
    fail_at(&P, P.p, "empty input (no JSON value)");
    ok = 0;
  }
  if (ok) ok = parse_value(&P, &doc->root);
  if (ok) {
    skip_ws(&P);
    if (P.p < P.end) {
      fail_at(&P, P.p, "trailing characters after the JSON value");
      ok = 0;
    }
  }
  free(P.vals);
  free(P.keys);
  free(P.hash);
  if (P.c_locale != (locale_t)0) freelocale(P.c_locale);
  if (!ok) {
    sf_json_free(doc);
    return NULL;
  }
  return doc;
}

sf_json_doc *sf_json_parse_file_as(const char *path, const char *display_name, size_t max_bytes,
                                   sf_diag *d) {
  return sf_json_parse_file_ex(path, display_name, max_bytes, 0, d);
}

sf_json_doc *sf_json_parse_file_ex(const char *path, const char *display_name, size_t max_bytes,
                                   unsigned flags, sf_diag *d) {
  return sf_json_parse_vfs(sf_vfs_os(), path, display_name, max_bytes, flags, d);
}

sf_json_doc *sf_json_parse_vfs(const sf_vfs *fs, const char *path, const char *display_name, size_t max_bytes,
                               unsigned flags, sf_diag *d) {
  char *label_path = NULL; /* a memory file named by its path */
  if (display_name == NULL && sf_vfs_is_memory(fs)) {
    label_path = malloc(strlen(sf_vfs_label(fs)) + strlen(path) + 1);
    if (label_path == NULL) {
      sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
      return NULL;
    }
    strcpy(label_path, sf_vfs_label(fs));
    strcat(label_path, path);
    display_name = label_path;
  }
  const char *shown = display_name ? display_name : path;
  sf_json_doc *doc = NULL;
  char *buf = NULL;
  int open_err = 0;
  uint64_t file_size = 0;
  sf_vfs_file *f = sf_vfs_open(fs, path, &open_err);
  if (f == NULL) {
    sf_diag_set(d, open_err == ENOMEM ? SF_ERR_OUT_OF_MEMORY : SF_ERR_IO, "%s: cannot open: %s", shown,
                strerror(open_err));
    goto done;
  }
  if (!sf_vfs_file_size(f, &file_size)) {
    sf_diag_set(d, SF_ERR_IO, "%s: not a regular file", shown);
    goto done;
  }
  if (file_size > (unsigned long long)max_bytes) {
    sf_diag_set(d, SF_ERR_IO, "%s: file is %lld bytes, over the %zu-byte limit for a JSON file",
                shown, (long long)file_size, max_bytes);
    goto done;
  }
  size_t size = (size_t)file_size;
  buf = malloc(size ? size : 1);
  if (buf == NULL) {
    sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "%s: out of memory reading %zu bytes", shown, size);
    goto done;
  }
  size_t got = sf_vfs_read(f, buf, size);
  int err = sf_vfs_error(f);
  sf_vfs_close(f);
  f = NULL;
  if (got != size || err) {
    sf_diag_set(d, SF_ERR_IO, "%s: read error", shown);
    goto done;
  }
  doc = sf_json_parse_ex(buf, size, flags, d);
  if (doc == NULL) sf_diag_prefix(d, "%s: ", shown);
done:
  sf_vfs_close(f);
  free(buf);
  free(label_path);
  return doc;
}

sf_json_doc *sf_json_parse_file(const char *path, size_t max_bytes, sf_diag *d) {
  return sf_json_parse_file_as(path, path, max_bytes, d);
}

void sf_json_free(sf_json_doc *doc) {
  if (doc == NULL) return;
  arena_chunk *c = doc->chunks;
  while (c != NULL) {
    arena_chunk *next = c->next;
    free(c);
    c = next;
  }
  free(doc);
}

const sf_json *sf_json_root(const sf_json_doc *doc) { return doc ? &doc->root : NULL; }

const sf_json *sf_json_get_n(const sf_json *obj, const char *key, size_t key_len) {
  if (obj == NULL || obj->type != SF_JSON_OBJECT || key == NULL) return NULL;
  for (size_t i = 0; i < obj->len; i++) {
    if (obj->u.obj.key_lens[i] == key_len && memcmp(obj->u.obj.keys[i], key, key_len) == 0)
      return &obj->u.obj.values[i];
  }
  return NULL;
}

const sf_json *sf_json_get(const sf_json *obj, const char *key) {
  if (key == NULL) return NULL;
  return sf_json_get_n(obj, key, strlen(key));
}

const sf_json *sf_json_at(const sf_json *arr, size_t index) {
  if (arr == NULL || arr->type != SF_JSON_ARRAY || index >= arr->len) return NULL;
  return &arr->u.items[index];
}

/* Exact integer value of a number literal as sign + magnitude; 0 if it is not an integer
 * or the magnitude exceeds 64 bits. */
static int literal_integer(const sf_json *num, int *neg, uint64_t *mag) {
  if (num == NULL || num->type != SF_JSON_NUMBER || !isfinite(num->u.num.value)) return 0;
  const char *s = num->u.num.text, *end = s + num->u.num.text_len;
  *neg = 0;
  if (s < end && *s == '-') {
    *neg = 1;
    s++;
  }
  /* Significant digits (integer and fraction parts together) and the power of ten that
   * scales them; leading zeros are dropped and trailing zeros folded into the exponent. */
  char dig[64];
  int nd = 0;
  long long scale = 0;
  int in_frac = 0;
  for (; s < end && *s != 'e' && *s != 'E'; s++) {
    if (*s == '.') {
      in_frac = 1;
      continue;
    }
    if (in_frac) scale--;
    if (nd == 0 && *s == '0') continue;
    if (nd < (int)sizeof dig) dig[nd++] = *s;
    else {
      scale++; /* this digit is dropped; only harmless if it (and the rest) are zeros */
      if (*s != '0') return 0;
    }
  }
  if (s < end) {
    s++;
    int eneg = 0;
    if (*s == '+' || *s == '-') {
      eneg = *s == '-';
      s++;
    }
    long long e = 0;
    for (; s < end; s++)
      if (e < 100000) e = e * 10 + (*s - '0');
    scale += eneg ? -e : e;
  }
  while (nd > 0 && dig[nd - 1] == '0') {
    nd--;
    scale++;
  }
  if (nd == 0) {
    *mag = 0;
    return 1;
  }
  if (scale < 0) return 0;
  if (nd + scale > 20) return 0;
  uint64_t v = 0;
  for (int i = 0; i < nd + (int)scale; i++) {
    unsigned dd = i < nd ? (unsigned)(dig[i] - '0') : 0;
    if (v > (UINT64_MAX - dd) / 10) return 0;
    v = v * 10 + dd;
  }
  *mag = v;
  return 1;
}

int sf_json_as_i64(const sf_json *num, int64_t *out) {
  int neg;
  uint64_t mag;
  if (!literal_integer(num, &neg, &mag)) return 0;
  if (neg) {
    if (mag > (uint64_t)INT64_MAX + 1) return 0;
    *out = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
  } else {
    if (mag > (uint64_t)INT64_MAX) return 0;
    *out = (int64_t)mag;
  }
  return 1;
}

int sf_json_as_u64(const sf_json *num, uint64_t *out) {
  int neg;
  uint64_t mag;
  if (!literal_integer(num, &neg, &mag)) return 0;
  if (neg && mag != 0) return 0;
  *out = mag;
  return 1;
}

int sf_json_as_double(const sf_json *num, double *out) {
  if (num == NULL || num->type != SF_JSON_NUMBER) return 0;
  *out = num->u.num.value;
  return 1;
}

const char *sf_json_as_string(const sf_json *v) {
  return v != NULL && v->type == SF_JSON_STRING ? v->u.str : NULL;
}

int sf_json_as_bool(const sf_json *v) {
  if (v == NULL || v->type != SF_JSON_BOOL) return -1;
  return v->u.boolean ? 1 : 0;
}

int sf_json_is_null(const sf_json *v) { return v == NULL || v->type == SF_JSON_NULL; }
