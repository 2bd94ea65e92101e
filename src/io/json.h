/* A small strict JSON (RFC 8259) reader: configs, tokenizer vocabularies, safetensors
 * headers and fixture manifests. Input is untrusted: depth, size and UTF-8 are checked
 * and every failure is reported through sf_diag with a byte offset. */
#ifndef SF_IO_JSON_H
#define SF_IO_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "core/diag.h"
#include "io/vfs.h"

typedef enum sf_json_type {
  SF_JSON_NULL = 0,
  SF_JSON_BOOL,
  SF_JSON_NUMBER,
  SF_JSON_STRING,
  SF_JSON_ARRAY,
  SF_JSON_OBJECT
} sf_json_type;

typedef struct sf_json sf_json;

struct sf_json {
  sf_json_type type;
  size_t len;       /* string: bytes (no NUL counted); array/object: element count */
  union {
    int boolean;
    struct {
      double value;       /* nearest double */
      const char *text;   /* the literal as written (not NUL-terminated), for exact ints */
      size_t text_len;
    } num;
    const char *str;      /* decoded UTF-8, NUL-terminated (may contain NUL if \u0000) */
    sf_json *items;       /* array: items[0..len) */
    struct {
      const char **keys;      /* decoded, NUL-terminated */
      const size_t *key_lens;
      sf_json *values;
    } obj;                /* object: keys/values[0..len), in document order */
  } u;
};

/* Every node and string lives in one arena owned by the document. */
typedef struct sf_json_doc sf_json_doc;

/* Parses text[0..len). Rejects: trailing garbage, invalid UTF-8 (also inside strings),
 * lone surrogates in \u escapes, nesting deeper than 64, duplicate keys in one object,
 * control characters in strings, leading zeros, NaN/Infinity literals.
 * Returns NULL with d set (SF_ERR_BAD_MODEL for bad text, SF_ERR_OUT_OF_MEMORY). */
sf_json_doc *sf_json_parse(const char *text, size_t len, sf_diag *d);
/* Extensions, off by default. SF_JSON_ALLOW_NONFINITE: accept NaN, Infinity and -Infinity
 * as numbers, as Python's json module writes them (diffusers configs can hold -Infinity). */
enum { SF_JSON_ALLOW_NONFINITE = 1u };
sf_json_doc *sf_json_parse_ex(const char *text, size_t len, unsigned flags, sf_diag *d);
/* Reads and parses a whole file (SF_ERR_IO when unreadable; files over max_bytes are
 * refused). The message names the path. */
sf_json_doc *sf_json_parse_file(const char *path, size_t max_bytes, sf_diag *d);
/* Same, naming the file display_name in messages (e.g. relative to a model folder). */
sf_json_doc *sf_json_parse_file_as(const char *path, const char *display_name, size_t max_bytes,
                                   sf_diag *d);
sf_json_doc *sf_json_parse_file_ex(const char *path, const char *display_name, size_t max_bytes,
                                   unsigned flags, sf_diag *d);
/* Same, reading path from fs (sf_vfs_os() for the file system). display_name NULL names the
 * file by its path (a memory file by sf_vfs_label + path). */
sf_json_doc *sf_json_parse_vfs(const sf_vfs *fs, const char *path, const char *display_name, size_t max_bytes,
                               unsigned flags, sf_diag *d);
void sf_json_free(sf_json_doc *doc);
const sf_json *sf_json_root(const sf_json_doc *doc);

/* Object lookup; NULL if obj is not an object or has no such key. */
const sf_json *sf_json_get(const sf_json *obj, const char *key);
/* Same with an explicit key length (keys may contain NUL via \u0000). Linear in the
 * object's size: callers that look up many keys of a big object build their own index. */
const sf_json *sf_json_get_n(const sf_json *obj, const char *key, size_t key_len);
/* Array element; NULL if out of range or not an array. */
const sf_json *sf_json_at(const sf_json *arr, size_t index);

/* Exact conversions of a number node: fail (return 0) if not a number, not an integer
 * literal (a fraction or exponent that yields an integer, like 1e3 or 2.0, is accepted
 * when exact), or out of range. Return 1 on success. */
int sf_json_as_i64(const sf_json *num, int64_t *out);
int sf_json_as_u64(const sf_json *num, uint64_t *out);
/* 1 if v is a number (any), 0 otherwise. */
int sf_json_as_double(const sf_json *num, double *out);
/* NULL unless v is a string. */
const char *sf_json_as_string(const sf_json *v);
/* 1 if v is true, 0 if false; -1 if not a bool. */
int sf_json_as_bool(const sf_json *v);
int sf_json_is_null(const sf_json *v); /* also true for a NULL pointer */

#endif
