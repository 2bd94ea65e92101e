/* A1111's parse_prompt_attention, token by token of its regular expression (prompt_syntax.h):
 *   \\\( | \\\) | \\\[ | \\] | \\\\ | \\ | \( | \[ | :\s*([+-]?[.\d]+)\s*\) | \) | ] |
 *   [^\\()\[\]:]+ | :
 * The pieces' texts are written one after the other into one buffer, so merging two
 * neighbours only adds their lengths. */
#include "text/prompt_syntax.h"

#include <stdlib.h>
#include <string.h>

#include "core/str.h"

#define ROUND_MULTIPLIER 1.1
#define SQUARE_MULTIPLIER (1 / 1.1)

typedef struct entry {
  size_t off, len;
  double weight;
} entry;

typedef struct parser {
  entry *res;
  size_t n;
  char *buf;
  size_t used;
  size_t *round, n_round, *square, n_square;
} parser;

/* Python's str \s for ASCII (it includes the separators 0x1c..0x1f). */
static int is_space(unsigned char c) { return c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f); }
/* \w: ASCII letters, digits, '_'; bytes of multi-byte UTF-8 sequences count as letters. */
static int is_word(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c >= 0x80;
}

static void append(parser *ps, const char *text, size_t len, double weight) {
  memcpy(ps->buf + ps->used, text, len);
  ps->res[ps->n++] = (entry){ps->used, len, weight};
  ps->used += len;
}

static void multiply_range(parser *ps, size_t start, double multiplier) {
  for (size_t p = start; p < ps->n; p++) ps->res[p].weight *= multiplier;
}

/* re.split(r"\s*\bBREAK\b\s*", text): the parts, with a ["BREAK", -1] between two. */
static void append_text(parser *ps, const char *t, size_t n) {
  size_t part = 0, i = 0;
  while (i + 5 <= n) {
    size_t p = i;
    /* the next BREAK with word boundaries on both sides */
    const char *hit = NULL;
    for (; p + 5 <= n; p++)
      if (memcmp(t + p, "BREAK", 5) == 0 && (p == 0 || !is_word((unsigned char)t[p - 1])) &&
          (p + 5 == n || !is_word((unsigned char)t[p + 5]))) {
        hit = t + p;
        break;
      }
    if (hit == NULL) break;
    size_t start = p, end = p + 5;
    while (start > part && is_space((unsigned char)t[start - 1])) start--;
    while (end < n && is_space((unsigned char)t[end])) end++;
    append(ps, t + part, start - part, 1.0);
    append(ps, "BREAK", 5, -1.0);
    part = i = end;
  }
  append(ps, t + part, n - part, 1.0);
}

/* ':' at t[0]: the length of ":\s*([+-]?[.\d]+)\s*\)" matched there (0: none), the number's span. */
static size_t weight_at(const char *t, size_t n, size_t *num, size_t *num_len) {
  size_t i = 1;
  while (i < n && is_space((unsigned char)t[i])) i++;
  size_t s = i;
  if (i < n && (t[i] == '+' || t[i] == '-')) i++;
  size_t digits = i;
  while (i < n && (t[i] == '.' || (t[i] >= '0' && t[i] <= '9'))) i++;
  if (i == digits) return 0;
  size_t e = i;
  while (i < n && is_space((unsigned char)t[i])) i++;
  if (i >= n || t[i] != ')') return 0;
  *num = s;
  *num_len = e - s;
  return i + 1;
}

static int is_special(char c) { return c == '\\' || c == '(' || c == ')' || c == '[' || c == ']' || c == ':'; }

static sf_status parse(parser *ps, const char *t, size_t n, sf_diag *d) {
  size_t i = 0;
  while (i < n) {
    char c = t[i];
    if (c == '\\') {
      /* \( \) \[ \] \\ : the character; a lone backslash: nothing */
      if (i + 1 < n && (t[i + 1] == '(' || t[i + 1] == ')' || t[i + 1] == '[' || t[i + 1] == ']' || t[i + 1] == '\\')) {
        append(ps, t + i + 1, 1, 1.0);
        i += 2;
      } else {
        append(ps, t + i, 0, 1.0);
        i += 1;
      }
    } else if (c == '(') {
      ps->round[ps->n_round++] = ps->n;
      i++;
    } else if (c == '[') {
      ps->square[ps->n_square++] = ps->n;
      i++;
    } else if (c == ':') {
      size_t num = 0, num_len = 0, len = weight_at(t + i, n - i, &num, &num_len);
      if (len == 0) {
        append_text(ps, t + i, 1);
        i++;
        continue;
      }
      if (ps->n_round > 0) {
        double w = 0;
        int ok = sf_str_parse_double(t + i + num, num_len, &w);
        if (ok < 0) return sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "prompt syntax: out of memory");
        if (ok == 0)
          return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "prompt syntax: weight '%.*s' at byte %zu is not a number",
                             (int)num_len, t + i + num, i + num);
        multiply_range(ps, ps->round[--ps->n_round], w);
      } else {
        append_text(ps, t + i, len);
      }
      i += len;
    } else if (c == ')' && ps->n_round > 0) {
      multiply_range(ps, ps->round[--ps->n_round], ROUND_MULTIPLIER);
      i++;
    } else if (c == ']' && ps->n_square > 0) {
      multiply_range(ps, ps->square[--ps->n_square], SQUARE_MULTIPLIER);
      i++;
    } else if (c == ')' || c == ']') {
      append_text(ps, t + i, 1);
      i++;
    } else {
      size_t j = i;
      while (j < n && !is_special(t[j])) j++;
      append_text(ps, t + i, j - i);
      i = j;
    }
  }
  for (size_t k = 0; k < ps->n_round; k++) multiply_range(ps, ps->round[k], ROUND_MULTIPLIER);
  for (size_t k = 0; k < ps->n_square; k++) multiply_range(ps, ps->square[k], SQUARE_MULTIPLIER);
  if (ps->n == 0) append(ps, "", 0, 1.0);
  /* merge runs of identical weights */
  size_t w = 0;
  for (size_t k = 1; k < ps->n; k++) {
    if (ps->res[k].weight == ps->res[w].weight) ps->res[w].len += ps->res[k].len;
    else ps->res[++w] = ps->res[k];
  }
  ps->n = w + 1;
  return SF_OK;
}

sf_status sf_prompt_parse_a1111(const char *text, sf_prompt_pieces *out, sf_diag *d) {
  memset(out, 0, sizeof *out);
  if (text == NULL) text = "";
  size_t n = strlen(text);
  /* Every token of the expression adds at most 3 entries (a text split at a BREAK: part,
   * marker, part), and every marker consumes 5 input bytes: 2n + 2 entries suffice. */
  parser ps = {0};
  ps.res = malloc((2 * n + 2) * sizeof *ps.res);
  ps.buf = malloc(n + 1);
  ps.round = malloc((n + 1) * sizeof *ps.round);
  ps.square = malloc((n + 1) * sizeof *ps.square);
  sf_status s = SF_OK;
  if (!ps.res || !ps.buf || !ps.round || !ps.square)
    s = sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "prompt syntax: out of memory");
  if (s == SF_OK) s = parse(&ps, text, n, d);
  if (s == SF_OK) {
    out->v = malloc(ps.n * sizeof *out->v);
    out->storage = malloc(ps.used + ps.n);
    if (out->v == NULL || out->storage == NULL) {
      s = sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "prompt syntax: out of memory");
    } else {
      char *at = out->storage;
      for (size_t k = 0; k < ps.n; k++) {
        memcpy(at, ps.buf + ps.res[k].off, ps.res[k].len);
        at[ps.res[k].len] = '\0';
        out->v[k] = (sf_prompt_piece){at, ps.res[k].weight};
        at += ps.res[k].len + 1;
      }
      out->n = ps.n;
    }
  }
  free(ps.res);
  free(ps.buf);
  free(ps.round);
  free(ps.square);
  if (s != SF_OK) sf_prompt_pieces_free(out);
  return s;
}

void sf_prompt_pieces_free(sf_prompt_pieces *p) {
  if (p == NULL) return;
  free(p->v);
  free(p->storage);
  memset(p, 0, sizeof *p);
}

int sf_prompt_piece_is_break(const sf_prompt_piece *p) { return p->weight == -1.0 && strcmp(p->text, "BREAK") == 0; }
