/* The JSON reader (io/json.h, internal: configs, vocabularies and safetensors headers all go
 * through it) on arbitrary bytes, strict and with SF_JSON_ALLOW_NONFINITE.
 *
 * Invariants: a document the strict reader accepts is accepted with the extension too; every
 * failure has a message; every node is well formed (strings NUL-terminated at their length,
 * object lookups find each key's own value, exact integer conversions agree with the double);
 * and writing the tree back as JSON (numbers as their literal text) and reading that again
 * gives the same tree. */
#include <math.h>

#include "fuzz_common.h"
#include "io/json.h"

typedef struct buf {
  char *p;
  size_t len, cap;
} buf;

static void put(buf *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) cap *= 2;
    char *np = realloc(b->p, cap);
    if (np == NULL) fz_die("out of memory");
    b->p = np;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}

static void put_string(buf *b, const char *s, size_t n) {
  put(b, "\"", 1);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      put(b, e, 2);
    } else if (c < 0x20) {
      char e[8];
      snprintf(e, sizeof e, "\\u%04x", c);
      put(b, e, 6);
    } else {
      put(b, (const char *)&c, 1);
    }
  }
  put(b, "\"", 1);
}

/* Checks v's invariants and writes it to b. */
static void walk(const sf_json *v, buf *b, int depth) {
  FZ_ASSERT(depth <= 64, "depth %d", depth);
  switch (v->type) {
    case SF_JSON_NULL:
      FZ_ASSERT(sf_json_is_null(v), "null");
      put(b, "null", 4);
      break;
    case SF_JSON_BOOL:
      FZ_ASSERT(sf_json_as_bool(v) == (v->u.boolean != 0), "bool");
      put(b, v->u.boolean ? "true" : "false", v->u.boolean ? 4 : 5);
      break;
    case SF_JSON_NUMBER: {
      double x = 0;
      FZ_ASSERT(sf_json_as_double(v, &x), "as_double");
      FZ_ASSERT(v->u.num.text != NULL && v->u.num.text_len > 0, "number literal");
      int64_t i;
      uint64_t u;
      /* The exact integer and the nearest double are both the literal's value rounded. */
      if (sf_json_as_i64(v, &i)) FZ_ASSERT((double)i == x, "i64 %lld vs %.17g", (long long)i, x);
      if (sf_json_as_u64(v, &u)) {
        FZ_ASSERT((double)u == x, "u64 %llu vs %.17g", (unsigned long long)u, x);
        if (sf_json_as_i64(v, &i) && i >= 0) FZ_ASSERT((uint64_t)i == u, "u64 %llu vs i64 %lld", (unsigned long long)u,
                                                       (long long)i);
      }
      put(b, v->u.num.text, v->u.num.text_len);
      break;
    }
    case SF_JSON_STRING:
      FZ_ASSERT(sf_json_as_string(v) == v->u.str && v->u.str[v->len] == '\0', "string not NUL-terminated");
      put_string(b, v->u.str, v->len);
      break;
    case SF_JSON_ARRAY:
      put(b, "[", 1);
      for (size_t k = 0; k < v->len; k++) {
        FZ_ASSERT(sf_json_at(v, k) == &v->u.items[k], "sf_json_at");
        if (k) put(b, ",", 1);
        walk(&v->u.items[k], b, depth + 1);
      }
      FZ_ASSERT(sf_json_at(v, v->len) == NULL, "sf_json_at past the end");
      put(b, "]", 1);
      break;
    case SF_JSON_OBJECT:
      put(b, "{", 1);
      for (size_t k = 0; k < v->len; k++) {
        const char *key = v->u.obj.keys[k];
        size_t kl = v->u.obj.key_lens[k];
        FZ_ASSERT(key[kl] == '\0', "key not NUL-terminated");
        /* Keys are unique: the lookup finds this very value (linear: only for small objects). */
        if (v->len <= 64) FZ_ASSERT(sf_json_get_n(v, key, kl) == &v->u.obj.values[k], "sf_json_get_n");
        if (k) put(b, ",", 1);
        put_string(b, key, kl);
        put(b, ":", 1);
        walk(&v->u.obj.values[k], b, depth + 1);
      }
      put(b, "}", 1);
      break;
    default:
      FZ_ASSERT(0, "node type %d", (int)v->type);
  }
}

/* Same shape and values (numbers by their literal text). */
static int same(const sf_json *a, const sf_json *b) {
  if (a->type != b->type || a->len != b->len) return 0;
  switch (a->type) {
    case SF_JSON_NULL: return 1;
    case SF_JSON_BOOL: return (a->u.boolean != 0) == (b->u.boolean != 0);
    case SF_JSON_NUMBER:
      return a->u.num.text_len == b->u.num.text_len && memcmp(a->u.num.text, b->u.num.text, a->u.num.text_len) == 0;
    case SF_JSON_STRING: return memcmp(a->u.str, b->u.str, a->len) == 0;
    case SF_JSON_ARRAY:
      for (size_t k = 0; k < a->len; k++)
        if (!same(&a->u.items[k], &b->u.items[k])) return 0;
      return 1;
    case SF_JSON_OBJECT:
      for (size_t k = 0; k < a->len; k++)
        if (a->u.obj.key_lens[k] != b->u.obj.key_lens[k] ||
            memcmp(a->u.obj.keys[k], b->u.obj.keys[k], a->u.obj.key_lens[k]) != 0 ||
            !same(&a->u.obj.values[k], &b->u.obj.values[k]))
          return 0;
      return 1;
  }
  return 0;
}

static sf_json_doc *parse(const uint8_t *data, size_t size, unsigned flags) {
  sf_diag d = {0};
  sf_json_doc *doc = sf_json_parse_ex((const char *)data, size, flags, &d);
  if (doc == NULL) {
    FZ_ASSERT(d.status != SF_OK && d.status != SF_ERR_INTERNAL, "status %d", (int)d.status);
    FZ_ASSERT(d.msg[0] != '\0', "a failure without a message");
  } else {
    FZ_ASSERT(d.status == SF_OK, "success with status %d", (int)d.status);
    FZ_ASSERT(sf_json_root(doc) != NULL, "no root");
  }
  return doc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  sf_json_doc *strict = parse(data, size, 0);
  sf_json_doc *ext = parse(data, size, SF_JSON_ALLOW_NONFINITE);
  if (strict != NULL) FZ_ASSERT(ext != NULL, "the extension refuses a strict document");
  if (ext != NULL) {
    buf b = {0};
    walk(sf_json_root(ext), &b, 0);
    if (strict != NULL) FZ_ASSERT(same(sf_json_root(strict), sf_json_root(ext)), "strict and extended trees differ");
    sf_json_doc *again = parse((const uint8_t *)b.p, b.len, SF_JSON_ALLOW_NONFINITE);
    FZ_ASSERT(again != NULL, "the tree written back does not parse: %.200s", b.p);
    FZ_ASSERT(same(sf_json_root(ext), sf_json_root(again)), "the tree written back reads differently");
    sf_json_free(again);
    free(b.p);
  }
  sf_json_free(strict);
  sf_json_free(ext);
  return 0;
}
