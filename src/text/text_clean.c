/* ftfy.fix_text + CLIP whitespace_clean/lower on code point arrays.
 *
 * ftfy fixes implemented, in ftfy's order and with its fixed-point loop per line:
 *   unescape_html ("auto": disabled from the first line containing '<' on), fix_encoding
 *   (see fix_encoding_step for the subset), fix_c1_controls, fix_latin_ligatures,
 *   fix_character_width, uncurl_quotes, fix_line_breaks, fix_surrogates (nothing to do:
 *   decoded UTF-8 has no surrogates), remove_terminal_escapes, remove_control_chars, NFC. */
#include "text/text_clean.h"

#include <stdlib.h>
#include <string.h>

#include "text/unicode_tables.h"

void sf_cpbuf_free(sf_cpbuf *b) {
  free(b->v);
  b->v = NULL;
  b->n = b->cap = 0;
}

sf_status sf_cpbuf_reserve(sf_cpbuf *b, size_t extra) {
  if (extra > ((size_t)-1) / sizeof(uint32_t) - b->n) return SF_ERR_OUT_OF_MEMORY;
  if (b->n + extra <= b->cap) return SF_OK;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < b->n + extra) cap = cap > ((size_t)-1) / 8 ? b->n + extra : cap * 2;
  uint32_t *v = realloc(b->v, cap * sizeof(uint32_t));
  if (v == NULL) return SF_ERR_OUT_OF_MEMORY;
  b->v = v;
  b->cap = cap;
  return SF_OK;
}

static sf_status push(sf_cpbuf *b, uint32_t cp) {
  if (b->n == b->cap) {
    sf_status st = sf_cpbuf_reserve(b, 1);
    if (st != SF_OK) return st;
  }
  b->v[b->n++] = cp;
  return SF_OK;
}

static sf_status push_n(sf_cpbuf *b, const uint32_t *cps, size_t n) {
  sf_status st = sf_cpbuf_reserve(b, n);
  if (st != SF_OK) return st;
  if (n) memcpy(b->v + b->n, cps, n * sizeof(uint32_t));
  b->n += n;
  return SF_OK;
}

static void swap_bufs(sf_cpbuf *a, sf_cpbuf *b) {
  sf_cpbuf t = *a;
  *a = *b;
  *b = t;
}

/* Length of a valid UTF-8 sequence at s (or 0), with its code point. */
static size_t utf8_valid(const unsigned char *s, size_t len, uint32_t *cp) {
  unsigned char c = s[0];
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    need = 1;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 2;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 3;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  uint32_t v = c & (need == 1 ? 0x1F : need == 2 ? 0x0F : 0x07);
  for (size_t k = 1; k <= need; k++) {
    if (k >= len) return 0;
    unsigned char t = s[k];
    unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (t < l || t > h) return 0;
    v = (v << 6) | (t & 0x3F);
  }
  *cp = v;
  return need + 1;
}

/* Bytes of the maximal prefix of a valid sequence at s (>= 1): what Python replaces
 * with one U+FFFD. */
static size_t utf8_invalid_span(const unsigned char *s, size_t len) {
  unsigned char c = s[0];
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    need = 1;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 2;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 3;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 1;
  }
  size_t k = 1;
  while (k <= need && k < len) {
    unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (s[k] < l || s[k] > h) break;
    k++;
  }
  return k;
}

sf_status sf_text_decode_utf8(const char *s, size_t len, sf_cpbuf *out) {
  const unsigned char *u = (const unsigned char *)s;
  sf_status st = sf_cpbuf_reserve(out, len);
  if (st != SF_OK) return st;
  size_t i = 0;
  while (i < len) {
    uint32_t cp;
    size_t k = utf8_valid(u + i, len - i, &cp);
    if (k == 0) {
      k = utf8_invalid_span(u + i, len - i);
      cp = 0xFFFD;
    }
    out->v[out->n++] = cp;
    i += k;
  }
  return SF_OK;
}

/* ---- NFC ---- */

enum { HANGUL_S = 0xAC00, HANGUL_L = 0x1100, HANGUL_V = 0x1161, HANGUL_T = 0x11A7 };
enum { HANGUL_LCOUNT = 19, HANGUL_VCOUNT = 21, HANGUL_TCOUNT = 28, HANGUL_SCOUNT = 11172 };

static sf_status decompose_into(uint32_t cp, sf_cpbuf *out, int depth) {
  if (cp >= HANGUL_S && cp < HANGUL_S + HANGUL_SCOUNT) {
    uint32_t s = cp - HANGUL_S;
    sf_status st = push(out, HANGUL_L + s / (HANGUL_VCOUNT * HANGUL_TCOUNT));
    if (st == SF_OK) st = push(out, HANGUL_V + (s % (HANGUL_VCOUNT * HANGUL_TCOUNT)) / HANGUL_TCOUNT);
    if (st == SF_OK && s % HANGUL_TCOUNT) st = push(out, HANGUL_T + s % HANGUL_TCOUNT);
    return st;
  }
  uint32_t d[2];
  int k = depth < 8 ? sf_uc_decompose(cp, d) : 0;
  if (k == 0) return push(out, cp);
  sf_status st = decompose_into(d[0], out, depth + 1);
  if (st == SF_OK && k == 2) st = decompose_into(d[1], out, depth + 1);
  return st;
}

static uint32_t compose_pair(uint32_t a, uint32_t b) {
  if (a >= HANGUL_L && a < HANGUL_L + HANGUL_LCOUNT && b >= HANGUL_V && b < HANGUL_V + HANGUL_VCOUNT) {
    return HANGUL_S + ((a - HANGUL_L) * HANGUL_VCOUNT + (b - HANGUL_V)) * HANGUL_TCOUNT;
  }
  if (a >= HANGUL_S && a < HANGUL_S + HANGUL_SCOUNT && (a - HANGUL_S) % HANGUL_TCOUNT == 0 &&
      b > HANGUL_T && b < HANGUL_T + HANGUL_TCOUNT) {
    return a + (b - HANGUL_T);
  }
  return sf_uc_compose(a, b);
}

sf_status sf_text_nfc(const uint32_t *text, size_t n, sf_cpbuf *out) {
  out->n = 0;
  sf_cpbuf d = {0};
  sf_status st = sf_cpbuf_reserve(&d, n);
  for (size_t i = 0; st == SF_OK && i < n; i++) {
    if (text[i] < 0xC0) {
      st = push(&d, text[i]);
    } else {
      st = decompose_into(text[i], &d, 0);
    }
  }
  if (st != SF_OK) {
    sf_cpbuf_free(&d);
    return st;
  }
  /* Canonical ordering: stable insertion sort inside every run of non-starters. */
  for (size_t i = 1; i < d.n; i++) {
    int c = sf_uc_ccc(d.v[i]);
    if (c == 0) continue;
    size_t j = i;
    uint32_t cp = d.v[i];
    while (j > 0) {
      int p = sf_uc_ccc(d.v[j - 1]);
      if (p == 0 || p <= c) break;
      d.v[j] = d.v[j - 1];
      j--;
    }
    d.v[j] = cp;
  }
  st = sf_cpbuf_reserve(out, d.n);
  if (st != SF_OK) {
    sf_cpbuf_free(&d);
    return st;
  }
  long starter = -1;
  int last_ccc = 0;
  for (size_t i = 0; i < d.n; i++) {
    uint32_t cp = d.v[i];
    int c = cp < 0x300 ? 0 : sf_uc_ccc(cp);
    if (starter >= 0) {
      int adjacent = (size_t)starter == out->n - 1;
      if (adjacent || (last_ccc != 0 && last_ccc < c)) {
        uint32_t comp = compose_pair(out->v[starter], cp);
        if (comp) {
          out->v[starter] = comp;
          continue;
        }
      }
    }
    if (c == 0) starter = (long)out->n;
    last_ccc = c;
    out->v[out->n++] = cp;
  }
  sf_cpbuf_free(&d);
  return SF_OK;
}

/* ---- individual ftfy fixes: each reads `in` and writes `out` ---- */

static int is_ascii_alnum(uint32_t c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int hexval(uint32_t c) {
  if (c >= '0' && c <= '9') return (int)(c - '0');
  if (c >= 'a' && c <= 'f') return (int)(c - 'a' + 10);
  if (c >= 'A' && c <= 'F') return (int)(c - 'A' + 10);
  return -1;
}

static sf_status push_utf8(sf_cpbuf *out, const char *s) {
  sf_cpbuf tmp = {0};
  sf_status st = sf_text_decode_utf8(s, strlen(s), &tmp);
  if (st == SF_OK) st = push_n(out, tmp.v, tmp.n);
  sf_cpbuf_free(&tmp);
  return st;
}

/* ftfy.fixes.unescape_html: `&#?[0-9A-Za-z]{1,24};` replaced by its HTML5 entity (plus
 * ftfy's upper-cased Latin ones) or a complete numeric reference as html.unescape reads it. */
static sf_status fix_unescape_html(const sf_cpbuf *in, sf_cpbuf *out) {
  out->n = 0;
  sf_status st = sf_cpbuf_reserve(out, in->n);
  for (size_t i = 0; st == SF_OK && i < in->n; i++) {
    uint32_t c = in->v[i];
    if (c != '&') {
      st = push(out, c);
      continue;
    }
    size_t j = i + 1;
    int hash = j < in->n && in->v[j] == '#';
    if (hash) j++;
    size_t k = j;
    while (k < in->n && k - j < 25 && is_ascii_alnum(in->v[k])) k++;
    size_t run = k - j;
    if (run < 1 || run > 24 || k >= in->n || in->v[k] != ';') {
      st = push(out, c);
      continue;
    }
    /* in->v[i..k] is the candidate entity, ';' at k. */
    char name[32];
    size_t nl = 0;
    for (size_t m = i + 1; m <= k; m++) name[nl++] = (char)in->v[m];
    name[nl] = 0;
    const char *rep = sf_html_entity(name, nl);
    if (rep != NULL) {
      st = push_utf8(out, rep);
      i = k;
      continue;
    }
    if (hash) {
      int ok = 1, hex = 0;
      size_t p = j;
      if (in->v[p] == 'x' || in->v[p] == 'X') {
        hex = 1;
        p++;
      }
      uint64_t num = 0;
      if (p == k) ok = 0;
      for (; ok && p < k; p++) {
        int dv = hex ? hexval(in->v[p]) : (in->v[p] >= '0' && in->v[p] <= '9' ? (int)(in->v[p] - '0') : -1);
        if (dv < 0) {
          ok = 0;
        } else if (num < (1ull << 40)) {
          num = num * (hex ? 16 : 10) + (uint64_t)dv;
        }
      }
      if (ok) {
        int64_t r = sf_html_charref(num);
        /* ftfy keeps the reference when the decoded text still contains ';'. */
        if (r != ';') {
          if (r >= 0) st = push(out, (uint32_t)r);
          i = k;
          continue;
        }
      }
    }
    st = push(out, c);
  }
  return st;
}

static int same(const sf_cpbuf *a, const sf_cpbuf *b);

/* ---- ftfy.badness.is_bad ---- */

#define M(cp) sf_uc_mojibake_class(cp)
enum {
  MB_BAD = SF_MOJI_BAD, MB_LAW = SF_MOJI_LAW, MB_CUR = SF_MOJI_CURRENCY, MB_START = SF_MOJI_START,
  MB_END = SF_MOJI_END, MB_NUM = SF_MOJI_NUMERIC, MB_KAO = SF_MOJI_KAOMOJI,
  MB_UACC = SF_MOJI_UPPER_ACC, MB_LACC = SF_MOJI_LOWER_ACC, MB_UCOM = SF_MOJI_UPPER_COMMON,
  MB_LCOM = SF_MOJI_LOWER_COMMON, MB_BOX = SF_MOJI_BOX, MB_C1 = SF_MOJI_C1, MB_COMMON = SF_MOJI_COMMON
};

static int in_list(uint32_t c, const uint32_t *list, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (list[i] == c) return 1;
  }
  return 0;
}
#define IN(c, ...) in_list((c), (const uint32_t[]){__VA_ARGS__}, sizeof((const uint32_t[]){__VA_ARGS__}) / sizeof(uint32_t))

static int is_latin(uint32_t c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_lower_latin(uint32_t c) { return c >= 'a' && c <= 'z'; }
static int is_re_word(uint32_t c) { return c == '_' || sf_uc_is_letter(c) || sf_uc_is_number(c); }

/* One position of ftfy's BADNESS_RE (a search over the alternatives). */
static int bad_at(const uint32_t *s, size_t n, size_t i) {
  uint32_t a = s[i];
  uint32_t b = i + 1 < n ? s[i + 1] : 0;
  uint32_t c = i + 2 < n ? s[i + 2] : 0;
  int has_b = i + 1 < n, has_c = i + 2 < n;
  unsigned ma = M(a), mb = has_b ? M(b) : 0, mc = has_c ? M(c) : 0;
  if (ma & MB_C1) return 1;
  if (has_b) {
    if ((ma & (MB_BAD | MB_LACC | MB_UACC | MB_BOX | MB_START | MB_END | MB_CUR | MB_NUM | MB_LAW)) && (mb & MB_BAD)) return 1;
    if (is_latin(a) && (mb & (MB_LCOM | MB_UCOM)) && has_c && (mc & MB_BAD)) return 1;
    if ((ma & MB_BAD) && (mb & (MB_LACC | MB_UACC | MB_BOX | MB_START | MB_END | MB_CUR | MB_NUM | MB_LAW))) return 1;
    if ((ma & (MB_LACC | MB_LCOM | MB_BOX | MB_END | MB_CUR | MB_NUM)) && (mb & MB_UACC)) return 1;
    if ((ma & (MB_BOX | MB_END | MB_CUR | MB_NUM)) && (mb & MB_LACC)) return 1;
    if ((ma & (MB_LACC | MB_BOX | MB_END)) && (mb & MB_CUR)) return 1;
    if (sf_uc_is_py_space(a) && (mb & MB_UACC) && has_c && (mc & MB_CUR)) return 1;
    if ((ma & (MB_UACC | MB_BOX)) && (mb & (MB_NUM | MB_LAW))) return 1;
    if ((ma & (MB_LACC | MB_UACC | MB_BOX | MB_CUR | MB_END)) && (mb & MB_START) && has_c && (mc & MB_NUM)) return 1;
    if ((ma & (MB_LACC | MB_UACC | MB_CUR | MB_NUM | MB_BOX | MB_LAW)) && (mb & MB_END) && has_c && (mc & MB_START)) return 1;
    if ((ma & (MB_CUR | MB_NUM | MB_BOX)) && (mb & MB_START)) return 1;
    if (is_lower_latin(a) && (mb & MB_UACC) && has_c && (mc & (MB_START | MB_CUR))) return 1;
    if ((ma & MB_BOX) && (mb & MB_KAO)) return 1;
    if ((ma & (MB_LACC | MB_UACC | MB_CUR | MB_NUM | MB_START | MB_END | MB_LAW)) && (mb & MB_BOX)) return 1;
    if ((ma & MB_BOX) && (mb & MB_END)) return 1;
    if ((ma & (MB_LACC | MB_UACC)) && (mb & (MB_START | MB_END)) && has_c && is_re_word(c)) return 1;
    if ((a == 0x152 || a == 0x153) && !is_latin(b)) return 1;
    if ((ma & MB_UACC) && b == 0xB0) return 1;
    if (IN(a, 0xC2, 0xC3, 0xCE, 0xD0) &&
        ((mb & (MB_START | MB_END)) ||
         IN(b, 0x20AC, 0x153, 0x160, 0x161, 0xA2, 0xA3, 0x178, 0x17E, 0xA0, 0xAD, 0xAE, 0xA9, 0xB0,
            0xB7, 0xBB, 0x2013, 0x2014, 0xB4)))
      return 1;
    if (a == 0xD7 && (b == 0xB2 || b == 0xB3)) return 1;
    if (i + 3 < n && IN(a, 0xD8, 0xD9) && IN(c, 0xD8, 0xD9)) {
      unsigned want = MB_COMMON | MB_CUR | MB_BAD | MB_NUM | MB_START;
      uint32_t d = s[i + 3];
      if (((mb & want) || IN(b, 0x178, 0x160, 0xAE, 0xB0, 0xB5, 0xBB)) &&
          ((M(d) & want) || IN(d, 0x178, 0x160, 0xAE, 0xB0, 0xB5, 0xBB)))
        return 1;
    }
    if (a == 0xE0 && IN(b, 0xB2, 0xB5, 0xB9, 0xBC, 0xBD, 0xBE)) return 1;
    if (a == 0x221A && IN(b, 0xB1, 0x2202, 0x2020, 0x2260, 0xAE, 0x2122, 0xB4, 0x2264, 0x2265, 0xA5, 0xB5, 0xF8)) return 1;
    if (a == 0x2248 && (b == 0xB0 || b == 0xA2)) return 1;
    if (a == 0x201A && b == 0xC4 && has_c &&
        IN(c, 0xEC, 0xEE, 0xEF, 0xF2, 0xF4, 0xFA, 0xF9, 0xFB, 0x2020, 0xB0, 0xA2, 0x3C0))
      return 1;
    if (a == 0x201A && (b == 0xE2 || b == 0xF3) && has_c && IN(c, 0xE0, 0xE4, 0xB0, 0xEA)) return 1;
    if (a == 0x432 && b == 0x402) return 1;
    if (IN(a, 0x412, 0x413, 0x420, 0x421) && has_c && IN(c, 0x412, 0x413, 0x420, 0x421) &&
        ((mb & (MB_C1 | MB_BAD | MB_START | MB_END | MB_CUR)) || b == 0xB0 || b == 0xB5))
      return 1;
    if (a == 0x413 && i + 6 < n && s[i + 1] == 0x45E && s[i + 2] == 0x412 && s[i + 3] == 0x402 &&
        s[i + 4] == 0x412 && s[i + 5] != '\n' && (is_latin(s[i + 6]) || s[i + 6] == ' '))
      return 1;
    if (a == 0xC3 && (b == 0xA0 || b == 0xA1)) return 1;
    if (is_lower_latin(a)) {
      if ((b == 0xC3 || b == 0xC2) && has_c && c == ' ') return 1;
      if (sf_uc_is_py_space(b) && has_c && (c == 0xC3 || c == 0xC2) && i + 3 < n && s[i + 3] == ' ') return 1;
    }
    if (i == 0 && (a == 0xC3 || a == 0xC2) && b == ' ') return 1;
    if ((is_lower_latin(a) || IN(a, '.', ',', '?', '!') || (ma & MB_END)) && b == 0xC2 && has_c &&
        (c == ' ' || (mc & (MB_START | MB_END))))
      return 1;
    if (a == 0x3B2 && b == 0x20AC && has_c && IN(c, 0x2122, 0xA0, 0x386, 0xAD, 0xAE, 0xB0)) return 1;
    if (IN(a, 0x392, 0x393, 0x39E, 0x39F) && has_c && IN(c, 0x392, 0x393, 0x39E, 0x39F) &&
        ((mb & (MB_C1 | MB_BAD | MB_START | MB_END | MB_CUR)) || b == 0xB0))
      return 1;
    if (a == 0x101 && b == 0x20AC) return 1;
  }
  return 0;
}

static int is_bad(const uint32_t *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    /* Every alternative has a non-ASCII character within its first three. */
    if (s[i] >= 0x80 || (i + 1 < n && s[i + 1] >= 0x80) || (i + 2 < n && s[i + 2] >= 0x80)) {
      if (bad_at(s, n, i)) return 1;
    }
  }
  return 0;
}

typedef struct bytebuf {
  unsigned char *v;
  size_t n, cap;
} bytebuf;

static sf_status bb_push(bytebuf *b, unsigned char c) {
  if (b->n == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 64;
    unsigned char *v = realloc(b->v, cap);
    if (v == NULL) return SF_ERR_OUT_OF_MEMORY;
    b->v = v;
    b->cap = cap;
  }
  b->v[b->n++] = c;
  return SF_OK;
}

static int in_b(unsigned char c, unsigned lo, unsigned hi) { return c >= lo && c <= hi; }
/* [\x80-\x84\x86-\x9f\xa1-\xbf]: a continuation byte other than 85 and A0. */
static int cont_not_85_a0(unsigned char c) { return in_b(c, 0x80, 0xBF) && c != 0x85 && c != 0xA0; }

/* Length of ftfy's ALTERED_UTF8_RE match at b[i], 0 if none. */
static size_t altered_utf8_at(const unsigned char *b, size_t n, size_t i) {
  unsigned char c0 = b[i];
  unsigned char c1 = i + 1 < n ? b[i + 1] : 0, c2 = i + 2 < n ? b[i + 2] : 0, c3 = i + 3 < n ? b[i + 3] : 0;
  int h1 = i + 1 < n, h2 = i + 2 < n, h3 = i + 3 < n;
  if ((c0 == 0xC2 || c0 == 0xC3 || c0 == 0xC5 || c0 == 0xCE || c0 == 0xD0 || c0 == 0xD9) && h1 && c1 == ' ') return 2;
  if ((c0 == 0xE2 || c0 == 0xE3) && h2 && c1 == ' ' && cont_not_85_a0(c2)) return 3;
  if (in_b(c0, 0xE0, 0xE3) && h2 && cont_not_85_a0(c1) && c2 == ' ') return 3;
  if (c0 == 0xF0 && h3) {
    int s1 = c1 == ' ', s2 = c2 == ' ', s3 = c3 == ' ';
    int k1 = in_b(c1, 0x80, 0xBF), k2 = in_b(c2, 0x80, 0xBF), k3 = in_b(c3, 0x80, 0xBF);
    if ((s1 && k2 && k3) || (k1 && s2 && k3) || (k1 && k2 && s3)) return 4;
  }
  return 0;
}

/* fixes.restore_byte_a0: a lone C3 before a space becomes "à " (except before the
 * Portuguese words ftfy lists), and spaces inside would-be UTF-8 sequences become A0. */
static sf_status restore_byte_a0(const bytebuf *in, bytebuf *out) {
  static const char *const keep[] = {" ", "quele", "quela", "quilo", "s "};
  bytebuf tmp = {0};
  sf_status st = SF_OK;
  for (size_t i = 0; st == SF_OK && i < in->n; i++) {
    st = bb_push(&tmp, in->v[i]);
    if (st == SF_OK && in->v[i] == 0xC3 && i + 1 < in->n && in->v[i + 1] == ' ') {
      int excluded = 0;
      for (size_t k = 0; k < 5; k++) {
        size_t l = strlen(keep[k]);
        if (i + 2 + l <= in->n && memcmp(in->v + i + 2, keep[k], l) == 0) excluded = 1;
      }
      if (!excluded) st = bb_push(&tmp, 0xA0);
    }
  }
  out->n = 0;
  for (size_t i = 0; st == SF_OK && i < tmp.n;) {
    size_t m = altered_utf8_at(tmp.v, tmp.n, i);
    if (m == 0) {
      st = bb_push(out, tmp.v[i++]);
      continue;
    }
    for (size_t k = 0; st == SF_OK && k < m; k++) st = bb_push(out, tmp.v[i + k] == ' ' ? 0xA0 : tmp.v[i + k]);
    i += m;
  }
  free(tmp.v);
  return st;
}

static int lost(unsigned char c) { return c == 0x1A || c == '?'; }
static int lost_or_cont(unsigned char c) { return c == 0x1A || in_b(c, 0x80, 0xBF); }

/* Length of ftfy's LOSSY_UTF8_RE match at b[i], 0 if none. */
static size_t lossy_at(const unsigned char *b, size_t n, size_t i) {
  unsigned char c[6] = {0};
  size_t avail = n - i;
  for (size_t k = 0; k < 6 && k < avail; k++) c[k] = b[i + k];
  if (avail >= 2 && in_b(c[0], 0xC2, 0xDF) && c[1] == 0x1A) return 2;
  if (avail >= 2 && in_b(c[0], 0xC2, 0xC3) && c[1] == '?') return 2;
  if (avail >= 6 && c[0] == 0xED && in_b(c[1], 0xA0, 0xAF) && c[3] == 0xED && in_b(c[4], 0xB0, 0xBF)) {
    if (lost(c[2]) && (lost(c[5]) || in_b(c[5], 0x80, 0xBF))) return 6;
    if ((lost(c[2]) || in_b(c[2], 0x80, 0xBF)) && lost(c[5])) return 6;
  }
  if (avail >= 3 && in_b(c[0], 0xE0, 0xEF)) {
    if (lost(c[1]) && lost_or_cont(c[2])) return 3;
    if (lost_or_cont(c[1]) && lost(c[2])) return 3;
  }
  if (avail >= 4 && in_b(c[0], 0xF0, 0xF4)) {
    if (lost(c[1]) && lost_or_cont(c[2]) && lost_or_cont(c[3])) return 4;
    if (lost_or_cont(c[1]) && lost(c[2]) && lost_or_cont(c[3])) return 4;
    if (lost_or_cont(c[1]) && lost_or_cont(c[2]) && lost(c[3])) return 4;
  }
  if (c[0] == 0x1A) return 1;
  return 0;
}

/* fixes.replace_lossy_sequences: sequences that lost a byte (shown as 1A or '?')
 * become the UTF-8 of U+FFFD. */
static sf_status replace_lossy(const bytebuf *in, bytebuf *out) {
  sf_status st = SF_OK;
  out->n = 0;
  for (size_t i = 0; st == SF_OK && i < in->n;) {
    size_t m = lossy_at(in->v, in->n, i);
    if (m == 0) {
      st = bb_push(out, in->v[i++]);
    } else {
      st = bb_push(out, 0xEF);
      if (st == SF_OK) st = bb_push(out, 0xBF);
      if (st == SF_OK) st = bb_push(out, 0xBD);
      i += m;
    }
  }
  return st;
}

/* Strict UTF-8 decode (ftfy's "utf-8-variants" when `variants`: also CESU-8 surrogate
 * pairs and Java's C0 80 for U+0000). Returns 0 if the bytes do not decode. */
static sf_status decode_utf8_strict(const bytebuf *b, int variants, sf_cpbuf *out, int *ok) {
  *ok = 1;
  out->n = 0;
  for (size_t i = 0; i < b->n;) {
    const unsigned char *p = b->v + i;
    size_t left = b->n - i;
    uint32_t cp;
    size_t k;
    if (variants && left >= 6 && p[0] == 0xED && in_b(p[1], 0xA0, 0xAF) && in_b(p[2], 0x80, 0xBF) &&
        p[3] == 0xED && in_b(p[4], 0xB0, 0xBF) && in_b(p[5], 0x80, 0xBF)) {
      uint32_t hi = 0xD000u | ((uint32_t)(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
      uint32_t lo = 0xD000u | ((uint32_t)(p[4] & 0x3F) << 6) | (p[5] & 0x3F);
      cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
      k = 6;
    } else if (variants && left >= 2 && p[0] == 0xC0 && p[1] == 0x80) {
      cp = 0;
      k = 2;
    } else {
      k = utf8_valid(p, left, &cp);
      if (k == 0) {
        *ok = 0;
        return SF_OK;
      }
    }
    sf_status st = push(out, cp);
    if (st != SF_OK) return st;
    i += k;
  }
  return SF_OK;
}

/* One step of ftfy's fix_encoding for UTF-8 that was decoded as Latin-1 or as sloppy
 * Windows-1252 (with restore_byte_a0, replace_lossy_sequences and utf-8-variants), then
 * Latin-1 meant as Windows-1252, then fix_c1_controls. Not implemented: the other
 * single-byte encodings ftfy tries (sloppy-windows-1250/1251/1253/1254/1257,
 * ISO-8859-2, MacRoman, cp437) and decode_inconsistent_utf8 (mojibake mixed with text
 * that none of those encodings can represent); such text is left as it is.
 * Sets *changed when `out` holds a different text. */
static sf_status fix_encoding_step(const sf_cpbuf *in, sf_cpbuf *out, int *changed) {
  *changed = 0;
  int ascii = 1;
  for (size_t i = 0; i < in->n; i++) {
    if (in->v[i] >= 0x80) {
      ascii = 0;
      break;
    }
  }
  if (in->n == 0 || ascii || !is_bad(in->v, in->n)) return SF_OK;
  int latin1_possible = 0, decoded = 0;
  bytebuf enc_bytes = {0}, fixed_bytes = {0}, lossy_bytes = {0};
  sf_status st = SF_OK;
  for (int enc = 0; enc < 2 && !*changed && st == SF_OK; enc++) {
    int possible = 1;
    enc_bytes.n = 0;
    for (size_t i = 0; i < in->n && possible && st == SF_OK; i++) {
      uint32_t c = in->v[i];
      int b;
      if (enc == 0) {
        b = c < 0x100 ? (int)c : -1;
      } else if (c == 0xFFFD) {
        b = 0x1A; /* the sloppy codecs' stand-in for an undecodable byte */
      } else if (c == 0x1A) {
        b = -1;
      } else {
        b = sf_uc_cp1252_byte(c);
      }
      if (b < 0) {
        possible = 0;
      } else {
        st = bb_push(&enc_bytes, (unsigned char)b);
      }
    }
    if (!possible || st != SF_OK) continue;
    if (enc == 0) latin1_possible = 1;
    bytebuf *cur = &enc_bytes;
    int altered = 0;
    for (size_t i = 0; i < cur->n && !altered; i++) altered = altered_utf8_at(cur->v, cur->n, i) != 0;
    if (altered) {
      st = restore_byte_a0(cur, &fixed_bytes);
      cur = &fixed_bytes;
    }
    if (st == SF_OK && enc == 1) {
      st = replace_lossy(cur, &lossy_bytes);
      cur = &lossy_bytes;
    }
    if (st != SF_OK) break;
    int variants = 0;
    for (size_t i = 0; i < cur->n; i++) {
      if (cur->v[i] == 0xED || cur->v[i] == 0xC0) variants = 1;
    }
    int ok;
    st = decode_utf8_strict(cur, variants, out, &ok);
    if (st == SF_OK && ok) {
      /* ftfy returns the decoded text here, even when it equals the input. */
      decoded = 1;
      *changed = !same(in, out);
      break;
    }
  }
  free(enc_bytes.v);
  free(fixed_bytes.v);
  free(lossy_bytes.v);
  if (st != SF_OK || decoded) return st;
  int has_c1 = 0;
  for (size_t i = 0; i < in->n; i++) {
    if (in->v[i] >= 0x80 && in->v[i] < 0xA0) has_c1 = 1;
  }
  if (!has_c1) return SF_OK;
  if (latin1_possible) {
    /* Latin-1 text meant as strict Windows-1252 (fails on its 5 undefined bytes). */
    int ok = 1;
    for (size_t i = 0; i < in->n; i++) {
      uint32_t c = in->v[i];
      if (c >= 0x80 && c < 0xA0 && sf_uc_cp1252((uint8_t)c) == c) ok = 0;
    }
    if (ok) {
      out->n = 0;
      st = sf_cpbuf_reserve(out, in->n);
      if (st != SF_OK) return st;
      for (size_t i = 0; i < in->n; i++) out->v[out->n++] = in->v[i] < 0x100 ? sf_uc_cp1252((uint8_t)in->v[i]) : in->v[i];
      *changed = 1;
      return SF_OK;
    }
  }
  /* fix_c1_controls */
  out->n = 0;
  st = sf_cpbuf_reserve(out, in->n);
  if (st != SF_OK) return st;
  for (size_t i = 0; i < in->n; i++) {
    uint32_t c = in->v[i];
    out->v[out->n++] = c >= 0x80 && c < 0xA0 ? sf_uc_cp1252((uint8_t)c) : c;
  }
  *changed = !same(in, out);
  return SF_OK;
}

static int same(const sf_cpbuf *a, const sf_cpbuf *b) {
  return a->n == b->n && (a->n == 0 || memcmp(a->v, b->v, a->n * sizeof(uint32_t)) == 0);
}

static const char *latin_ligature(uint32_t c) {
  switch (c) {
    case 0x132: return "IJ";
    case 0x133: return "ij";
    case 0x149: return "\xCA\xBCn";
    case 0x1F1: return "DZ";
    case 0x1F2: return "Dz";
    case 0x1F3: return "dz";
    case 0x1C4: return "D\xC5\xBD";
    case 0x1C5: return "D\xC5\xBE";
    case 0x1C6: return "d\xC5\xBE";
    case 0x1C7: return "LJ";
    case 0x1C8: return "Lj";
    case 0x1C9: return "lj";
    case 0x1CA: return "NJ";
    case 0x1CB: return "Nj";
    case 0x1CC: return "nj";
    case 0xFB00: return "ff";
    case 0xFB01: return "fi";
    case 0xFB02: return "fl";
    case 0xFB03: return "ffi";
    case 0xFB04: return "ffl";
    case 0xFB05: return "\xC5\xBFt";
    case 0xFB06: return "st";
    default: return NULL;
  }
}

/* fix_character_width, uncurl_quotes and the single-character part of fix_line_breaks. */
static sf_status push_width_quotes(sf_cpbuf *out, uint32_t c) {
  uint32_t w[2];
  int nw = sf_uc_width_fix(c, w);
  /* Width-fixed characters are never curly quotes or line separators. */
  if (nw) return push_n(out, w, (size_t)nw);
  if (c == 0x2BC || (c >= 0x2018 && c <= 0x201B)) {
    c = '\'';
  } else if (c >= 0x201C && c <= 0x201F) {
    c = '"';
  } else if (c == 0x2028 || c == 0x2029 || c == 0x85) {
    c = '\n';
  }
  return push(out, c);
}

/* The fixes that follow fix_encoding, in ftfy's order, fused into one pass since each
 * maps characters independently: fix_c1_controls, fix_latin_ligatures,
 * fix_character_width, uncurl_quotes, fix_line_breaks. */
static sf_status fix_chars(const sf_cpbuf *in, sf_cpbuf *out) {
  out->n = 0;
  sf_status st = sf_cpbuf_reserve(out, in->n);
  for (size_t i = 0; st == SF_OK && i < in->n; i++) {
    uint32_t c = in->v[i];
    if (c >= 0x80 && c < 0xA0) c = sf_uc_cp1252((uint8_t)c);
    if (c == '\r') {
      if (i + 1 < in->n && in->v[i + 1] == '\n') i++;
      st = push(out, '\n');
      continue;
    }
    const char *lig = latin_ligature(c);
    if (lig == NULL) {
      st = push_width_quotes(out, c);
      continue;
    }
    sf_cpbuf parts = {0};
    st = sf_text_decode_utf8(lig, strlen(lig), &parts);
    for (size_t k = 0; st == SF_OK && k < parts.n; k++) st = push_width_quotes(out, parts.v[k]);
    sf_cpbuf_free(&parts);
  }
  return st;
}

static int is_removed_control(uint32_t c) {
  return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F || (c >= 0x206A && c <= 0x206F) ||
         c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

/* remove_terminal_escapes (ESC '[' [0-9;]* [A-Za-z]) then remove_control_chars. */
static sf_status fix_controls(const sf_cpbuf *in, sf_cpbuf *out) {
  out->n = 0;
  sf_status st = sf_cpbuf_reserve(out, in->n);
  if (st != SF_OK) return st;
  size_t i = 0;
  sf_cpbuf tmp = {0};
  st = sf_cpbuf_reserve(&tmp, in->n);
  if (st != SF_OK) return st;
  while (i < in->n) {
    if (in->v[i] == 0x1B && i + 1 < in->n && in->v[i + 1] == '[') {
      size_t k = i + 2;
      while (k < in->n && ((in->v[k] >= '0' && in->v[k] <= '9') || in->v[k] == ';')) k++;
      if (k < in->n && is_latin(in->v[k])) {
        i = k + 1;
        continue;
      }
    }
    tmp.v[tmp.n++] = in->v[i++];
  }
  for (i = 0; i < tmp.n; i++) {
    if (!is_removed_control(tmp.v[i])) out->v[out->n++] = tmp.v[i];
  }
  sf_cpbuf_free(&tmp);
  return SF_OK;
}

/* ftfy.fix_and_explain on one segment: the fixes in order until nothing changes. */
static sf_status fix_segment(const uint32_t *seg, size_t n, int unescape, sf_cpbuf *result) {
  sf_cpbuf cur = {0}, nxt = {0}, orig = {0};
  sf_status st = push_n(&cur, seg, n);
  for (int round = 0; st == SF_OK && round < 16; round++) {
    orig.n = 0;
    st = push_n(&orig, cur.v, cur.n);
    if (st == SF_OK && unescape) {
      st = fix_unescape_html(&cur, &nxt);
      swap_bufs(&cur, &nxt);
    }
    for (int step = 0; st == SF_OK && step < 16; step++) {
      int changed = 0;
      st = fix_encoding_step(&cur, &nxt, &changed);
      if (!changed) break;
      swap_bufs(&cur, &nxt);
    }
    if (st == SF_OK) {
      st = fix_chars(&cur, &nxt);
      swap_bufs(&cur, &nxt);
    }
    if (st == SF_OK) {
      st = fix_controls(&cur, &nxt);
      swap_bufs(&cur, &nxt);
    }
    if (st == SF_OK) {
      st = sf_text_nfc(cur.v, cur.n, &nxt);
      swap_bufs(&cur, &nxt);
    }
    if (st == SF_OK && same(&cur, &orig)) break;
  }
  if (st == SF_OK) st = push_n(result, cur.v, cur.n);
  sf_cpbuf_free(&cur);
  sf_cpbuf_free(&nxt);
  sf_cpbuf_free(&orig);
  return st;
}

sf_status sf_text_ftfy(const uint32_t *text, size_t n, sf_cpbuf *out) {
  enum { MAX_DECODE_LENGTH = 1000000 };
  out->n = 0;
  int unescape = 1;
  size_t pos = 0;
  sf_status st = SF_OK;
  while (st == SF_OK && pos < n) {
    size_t end = pos;
    while (end < n && text[end] != '\n') end++;
    end = end < n ? end + 1 : n;
    if (end - pos > MAX_DECODE_LENGTH) end = pos + MAX_DECODE_LENGTH;
    /* "auto" turns HTML unescaping off for good once a segment contains '<'. */
    for (size_t i = pos; unescape && i < end; i++) {
      if (text[i] == '<') unescape = 0;
    }
    st = fix_segment(text + pos, end - pos, unescape, out);
    pos = end;
  }
  return st;
}

sf_status sf_text_clip_clean_lower(const uint32_t *text, size_t n, sf_cpbuf *out) {
  out->n = 0;
  sf_cpbuf ws = {0};
  sf_status st = sf_cpbuf_reserve(&ws, n);
  if (st != SF_OK) return st;
  for (size_t i = 0; i < n; i++) {
    if (sf_uc_is_regex_space(text[i])) {
      while (i + 1 < n && sf_uc_is_regex_space(text[i + 1])) i++;
      ws.v[ws.n++] = ' ';
    } else {
      ws.v[ws.n++] = text[i];
    }
  }
  size_t a = 0, b = ws.n;
  while (a < b && sf_uc_is_py_space(ws.v[a])) a++;
  while (b > a && sf_uc_is_py_space(ws.v[b - 1])) b--;
  st = sf_cpbuf_reserve(out, (b - a) + 8);
  for (size_t i = a; st == SF_OK && i < b; i++) {
    uint32_t c = ws.v[i];
    if (c < 0x80) {
      if (c >= 'A' && c <= 'Z') c += 32;
      st = push(out, c);
    } else if (c == 0x130) {
      st = push(out, 'i');
      if (st == SF_OK) st = push(out, 0x307);
    } else if (c == 0x3A3) {
      /* Final_Sigma: cased (case-ignorable)* SIGMA not followed by (case-ignorable)* cased. */
      size_t j = i;
      while (j > a && sf_uc_is_case_ignorable(ws.v[j - 1])) j--;
      int final = j > a && sf_uc_is_cased(ws.v[j - 1]);
      if (final) {
        size_t k = i + 1;
        while (k < b && sf_uc_is_case_ignorable(ws.v[k])) k++;
        final = k == b || !sf_uc_is_cased(ws.v[k]);
      }
      st = push(out, final ? 0x3C2 : 0x3C3);
    } else {
      st = push(out, sf_uc_lower(c));
    }
  }
  sf_cpbuf_free(&ws);
  return st;
}
