/* CLIP BPE tokenizer (see tokenizer.h for the exact pipeline it reproduces). */
#include "text/tokenizer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "io/json.h"
#include "text/text_clean.h"
#include "text/unicode_tables.h"

/* CLIPTokenizer / simple_tokenizer read exactly this many merges: 49152 - 256 - 2. */
#define CLIP_MAX_MERGES 48894
#define SOT_TEXT "<|startoftext|>"
#define EOT_TEXT "<|endoftext|>"

/* A symbol is the raw bytes it stands for plus whether it ends a word ("</w>"). */
typedef struct sym_slot {
  uint32_t off, len; /* key bytes in t->keys: raw bytes then one end-of-word flag byte */
  int32_t id;        /* -1 = empty slot */
} sym_slot;

typedef struct pair_slot {
  uint64_t key; /* left id << 32 | right id; UINT64_MAX = empty */
  int32_t rank, merged;
} pair_slot;

struct sf_tokenizer {
  size_t n_vocab;
  char **tok_str; /* id -> vocab.json key, NULL for unused ids */
  char *tok_mem;  /* the strings of tok_str, one after another (one allocation, not one per token) */
  unsigned char *keys;
  size_t keys_len, keys_cap;
  sym_slot *syms;
  size_t sym_cap; /* power of two */
  pair_slot *pairs;
  size_t pair_cap; /* power of two */
  int32_t byte_id[256], byte_eow_id[256];
  int32_t bos, eos;
  int16_t cp_to_byte[0x144]; /* inverse of bytes_to_unicode, -1 outside it */
};

/* GPT-2/CLIP bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68
 * bytes to U+0100.. in byte order. */
static void byte_unicode_tables(uint32_t byte_to_cp[256], int16_t cp_to_byte[0x144]) {
  int n = 0;
  for (int i = 0; i < 0x144; i++) cp_to_byte[i] = -1;
  for (int b = 0; b < 256; b++) {
    int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    byte_to_cp[b] = printable ? (uint32_t)b : (uint32_t)(256 + n++);
    cp_to_byte[byte_to_cp[b]] = (int16_t)b;
  }
}

static uint64_t hash_bytes(const unsigned char *p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
  return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  return x ^ (x >> 33);
}

static int32_t sym_find(const sf_tokenizer *t, const unsigned char *key, size_t len) {
  size_t mask = t->sym_cap - 1;
  for (size_t i = hash_bytes(key, len) & mask;; i = (i + 1) & mask) {
    const sym_slot *s = &t->syms[i];
    if (s->id < 0) return -1;
    if (s->len == len && memcmp(t->keys + s->off, key, len) == 0) return s->id;
  }
}

/* Inserts key -> id; an existing key takes the new id (Python's dict keeps the last). */
static sf_status sym_insert(sf_tokenizer *t, const unsigned char *key, size_t len, int32_t id, int *inserted) {
  size_t mask = t->sym_cap - 1;
  *inserted = 0;
  size_t i = hash_bytes(key, len) & mask;
  for (;; i = (i + 1) & mask) {
    sym_slot *s = &t->syms[i];
    if (s->id < 0) break;
    if (s->len == len && memcmp(t->keys + s->off, key, len) == 0) {
      s->id = id;
      return SF_OK;
    }
  }
  if (t->keys_len + len > t->keys_cap) {
    size_t cap = t->keys_cap ? t->keys_cap : 1 << 20;
    while (cap < t->keys_len + len) cap *= 2;
    unsigned char *k = realloc(t->keys, cap);
    if (k == NULL) return SF_ERR_OUT_OF_MEMORY;
    t->keys = k;
    t->keys_cap = cap;
  }
  memcpy(t->keys + t->keys_len, key, len);
  t->syms[i].off = (uint32_t)t->keys_len;
  t->syms[i].len = (uint32_t)len;
  t->syms[i].id = id;
  t->keys_len += len;
  *inserted = 1;
  return SF_OK;
}

static const pair_slot *pair_find(const sf_tokenizer *t, int32_t a, int32_t b) {
  uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
  size_t mask = t->pair_cap - 1;
  for (size_t i = hash_u64(key) & mask;; i = (i + 1) & mask) {
    const pair_slot *p = &t->pairs[i];
    if (p->key == UINT64_MAX) return NULL;
    if (p->key == key) return p;
  }
}

static void pair_set(sf_tokenizer *t, int32_t a, int32_t b, int32_t rank, int32_t merged) {
  uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
  size_t mask = t->pair_cap - 1;
  for (size_t i = hash_u64(key) & mask;; i = (i + 1) & mask) {
    pair_slot *p = &t->pairs[i];
    if (p->key == UINT64_MAX || p->key == key) {
      /* A repeated merge keeps its last rank, as Python's dict(zip(merges, ranks)). */
      p->key = key;
      p->rank = rank;
      p->merged = merged;
      return;
    }
  }
}

static size_t pow2_at_least(size_t n) {
  size_t c = 1024;
  while (c < n) c *= 2;
  return c;
}

/* Byte-level key ("ab</w>") -> raw key bytes + eow flag in out (room for len + 1);
 * 0 if a character is outside the byte alphabet or the text is not UTF-8 (such a token
 * can never be produced and is not indexed). */
static int raw_key(const char *tok, size_t len, const int16_t cp_to_byte[0x144], unsigned char *out, size_t *out_len) {
  int eow = 0;
  if (len > 4 && memcmp(tok + len - 4, "</w>", 4) == 0) {
    eow = 1;
    len -= 4;
  }
  const unsigned char *u = (const unsigned char *)tok;
  size_t n = 0, i = 0;
  while (i < len) {
    uint32_t cp;
    if (u[i] < 0x80) {
      cp = u[i++];
    } else if ((u[i] & 0xE0) == 0xC0 && i + 1 < len && (u[i + 1] & 0xC0) == 0x80) {
      cp = ((uint32_t)(u[i] & 0x1F) << 6) | (u[i + 1] & 0x3F);
      i += 2;
    } else {
      return 0; /* the byte alphabet ends at U+0143: two UTF-8 bytes at most */
    }
    if (cp >= 0x144 || cp_to_byte[cp] < 0) return 0;
    out[n++] = (unsigned char)cp_to_byte[cp];
  }
  out[n++] = (unsigned char)eow;
  *out_len = n;
  return 1;
}

void sf_tokenizer_free(sf_tokenizer *t) {
  if (t == NULL) return;
  free(t->tok_str);
  free(t->tok_mem);
  free(t->keys);
  free(t->syms);
  free(t->pairs);
  free(t);
}

/* Builds the tokenizer from id-indexed token strings (NULL = unused id) that point into
 * tok_mem; takes ownership of both. */
static sf_tokenizer *build_vocab(char **tok_str, char *tok_mem, size_t n_vocab, const char *what, sf_diag *d) {
  sf_tokenizer *t = calloc(1, sizeof *t);
  if (t == NULL) {
    free(tok_str);
    free(tok_mem);
    sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
    return NULL;
  }
  t->tok_str = tok_str;
  t->tok_mem = tok_mem;
  t->n_vocab = n_vocab;
  /* Sized by the tokens there are, not by the largest id: ids may leave gaps (up to 2^24),
   * and a table for the largest id made one token at id 16777215 cost 400 MB. */
  size_t n_tokens = 0;
  for (size_t i = 0; i < n_vocab; i++) n_tokens += tok_str[i] != NULL;
  t->sym_cap = pow2_at_least(n_tokens * 2 + 1);
  t->syms = malloc(t->sym_cap * sizeof *t->syms);
  if (t->syms == NULL) goto oom;
  for (size_t i = 0; i < t->sym_cap; i++) t->syms[i].id = -1;
  uint32_t byte_to_cp[256];
  byte_unicode_tables(byte_to_cp, t->cp_to_byte);
  unsigned char *buf = NULL;
  size_t buf_cap = 0;
  for (size_t id = 0; id < n_vocab; id++) {
    const char *s = tok_str[id];
    if (s == NULL) continue;
    size_t len = strlen(s);
    if (len + 1 > buf_cap) {
      buf_cap = 2 * (len + 1);
      unsigned char *nb = realloc(buf, buf_cap);
      if (nb == NULL) {
        free(buf);
        goto oom;
      }
      buf = nb;
    }
    size_t klen;
    if (!raw_key(s, len, t->cp_to_byte, buf, &klen)) continue;
    int inserted;
    if (sym_insert(t, buf, klen, (int32_t)id, &inserted) != SF_OK) {
      free(buf);
      goto oom;
    }
  }
  free(buf);
  for (int b = 0; b < 256; b++) {
    unsigned char key[2] = {(unsigned char)b, 0};
    t->byte_id[b] = sym_find(t, key, 2);
    key[1] = 1;
    t->byte_eow_id[b] = sym_find(t, key, 2);
    if (t->byte_id[b] < 0 || t->byte_eow_id[b] < 0) {
      sf_diag_set(d, SF_ERR_BAD_MODEL, "%s: the vocabulary lacks the byte symbol for 0x%02X%s", what, b,
                  t->byte_id[b] < 0 ? "" : " with </w>");
      sf_tokenizer_free(t);
      return NULL;
    }
  }
  unsigned char sot[sizeof SOT_TEXT], eot[sizeof EOT_TEXT];
  memcpy(sot, SOT_TEXT, sizeof SOT_TEXT - 1);
  sot[sizeof SOT_TEXT - 1] = 0;
  memcpy(eot, EOT_TEXT, sizeof EOT_TEXT - 1);
  eot[sizeof EOT_TEXT - 1] = 0;
  t->bos = sym_find(t, sot, sizeof sot);
  t->eos = sym_find(t, eot, sizeof eot);
  if (t->bos < 0 || t->eos < 0) {
    sf_diag_set(d, SF_ERR_BAD_MODEL, "%s: the vocabulary has no %s token", what, t->bos < 0 ? SOT_TEXT : EOT_TEXT);
    sf_tokenizer_free(t);
    return NULL;
  }
  t->pair_cap = pow2_at_least(2 * CLIP_MAX_MERGES + 1);
  t->pairs = malloc(t->pair_cap * sizeof *t->pairs);
  if (t->pairs == NULL) goto oom;
  for (size_t i = 0; i < t->pair_cap; i++) t->pairs[i].key = UINT64_MAX;
  return t;
oom:
  sf_tokenizer_free(t);
  sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
  return NULL;
}

static int32_t lookup_token(const sf_tokenizer *t, const char *s, size_t len) {
  unsigned char stackbuf[256];
  unsigned char *buf = len + 1 <= sizeof stackbuf ? stackbuf : malloc(len + 1);
  if (buf == NULL) return -2;
  size_t klen;
  int32_t id = raw_key(s, len, t->cp_to_byte, buf, &klen) ? sym_find(t, buf, klen) : -1;
  if (buf != stackbuf) free(buf);
  return id;
}

/* Adds merge lines text[0..len), as "a b" per line; rank = line order. */
static sf_status add_merges(sf_tokenizer *t, const char *text, size_t len, size_t first_line_no, const char *what,
                            sf_diag *d) {
  size_t pos = 0, line_no = first_line_no;
  int32_t rank = 0;
  while (pos < len && rank < CLIP_MAX_MERGES) {
    size_t end = pos;
    while (end < len && text[end] != '\n') end++;
    const char *line = text + pos;
    size_t ll = end - pos;
    pos = end + 1;
    line_no++;
    /* Python's str.split(): fields separated by runs of ASCII whitespace. */
    const char *f[3];
    size_t fl[3];
    int nf = 0;
    size_t i = 0;
    while (i < ll) {
      while (i < ll && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r' || line[i] == '\f' || line[i] == '\v')) i++;
      if (i >= ll) break;
      size_t s = i;
      while (i < ll && !(line[i] == ' ' || line[i] == '\t' || line[i] == '\r' || line[i] == '\f' || line[i] == '\v')) i++;
      if (nf < 3) {
        f[nf] = line + s;
        fl[nf] = i - s;
      }
      nf++;
    }
    if (nf == 0 && pos >= len) break; /* trailing newline */
    if (nf != 2) {
      return sf_diag_set(d, SF_ERR_BAD_MODEL, "%s: line %zu: expected two symbols, found %d", what, line_no, nf);
    }
    int32_t a = lookup_token(t, f[0], fl[0]);
    int32_t b = lookup_token(t, f[1], fl[1]);
    /* The concatenation on the stack (symbols are short), on the heap only when longer. */
    char catbuf[256];
    char *cat = fl[0] + fl[1] < sizeof catbuf ? catbuf : malloc(fl[0] + fl[1] + 1);
    if (cat == NULL || a == -2 || b == -2) {
      if (cat != catbuf) free(cat);
      return sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
    }
    memcpy(cat, f[0], fl[0]);
    memcpy(cat + fl[0], f[1], fl[1]);
    int32_t m = lookup_token(t, cat, fl[0] + fl[1]);
    if (cat != catbuf) free(cat);
    if (a < 0 || b < 0 || m < 0) {
      const char *which = a < 0 ? f[0] : b < 0 ? f[1] : "their concatenation";
      int wl = (int)(a < 0 ? fl[0] : b < 0 ? fl[1] : strlen(which));
      return sf_diag_set(d, SF_ERR_BAD_MODEL, "%s: line %zu: merge symbol '%.*s' is not in the vocabulary", what,
                         line_no, wl > 64 ? 64 : wl, which);
    }
    pair_set(t, a, b, rank++, m);
  }
  return SF_OK;
}

/* The whole file (NUL-terminated) at path in fs; messages name it `shown`. */
static char *read_file(const sf_vfs *fs, const char *path, const char *shown, size_t max_bytes, size_t *len,
                       sf_diag *d) {
  int open_err = 0;
  sf_vfs_file *f = sf_vfs_open(fs, path, &open_err);
  if (f == NULL) {
    sf_diag_set(d, open_err == ENOMEM ? SF_ERR_OUT_OF_MEMORY : SF_ERR_IO, "%s: cannot open: %s", shown,
                strerror(open_err));
    return NULL;
  }
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap + 1);
  while (buf != NULL) {
    if (n == cap) {
      if (cap >= max_bytes) {
        free(buf);
        sf_vfs_close(f);
        sf_diag_set(d, SF_ERR_BAD_MODEL, "%s: larger than %zu bytes", shown, max_bytes);
        return NULL;
      }
      cap *= 2;
      char *nb = realloc(buf, cap + 1);
      if (nb == NULL) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = nb;
    }
    size_t r = sf_vfs_read(f, buf + n, cap - n);
    n += r;
    if (r == 0) break;
  }
  if (buf == NULL) {
    sf_vfs_close(f);
    sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "%s: out of memory", shown);
    return NULL;
  }
  if (sf_vfs_error(f)) {
    free(buf);
    sf_vfs_close(f);
    sf_diag_set(d, SF_ERR_IO, "%s: read error", shown);
    return NULL;
  }
  sf_vfs_close(f);
  buf[n] = 0;
  *len = n;
  return buf;
}

sf_tokenizer *sf_tokenizer_load_files(const char *vocab_json_path, const char *merges_txt_path, sf_diag *d) {
  return sf_tokenizer_load_files_vfs(sf_vfs_os(), vocab_json_path, merges_txt_path, d);
}

/* Messages name the files vocab_json_path / merges_txt_path (memory files after the label). */
static sf_tokenizer *load_files(const sf_vfs *fs, const char *vocab_path, const char *merges_path,
                                const char *vocab_json_path, const char *merges_txt_path, sf_diag *d) {
  sf_json_doc *doc = sf_json_parse_vfs(fs, vocab_path, vocab_json_path, (size_t)64 << 20, 0, d);
  if (doc == NULL) return NULL;
  const sf_json *root = sf_json_root(doc);
  if (root == NULL || root->type != SF_JSON_OBJECT || root->len == 0) {
    sf_json_free(doc);
    sf_diag_set(d, SF_ERR_BAD_MODEL, "%s: expected a non-empty object of token -> id", vocab_json_path);
    return NULL;
  }
  /* Ids must be distinct integers in [0, 2^24); the table is indexed by id. */
  int64_t max_id = -1;
  for (size_t i = 0; i < root->len; i++) {
    int64_t id;
    if (!sf_json_as_i64(&root->u.obj.values[i], &id) || id < 0 || id >= (1 << 24)) {
      sf_diag_set(d, SF_ERR_BAD_MODEL, "%s: token '%.64s': id is not an integer in [0, 2^24)", vocab_json_path,
                  root->u.obj.keys[i]);
      sf_json_free(doc);
      return NULL;
    }
    if (id > max_id) max_id = id;
  }
  size_t n_vocab = (size_t)max_id + 1;
  size_t mem_len = 0;
  for (size_t i = 0; i < root->len; i++) mem_len += root->u.obj.key_lens[i] + 1;
  char **tok = calloc(n_vocab, sizeof *tok);
  char *mem = malloc(mem_len);
  if (tok == NULL || mem == NULL) {
    free(tok);
    free(mem);
    sf_json_free(doc);
    sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "%s: out of memory", vocab_json_path);
    return NULL;
  }
  for (size_t i = 0, off = 0; i < root->len; i++) {
    int64_t id;
    sf_json_as_i64(&root->u.obj.values[i], &id);
    const char *k = root->u.obj.keys[i];
    size_t kl = root->u.obj.key_lens[i];
    if (tok[id] != NULL || memchr(k, 0, kl) != NULL) {
      sf_diag_set(d, SF_ERR_BAD_MODEL, "%s: token '%.64s': %s", vocab_json_path, k,
                  tok[id] != NULL ? "id used twice" : "contains NUL");
      free(tok);
      free(mem);
      sf_json_free(doc);
      return NULL;
    }
    tok[id] = mem + off;
    memcpy(tok[id], k, kl + 1);
    off += kl + 1;
  }
  sf_json_free(doc);
  sf_tokenizer *t = build_vocab(tok, mem, n_vocab, vocab_json_path, d);
  if (t == NULL) return NULL;
  size_t mlen;
  char *m = read_file(fs, merges_path, merges_txt_path, (size_t)64 << 20, &mlen, d);
  if (m == NULL) {
    sf_tokenizer_free(t);
    return NULL;
  }
  /* Skip the "#version: 0.2" header line (CLIPTokenizer skips line 0 unconditionally). */
  size_t p = 0;
  while (p < mlen && m[p] != '\n') p++;
  if (p < mlen) p++;
  sf_status st = add_merges(t, m + p, mlen - p, 1, merges_txt_path, d);
  free(m);
  if (st != SF_OK) {
    sf_tokenizer_free(t);
    return NULL;
  }
  return t;
}

sf_tokenizer *sf_tokenizer_load_files_vfs(const sf_vfs *fs, const char *vocab_json_path, const char *merges_txt_path,
                                          sf_diag *d) {
  if (vocab_json_path == NULL || merges_txt_path == NULL) {
    sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "tokenizer: NULL path");
    return NULL;
  }
  const char *label = sf_vfs_label(fs);
  char *v = malloc(strlen(label) + strlen(vocab_json_path) + 1);
  char *m = malloc(strlen(label) + strlen(merges_txt_path) + 1);
  sf_tokenizer *t = NULL;
  if (v == NULL || m == NULL) {
    sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
  } else {
    strcpy(v, label);
    strcat(v, vocab_json_path);
    strcpy(m, label);
    strcat(m, merges_txt_path);
    t = load_files(fs, vocab_json_path, merges_txt_path, v, m, d);
  }
  free(v);
  free(m);
  return t;
}

sf_tokenizer *sf_tokenizer_load_dir(const char *tokenizer_dir, sf_diag *d) {
  return sf_tokenizer_load_dir_vfs(sf_vfs_os(), tokenizer_dir, d);
}

sf_tokenizer *sf_tokenizer_load_dir_vfs(const sf_vfs *fs, const char *tokenizer_dir, sf_diag *d) {
  if (tokenizer_dir == NULL) {
    sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "tokenizer: NULL directory");
    return NULL;
  }
  char *v = sf_vfs_join(fs, tokenizer_dir, "vocab.json"), *m = sf_vfs_join(fs, tokenizer_dir, "merges.txt");
  if (v == NULL || m == NULL) {
    free(v);
    free(m);
    sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    return NULL;
  }
  sf_tokenizer *t = sf_tokenizer_load_files_vfs(fs, v, m, d);
  free(v);
  free(m);
  return t;
}

static char *gunzip(const char *path, const unsigned char *in, size_t in_len, size_t *out_len, sf_diag *d) {
  z_stream z;
  memset(&z, 0, sizeof z);
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
    sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "%s: zlib init failed", path);
    return NULL;
  }
  size_t cap = in_len * 4 + 1024, n = 0;
  char *out = malloc(cap + 1);
  z.next_in = (unsigned char *)in;
  z.avail_in = (uInt)in_len;
  int rc = Z_OK;
  while (out != NULL) {
    if (n == cap) {
      if (cap > ((size_t)256 << 20)) {
        free(out);
        inflateEnd(&z);
        sf_diag_set(d, SF_ERR_BAD_MODEL, "%s: decompresses to more than 256 MiB", path);
        return NULL;
      }
      cap *= 2;
      char *no = realloc(out, cap + 1);
      if (no == NULL) {
        free(out);
        out = NULL;
        break;
      }
      out = no;
    }
    z.next_out = (unsigned char *)out + n;
    z.avail_out = (uInt)(cap - n);
    rc = inflate(&z, Z_NO_FLUSH);
    n = cap - z.avail_out;
    if (rc == Z_STREAM_END) break;
    if (rc != Z_OK && !(rc == Z_BUF_ERROR && z.avail_out == 0)) break;
  }
  inflateEnd(&z);
  if (out == NULL) {
    sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    return NULL;
  }
  if (rc != Z_STREAM_END) {
    free(out);
    sf_diag_set(d, SF_ERR_BAD_MODEL, "%s: not a valid gzip stream (zlib %d)", path, rc);
    return NULL;
  }
  out[n] = 0;
  *out_len = n;
  return out;
}

/* Writes the UTF-8 of cps[0..n) and suffix, NUL-terminated, at s (room for n*4 + strlen(suffix)
 * + 1 bytes); returns the byte after the NUL. */
static char *utf8_of_cps(const uint32_t *cps, size_t n, const char *suffix, char *s) {
  size_t sl = suffix ? strlen(suffix) : 0;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    uint32_t c = cps[i];
    if (c < 0x80) {
      s[k++] = (char)c;
    } else if (c < 0x800) {
      s[k++] = (char)(0xC0 | (c >> 6));
      s[k++] = (char)(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
      s[k++] = (char)(0xE0 | (c >> 12));
      s[k++] = (char)(0x80 | ((c >> 6) & 0x3F));
      s[k++] = (char)(0x80 | (c & 0x3F));
    } else {
      s[k++] = (char)(0xF0 | (c >> 18));
      s[k++] = (char)(0x80 | ((c >> 12) & 0x3F));
      s[k++] = (char)(0x80 | ((c >> 6) & 0x3F));
      s[k++] = (char)(0x80 | (c & 0x3F));
    }
  }
  if (sl) memcpy(s + k, suffix, sl);
  s[k + sl] = 0;
  return s + k + sl + 1;
}

sf_tokenizer *sf_tokenizer_load_openai_gz(const char *bpe_gz_path, sf_diag *d) {
  if (bpe_gz_path == NULL) {
    sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "tokenizer: NULL path");
    return NULL;
  }
  size_t zlen;
  char *z = read_file(sf_vfs_os(), bpe_gz_path, bpe_gz_path, (size_t)64 << 20, &zlen, d);
  if (z == NULL) return NULL;
  size_t len;
  char *text = gunzip(bpe_gz_path, (const unsigned char *)z, zlen, &len, d);
  free(z);
  if (text == NULL) return NULL;
  /* Merge lines: lines[1 : 1 + 48894] of the file. */
  size_t p = 0;
  while (p < len && text[p] != '\n') p++;
  if (p < len) p++;
  size_t merges_start = p;
  size_t n_merges = 0;
  size_t *line_len = malloc(CLIP_MAX_MERGES * sizeof *line_len);
  if (line_len == NULL) {
    free(text);
    sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "%s: out of memory", bpe_gz_path);
    return NULL;
  }
  while (p < len && n_merges < CLIP_MAX_MERGES) {
    size_t e = p;
    while (e < len && text[e] != '\n') e++;
    line_len[n_merges] = e - p;
    n_merges++;
    p = e + 1;
  }
  size_t n_vocab = 512 + n_merges + 2;
  /* All token strings in one block: 256 byte symbols of at most 2 UTF-8 bytes, the same with
   * "</w>", the merge lines without their spaces, the two special tokens. */
  size_t mem_len = 256 * 3 + 256 * 7 + sizeof SOT_TEXT + sizeof EOT_TEXT;
  for (size_t i = 0; i < n_merges; i++) mem_len += line_len[i] + 1;
  char **tok = calloc(n_vocab, sizeof *tok);
  char *mem = malloc(mem_len), *at = mem;
  if (tok == NULL || mem == NULL) {
    free(tok);
    free(mem);
    free(line_len);
    free(text);
    sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "%s: out of memory", bpe_gz_path);
    return NULL;
  }
  uint32_t byte_to_cp[256];
  int16_t cp_to_byte[0x144];
  byte_unicode_tables(byte_to_cp, cp_to_byte);
  /* simple_tokenizer orders the byte symbols as bytes_to_unicode's dict: printable
   * bytes first, then the remapped ones. */
  size_t id = 0;
  for (int pass = 0; pass < 2; pass++) {
    for (int b = 0; b < 256; b++) {
      int printable = byte_to_cp[b] == (uint32_t)b;
      if (printable != (pass == 0)) continue;
      tok[id] = at;
      at = utf8_of_cps(&byte_to_cp[b], 1, NULL, at);
      tok[id + 256] = at;
      at = utf8_of_cps(&byte_to_cp[b], 1, "</w>", at);
      id++;
    }
  }
  p = merges_start;
  for (size_t i = 0; i < n_merges; i++) {
    const char *line = text + p;
    size_t ll = line_len[i];
    p += ll + 1;
    char *s = at;
    size_t k = 0;
    for (size_t j = 0; j < ll; j++) {
      char c = line[j];
      if (c != ' ' && c != '\t' && c != '\r' && c != '\f' && c != '\v') s[k++] = c;
    }
    s[k] = 0;
    tok[512 + i] = s;
    at = s + k + 1;
  }
  tok[512 + n_merges] = at;
  memcpy(at, SOT_TEXT, sizeof SOT_TEXT);
  at += sizeof SOT_TEXT;
  tok[512 + n_merges + 1] = at;
  memcpy(at, EOT_TEXT, sizeof EOT_TEXT);
  free(line_len);
  /* A merge result that equals an earlier token: Python's dict keeps the later id. */
  sf_tokenizer *t = build_vocab(tok, mem, n_vocab, bpe_gz_path, d);
  if (t == NULL) {
    free(text);
    return NULL;
  }
  sf_status st = add_merges(t, text + merges_start, p > merges_start ? p - merges_start - 1 : 0, 1, bpe_gz_path, d);
  free(text);
  if (st != SF_OK) {
    sf_tokenizer_free(t);
    return NULL;
  }
  return t;
}

const char *sf_tokenizer_token(const sf_tokenizer *t, int32_t id) {
  if (t == NULL || id < 0 || (size_t)id >= t->n_vocab) return NULL;
  return t->tok_str[id];
}

size_t sf_tokenizer_vocab_size(const sf_tokenizer *t) { return t ? t->n_vocab : 0; }
int32_t sf_tokenizer_bos(const sf_tokenizer *t) { return t ? t->bos : -1; }
int32_t sf_tokenizer_eos(const sf_tokenizer *t) { return t ? t->eos : -1; }

/* ---- encoding ---- */

typedef struct id_list {
  int32_t *v;
  size_t n, cap;
} id_list;

static sf_status ids_push(id_list *l, int32_t id) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 128;
    int32_t *v = realloc(l->v, cap * sizeof *v);
    if (v == NULL) return SF_ERR_OUT_OF_MEMORY;
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n++] = id;
  return SF_OK;
}

typedef struct heap_item {
  int32_t rank;
  uint32_t pos;
} heap_item;

static int heap_less(heap_item a, heap_item b) { return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos); }

static void heap_push(heap_item *h, size_t *n, heap_item x) {
  size_t i = (*n)++;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!heap_less(x, h[p])) break;
    h[i] = h[p];
    i = p;
  }
  h[i] = x;
}

static heap_item heap_pop(heap_item *h, size_t *n) {
  heap_item top = h[0], x = h[--(*n)];
  size_t i = 0;
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    heap_item best = x;
    if (l < *n && heap_less(h[l], best)) {
      m = l;
      best = h[l];
    }
    if (r < *n && heap_less(h[r], best)) m = r;
    if (m == i) break;
    h[i] = h[m];
    i = m;
  }
  if (*n) h[i] = x;
  return top;
}

typedef struct bpe_work {
  int32_t *sym;
  int32_t *prev, *next;
  heap_item *heap;
  size_t cap;
} bpe_work;

/* BPE of one pre-token's bytes: repeatedly merges the lowest-ranked adjacent pair
 * (leftmost first), which gives the same result as CLIP's whole-word loop. */
static sf_status bpe_word(const sf_tokenizer *t, const unsigned char *w, size_t n, bpe_work *wk, id_list *out) {
  if (n > wk->cap) {
    size_t cap = n * 2;
    int32_t *s = realloc(wk->sym, cap * sizeof *s);
    if (s) wk->sym = s;
    int32_t *p = realloc(wk->prev, cap * sizeof *p);
    if (p) wk->prev = p;
    int32_t *x = realloc(wk->next, cap * sizeof *x);
    if (x) wk->next = x;
    heap_item *h = realloc(wk->heap, 2 * cap * sizeof *h);
    if (h) wk->heap = h;
    if (!s || !p || !x || !h) return SF_ERR_OUT_OF_MEMORY;
    wk->cap = cap;
  }
  for (size_t i = 0; i < n; i++) {
    wk->sym[i] = i + 1 == n ? t->byte_eow_id[w[i]] : t->byte_id[w[i]];
    wk->prev[i] = (int32_t)i - 1;
    wk->next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
  }
  size_t hn = 0;
  for (size_t i = 0; i + 1 < n; i++) {
    const pair_slot *p = pair_find(t, wk->sym[i], wk->sym[i + 1]);
    if (p) heap_push(wk->heap, &hn, (heap_item){p->rank, (uint32_t)i});
  }
  /* Each merge removes a symbol and pushes at most 2 pairs, so the heap stays < 2n. */
  while (hn) {
    heap_item it = heap_pop(wk->heap, &hn);
    int32_t i = (int32_t)it.pos;
    if (wk->sym[i] < 0) continue;
    int32_t j = wk->next[i];
    if (j < 0) continue;
    const pair_slot *p = pair_find(t, wk->sym[i], wk->sym[j]);
    if (p == NULL || p->rank != it.rank) continue; /* stale entry */
    wk->sym[i] = p->merged;
    wk->sym[j] = -1;
    wk->next[i] = wk->next[j];
    if (wk->next[j] >= 0) wk->prev[wk->next[j]] = i;
    if (wk->prev[i] >= 0) {
      const pair_slot *q = pair_find(t, wk->sym[wk->prev[i]], wk->sym[i]);
      if (q) heap_push(wk->heap, &hn, (heap_item){q->rank, (uint32_t)wk->prev[i]});
    }
    if (wk->next[i] >= 0) {
      const pair_slot *q = pair_find(t, wk->sym[i], wk->sym[wk->next[i]]);
      if (q) heap_push(wk->heap, &hn, (heap_item){q->rank, (uint32_t)i});
    }
  }
  for (int32_t i = 0; i >= 0; i = wk->next[i]) {
    sf_status st = ids_push(out, wk->sym[i]);
    if (st != SF_OK) return st;
  }
  return SF_OK;
}

/* Case-insensitive literal match as CLIP's regex (re.IGNORECASE) does on lower-cased
 * text: the only non-ASCII simple case variant of these letters is U+017F for 's'. */
static int ci_match(const uint32_t *s, size_t n, size_t i, const char *lit) {
  for (size_t k = 0; lit[k]; k++) {
    if (i + k >= n) return 0;
    uint32_t c = s[i + k];
    if (c != (unsigned char)lit[k] && !(lit[k] == 's' && c == 0x17F)) return 0;
  }
  return 1;
}

static size_t utf8_put(uint32_t c, unsigned char *s) {
  if (c < 0x80) {
    s[0] = (unsigned char)c;
    return 1;
  }
  if (c < 0x800) {
    s[0] = (unsigned char)(0xC0 | (c >> 6));
    s[1] = (unsigned char)(0x80 | (c & 0x3F));
    return 2;
  }
  if (c < 0x10000) {
    s[0] = (unsigned char)(0xE0 | (c >> 12));
    s[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
    s[2] = (unsigned char)(0x80 | (c & 0x3F));
    return 3;
  }
  s[0] = (unsigned char)(0xF0 | (c >> 18));
  s[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3F));
  s[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
  s[3] = (unsigned char)(0x80 | (c & 0x3F));
  return 4;
}

/* [^\s\p{L}\p{N}] under IGNORECASE: U+0345 is excluded because its case variants
 * (U+0399, U+03B9) are letters, so it matches no alternative and is dropped. */
static int is_other(uint32_t c) {
  return !sf_uc_is_regex_space(c) && !sf_uc_is_letter(c) && !sf_uc_is_number(c) && c != 0x345;
}

/* CLIP's pre-tokenizer regex over s[0..n), BPE of every match, ids appended to out. */
static sf_status tokenize_clean(const sf_tokenizer *t, const uint32_t *s, size_t n, bpe_work *wk,
                                unsigned char **wbuf, size_t *wcap, id_list *out) {
  static const char *const contractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
  size_t i = 0;
  while (i < n) {
    uint32_t c = s[i];
    size_t end = i;
    if (c == '<' && ci_match(s, n, i, SOT_TEXT)) {
      end = i + sizeof SOT_TEXT - 1;
    } else if (c == '<' && ci_match(s, n, i, EOT_TEXT)) {
      end = i + sizeof EOT_TEXT - 1;
    } else if (c == '\'') {
      for (size_t k = 0; k < sizeof contractions / sizeof contractions[0] && end == i; k++) {
        if (ci_match(s, n, i, contractions[k])) end = i + strlen(contractions[k]);
      }
    }
    if (end == i) {
      if (sf_uc_is_letter(c)) {
        end = i + 1;
        while (end < n && sf_uc_is_letter(s[end])) end++;
      } else if (sf_uc_is_number(c)) {
        end = i + 1;
      } else if (is_other(c)) {
        end = i + 1;
        while (end < n && is_other(s[end])) end++;
      } else {
        i++;
        continue;
      }
    }
    size_t need = (end - i) * 4;
    if (need > *wcap) {
      unsigned char *nb = realloc(*wbuf, need * 2);
      if (nb == NULL) return SF_ERR_OUT_OF_MEMORY;
      *wbuf = nb;
      *wcap = need * 2;
    }
    size_t wl = 0;
    for (size_t k = i; k < end; k++) wl += utf8_put(s[k], *wbuf + wl);
    sf_status st;
    /* CLIP's BPE cache is pre-seeded with the two special tokens. */
    if (wl == sizeof SOT_TEXT - 1 && memcmp(*wbuf, SOT_TEXT, wl) == 0) {
      st = ids_push(out, t->bos);
    } else if (wl == sizeof EOT_TEXT - 1 && memcmp(*wbuf, EOT_TEXT, wl) == 0) {
      st = ids_push(out, t->eos);
    } else {
      st = bpe_word(t, *wbuf, wl, wk, out);
    }
    if (st != SF_OK) return st;
    i = end;
  }
  return SF_OK;
}

static int literal_at(const uint32_t *s, size_t n, size_t i, const char *lit) {
  size_t k = 0;
  for (; lit[k]; k++) {
    if (i + k >= n || s[i + k] != (unsigned char)lit[k]) return 0;
  }
  return 1;
}

/* The tokens of text[0..len) without BOS/EOS: *ids (malloc'ed, *n of them; NULL when n is 0). */
static sf_status tokenize(const sf_tokenizer *t, const char *text, size_t len, id_list *toks) {
  sf_cpbuf raw = {0}, fixed = {0}, clean = {0};
  bpe_work wk = {0};
  unsigned char *wbuf = NULL;
  size_t wcap = 0;
  sf_status st = sf_text_decode_utf8(text ? text : "", len, &raw);
  /* transformers splits on the added special tokens (exact text) before anything else
   * and cleans each remaining piece separately. */
  size_t start = 0;
  for (size_t i = 0; st == SF_OK && i <= raw.n; i++) {
    int32_t special = -1;
    size_t special_len = 0;
    if (i < raw.n && raw.v[i] == '<') {
      if (literal_at(raw.v, raw.n, i, SOT_TEXT)) {
        special = t->bos;
        special_len = sizeof SOT_TEXT - 1;
      } else if (literal_at(raw.v, raw.n, i, EOT_TEXT)) {
        special = t->eos;
        special_len = sizeof EOT_TEXT - 1;
      }
    }
    if (special < 0 && i < raw.n) continue;
    if (i > start) {
      st = sf_text_ftfy(raw.v + start, i - start, &fixed);
      if (st == SF_OK) st = sf_text_clip_clean_lower(fixed.v, fixed.n, &clean);
      if (st == SF_OK) st = tokenize_clean(t, clean.v, clean.n, &wk, &wbuf, &wcap, toks);
    }
    if (st == SF_OK && special >= 0) {
      st = ids_push(toks, special);
      i += special_len - 1;
    }
    start = i + 1;
  }
  sf_cpbuf_free(&raw);
  sf_cpbuf_free(&fixed);
  sf_cpbuf_free(&clean);
  free(wk.sym);
  free(wk.prev);
  free(wk.next);
  free(wk.heap);
  free(wbuf);
  return st;
}

sf_status sf_tokenizer_tokenize(const sf_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n,
                                sf_diag *d) {
  if (ids) *ids = NULL;
  if (n) *n = 0;
  if (t == NULL || ids == NULL || n == NULL || (text == NULL && len > 0))
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "tokenizer tokenize: NULL argument");
  id_list toks = {0};
  sf_status st = tokenize(t, text, len, &toks);
  if (st != SF_OK) {
    free(toks.v);
    return sf_diag_set(d, st, "tokenizer tokenize: out of memory");
  }
  *ids = toks.v;
  *n = toks.n;
  return SF_OK;
}

sf_status sf_tokenizer_encode(const sf_tokenizer *t, const char *text, size_t len, int32_t pad_id, int32_t *ids,
                              size_t max_len, size_t *n_untruncated, sf_diag *d) {
  if (t == NULL || ids == NULL || (text == NULL && len > 0) || max_len < 2) {
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "tokenizer encode: NULL argument or max_len < 2");
  }
  id_list toks = {0};
  sf_status st = tokenize(t, text, len, &toks);
  if (st == SF_OK) {
    size_t keep = toks.n < max_len - 2 ? toks.n : max_len - 2;
    ids[0] = t->bos;
    if (keep) memcpy(ids + 1, toks.v, keep * sizeof(int32_t));
    ids[keep + 1] = t->eos;
    for (size_t i = keep + 2; i < max_len; i++) ids[i] = pad_id;
    if (n_untruncated) *n_untruncated = toks.n + 2;
  }
  free(toks.v);
  if (st != SF_OK) return sf_diag_set(d, st, "tokenizer encode: out of memory");
  return SF_OK;
}
