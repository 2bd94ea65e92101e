#define _POSIX_C_SOURCE 200809L /* strdup */
#include "io/safetensors.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/json.h"

/* Tensor data is little-endian and read with plain memcpy loads. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

/* A header beyond this is not a plausible tensor table; refusing it bounds the JSON work. */
#define SF_ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)

struct sf_safetensors {
  char *path;
  char *name; /* used in messages */
  sf_vfs_map map; /* the file's bytes (cleared for sf_st_open_memory's borrowed buffer) */
  const unsigned char *base;
  size_t size;
  sf_json_doc *header;
  const sf_json *metadata;
  sf_st_tensor *tensors; /* sorted by name */
  size_t n;
};

static const struct {
  const char *name;
  size_t size;
} dtype_info[SF_DTYPE_COUNT] = {
    [SF_DTYPE_F32] = {"F32", 4},  [SF_DTYPE_F16] = {"F16", 2}, [SF_DTYPE_BF16] = {"BF16", 2},
    [SF_DTYPE_F64] = {"F64", 8},  [SF_DTYPE_I64] = {"I64", 8}, [SF_DTYPE_I32] = {"I32", 4},
    [SF_DTYPE_I16] = {"I16", 2},  [SF_DTYPE_I8] = {"I8", 1},   [SF_DTYPE_U8] = {"U8", 1},
    [SF_DTYPE_BOOL] = {"BOOL", 1},
};

size_t sf_dtype_size(sf_dtype dt) {
  return (unsigned)dt < SF_DTYPE_COUNT ? dtype_info[dt].size : 0;
}

const char *sf_dtype_name(sf_dtype dt) {
  return (unsigned)dt < SF_DTYPE_COUNT ? dtype_info[dt].name : "?";
}

/* ---- validation ------------------------------------------------------------------------- */

typedef struct span {
  uint64_t begin, end;
  size_t index;
} span;

static int cmp_span(const void *a, const void *b) {
  const span *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return 0;
}

static int cmp_tensor_name(const void *a, const void *b) {
  return strcmp(((const sf_st_tensor *)a)->name, ((const sf_st_tensor *)b)->name);
}

static sf_status bad(sf_diag *d, const sf_safetensors *st, const char *tensor, const char *what,
                     sf_status status) {
  if (tensor)
    return sf_diag_set(d, status, "file %s: tensor \"%s\": %s", st->name, tensor, what);
  return sf_diag_set(d, status, "file %s: %s", st->name, what);
}

static sf_status parse_tensor(sf_safetensors *st, const char *name, const sf_json *v,
                              uint64_t data_size, sf_st_tensor *t, span *sp, sf_diag *d) {
  char msg[256];
  if (v->type != SF_JSON_OBJECT)
    return bad(d, st, name, "header entry is not an object", SF_ERR_BAD_MODEL);
  const sf_json *jdt = NULL, *jshape = NULL, *joff = NULL;
  for (size_t i = 0; i < v->len; i++) {
    const char *k = v->u.obj.keys[i];
    size_t kl = v->u.obj.key_lens[i];
    if (kl == 5 && memcmp(k, "dtype", 5) == 0) jdt = &v->u.obj.values[i];
    else if (kl == 5 && memcmp(k, "shape", 5) == 0) jshape = &v->u.obj.values[i];
    else if (kl == 12 && memcmp(k, "data_offsets", 12) == 0) joff = &v->u.obj.values[i];
    else {
      snprintf(msg, sizeof msg, "unexpected key \"%.64s\" (allowed: dtype, shape, data_offsets)",
               k);
      return bad(d, st, name, msg, SF_ERR_BAD_MODEL);
    }
  }
  if (jdt == NULL || jshape == NULL || joff == NULL) {
    snprintf(msg, sizeof msg, "missing \"%s\"",
             jdt == NULL ? "dtype" : jshape == NULL ? "shape" : "data_offsets");
    return bad(d, st, name, msg, SF_ERR_BAD_MODEL);
  }
  const char *dts = sf_json_as_string(jdt);
  if (dts == NULL) return bad(d, st, name, "dtype is not a string", SF_ERR_BAD_MODEL);
  int dt = -1;
  for (int i = 0; i < SF_DTYPE_COUNT; i++)
    if (strcmp(dts, dtype_info[i].name) == 0 && jdt->len == strlen(dtype_info[i].name)) dt = i;
  if (dt < 0) {
    snprintf(msg, sizeof msg, "unsupported dtype \"%.32s\"", dts);
    return bad(d, st, name, msg, SF_ERR_UNSUPPORTED);
  }
  t->name = name;
  t->dtype = (sf_dtype)dt;
  if (jshape->type != SF_JSON_ARRAY)
    return bad(d, st, name, "shape is not an array", SF_ERR_BAD_MODEL);
  if (jshape->len > SF_ST_MAX_DIMS) {
    snprintf(msg, sizeof msg, "shape has %zu dimensions (at most %d are supported)", jshape->len,
             SF_ST_MAX_DIMS);
    return bad(d, st, name, msg, SF_ERR_UNSUPPORTED);
  }
  t->ndim = (int)jshape->len;
  uint64_t numel = 1;
  int overflow = 0;
  for (size_t i = 0; i < jshape->len; i++) {
    int64_t dim;
    if (!sf_json_as_i64(&jshape->u.items[i], &dim)) {
      snprintf(msg, sizeof msg, "shape[%zu] is not an integer", i);
      return bad(d, st, name, msg, SF_ERR_BAD_MODEL);
    }
    if (dim < 0) {
      snprintf(msg, sizeof msg, "shape[%zu] is negative (%lld)", i, (long long)dim);
      return bad(d, st, name, msg, SF_ERR_BAD_MODEL);
    }
    t->shape[i] = dim;
    if (__builtin_mul_overflow(numel, (uint64_t)dim, &numel)) overflow = 1;
  }
  /* Overflow is judged in dimension order, as the reference implementation does, even if a
   * later zero dimension would make the true product 0. */
  uint64_t nbytes;
  if (overflow || __builtin_mul_overflow(numel, (uint64_t)dtype_info[dt].size, &nbytes))
    return bad(d, st, name, "shape product overflows 64 bits", SF_ERR_BAD_MODEL);
  t->numel = numel;
  t->nbytes = nbytes;
  uint64_t b, e;
  if (joff->type != SF_JSON_ARRAY || joff->len != 2)
    return bad(d, st, name, "data_offsets is not a [begin, end] array", SF_ERR_BAD_MODEL);
  if (!sf_json_as_u64(&joff->u.items[0], &b) || !sf_json_as_u64(&joff->u.items[1], &e))
    return bad(d, st, name, "data_offsets are not non-negative integers", SF_ERR_BAD_MODEL);
  if (e < b) {
    snprintf(msg, sizeof msg, "data_offsets [%llu, %llu] end before they begin",
             (unsigned long long)b, (unsigned long long)e);
    return bad(d, st, name, msg, SF_ERR_BAD_MODEL);
  }
  if (e > data_size) {
    snprintf(msg, sizeof msg, "data_offsets [%llu, %llu] run past the data section (%llu bytes)",
             (unsigned long long)b, (unsigned long long)e, (unsigned long long)data_size);
    return bad(d, st, name, msg, SF_ERR_BAD_MODEL);
  }
  if (e - b != nbytes) {
    snprintf(msg, sizeof msg,
             "data_offsets [%llu, %llu] span %llu bytes but %s shape needs %llu",
             (unsigned long long)b, (unsigned long long)e, (unsigned long long)(e - b),
             dtype_info[dt].name, (unsigned long long)nbytes);
    return bad(d, st, name, msg, SF_ERR_BAD_MODEL);
  }
  sp->begin = b;
  sp->end = e;
  return SF_OK;
}

static sf_status validate(sf_safetensors *st, sf_diag *d) {
  char msg[320];
  if (st->size < 8) {
    snprintf(msg, sizeof msg, "%zu bytes, too short for the 8-byte header length", st->size);
    return bad(d, st, NULL, msg, SF_ERR_BAD_MODEL);
  }
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | st->base[i];
  if (hlen > SF_ST_MAX_HEADER) {
    snprintf(msg, sizeof msg, "header length %llu is absurd (limit %llu bytes)",
             (unsigned long long)hlen, (unsigned long long)SF_ST_MAX_HEADER);
    return bad(d, st, NULL, msg, SF_ERR_BAD_MODEL);
  }
  if (hlen > st->size - 8) {
    snprintf(msg, sizeof msg, "header length %llu runs past the end of the file (%zu bytes)",
             (unsigned long long)hlen, st->size);
    return bad(d, st, NULL, msg, SF_ERR_BAD_MODEL);
  }
  st->header = sf_json_parse((const char *)st->base + 8, (size_t)hlen, d);
  if (st->header == NULL) {
    sf_diag_prefix(d, "file %s: header: ", st->name);
    return d ? d->status : SF_ERR_BAD_MODEL;
  }
  const sf_json *root = sf_json_root(st->header);
  if (root->type != SF_JSON_OBJECT) return bad(d, st, NULL, "header is not a JSON object",
                                                 SF_ERR_BAD_MODEL);
  uint64_t data_size = (uint64_t)(st->size - 8 - (size_t)hlen);
  const unsigned char *data = st->base + 8 + hlen;
  size_t n = 0;
  for (size_t i = 0; i < root->len; i++) {
    if (strcmp(root->u.obj.keys[i], "__metadata__") != 0 || root->u.obj.key_lens[i] != 12) n++;
  }
  st->tensors = calloc(n ? n : 1, sizeof *st->tensors);
  span *spans = calloc(n ? n : 1, sizeof *spans);
  if (st->tensors == NULL || spans == NULL) {
    free(spans);
    return sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "file %s: out of memory for %zu tensors",
                       st->name, n);
  }
  sf_status s = SF_OK;
  size_t k = 0;
  for (size_t i = 0; i < root->len && s == SF_OK; i++) {
    const char *key = root->u.obj.keys[i];
    size_t kl = root->u.obj.key_lens[i];
    const sf_json *v = &root->u.obj.values[i];
    if (kl == 12 && memcmp(key, "__metadata__", 12) == 0) {
      if (v->type != SF_JSON_OBJECT) {
        s = bad(d, st, NULL, "__metadata__ is not an object", SF_ERR_BAD_MODEL);
        break;
      }
      for (size_t j = 0; j < v->len; j++) {
        if (v->u.obj.values[j].type != SF_JSON_STRING) {
          snprintf(msg, sizeof msg, "__metadata__ value of \"%.64s\" is not a string",
                   v->u.obj.keys[j]);
          s = bad(d, st, NULL, msg, SF_ERR_BAD_MODEL);
          break;
        }
      }
      st->metadata = v;
      continue;
    }
    if (strlen(key) != kl) {
      s = bad(d, st, NULL, "a tensor name contains a NUL character", SF_ERR_BAD_MODEL);
      break;
    }
    spans[k].index = k;
    s = parse_tensor(st, key, v, data_size, &st->tensors[k], &spans[k], d);
    k++;
  }
  if (s == SF_OK) {
    /* Like the reference implementation: sorted by offset, the tensors must cover the data
     * section exactly, so no byte is shared or unaccounted for. */
    qsort(spans, n, sizeof *spans, cmp_span);
    uint64_t expect = 0;
    for (size_t i = 0; i < n && s == SF_OK; i++) {
      const char *cur = st->tensors[spans[i].index].name;
      const char *prev = i ? st->tensors[spans[i - 1].index].name : NULL;
      if (spans[i].begin < expect) {
        snprintf(msg, sizeof msg, "overlaps tensor \"%.100s\" (bytes %llu..%llu vs %llu..%llu)",
                 prev, (unsigned long long)spans[i].begin, (unsigned long long)spans[i].end,
                 (unsigned long long)spans[i - 1].begin, (unsigned long long)spans[i - 1].end);
        s = bad(d, st, cur, msg, SF_ERR_BAD_MODEL);
      } else if (spans[i].begin > expect) {
        if (prev)
          snprintf(msg, sizeof msg,
                   "hole of %llu bytes in the data section between tensor \"%.100s\" (ends at "
                   "%llu) and this tensor (begins at %llu)",
                   (unsigned long long)(spans[i].begin - expect), prev,
                   (unsigned long long)expect, (unsigned long long)spans[i].begin);
        else
          snprintf(msg, sizeof msg,
                   "hole of %llu bytes at the start of the data section (first tensor begins "
                   "at %llu)",
                   (unsigned long long)spans[i].begin, (unsigned long long)spans[i].begin);
        s = bad(d, st, cur, msg, SF_ERR_BAD_MODEL);
      }
      expect = spans[i].end;
    }
    if (s == SF_OK && expect != data_size) {
      snprintf(msg, sizeof msg,
               "hole at the end of the data section: %llu bytes after the last tensor%s%.100s%s",
               (unsigned long long)(data_size - expect), n ? " (\"" : "",
               n ? st->tensors[spans[n - 1].index].name : "", n ? "\")" : "");
      s = bad(d, st, NULL, msg, SF_ERR_BAD_MODEL);
    }
    for (size_t i = 0; i < n && s == SF_OK; i++)
      st->tensors[spans[i].index].data = data + spans[i].begin;
  }
  free(spans);
  if (s != SF_OK) return s;
  st->n = n;
  qsort(st->tensors, n, sizeof *st->tensors, cmp_tensor_name);
  return SF_OK;
}

/* ---- open / close ----------------------------------------------------------------------- */

static sf_safetensors *st_new(const char *path, const char *name, sf_diag *d) {
  sf_safetensors *st = calloc(1, sizeof *st);
  if (st != NULL) {
    st->path = strdup(path ? path : "");
    st->name = strdup(name ? name : (path ? path : "<memory>"));
  }
  if (st == NULL || st->path == NULL || st->name == NULL) {
    sf_st_close(st);
    sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "out of memory opening %s", name ? name : "safetensors");
    return NULL;
  }
  return st;
}

sf_safetensors *sf_st_open_memory(const void *data, size_t size, const char *name, sf_diag *d) {
  sf_safetensors *st = st_new(name ? name : "<memory>", name, d);
  if (st == NULL) return NULL;
  st->base = data;
  st->size = data ? size : 0;
  if (validate(st, d) != SF_OK) {
    sf_st_close(st);
    return NULL;
  }
  return st;
}

sf_safetensors *sf_st_open_as(const char *path, const char *display_name, sf_diag *d) {
  return sf_st_open_vfs(sf_vfs_os(), path, display_name, d);
}

sf_safetensors *sf_st_open_vfs(const sf_vfs *fs, const char *path, const char *display_name, sf_diag *d) {
  char label_path[4200]; /* a memory file is named by its path after the label */
  if (display_name == NULL && sf_vfs_is_memory(fs)) {
    snprintf(label_path, sizeof label_path, "%s%.4000s", sf_vfs_label(fs), path);
    display_name = label_path;
  }
  const char *shown = display_name ? display_name : path;
  sf_vfs_map m;
  int err;
  switch (sf_vfs_map_file(fs, path, &m, &err)) {
    case SF_VFS_MAPPED: break;
    case SF_VFS_MAP_OPEN_FAILED:
      sf_diag_set(d, err == ENOMEM ? SF_ERR_OUT_OF_MEMORY : SF_ERR_IO, "file %s: cannot open: %s", shown,
                  strerror(err));
      return NULL;
    case SF_VFS_MAP_NOT_REGULAR:
      sf_diag_set(d, SF_ERR_IO, "file %s: not a regular file", shown);
      return NULL;
    case SF_VFS_MAP_TOO_LARGE:
      sf_diag_set(d, SF_ERR_IO, "file %s: too large to map", shown);
      return NULL;
    case SF_VFS_MAP_FAILED:
    default:
      sf_diag_set(d, err == ENOMEM ? SF_ERR_OUT_OF_MEMORY : SF_ERR_IO, "file %s: cannot map %zu bytes: %s", shown,
                  m.size, strerror(err));
      return NULL;
  }
  sf_safetensors *st = st_new(path, shown, d);
  if (st == NULL) {
    sf_vfs_unmap(&m);
    return NULL;
  }
  st->map = m;
  st->base = m.data;
  st->size = m.size;
  if (validate(st, d) != SF_OK) {
    sf_st_close(st);
    return NULL;
  }
  return st;
}

sf_safetensors *sf_st_open(const char *path, sf_diag *d) { return sf_st_open_as(path, path, d); }

void sf_st_close(sf_safetensors *st) {
  if (st == NULL) return;
  sf_vfs_unmap(&st->map);
  sf_json_free(st->header);
  free(st->tensors);
  free(st->path);
  free(st->name);
  free(st);
}

size_t sf_st_count(const sf_safetensors *st) { return st ? st->n : 0; }

const sf_st_tensor *sf_st_tensor_at(const sf_safetensors *st, size_t index) {
  return st && index < st->n ? &st->tensors[index] : NULL;
}

const sf_st_tensor *sf_st_find(const sf_safetensors *st, const char *name) {
  if (st == NULL || name == NULL) return NULL;
  size_t lo = 0, hi = st->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(st->tensors[mid].name, name);
    if (c == 0) return &st->tensors[mid];
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}

const char *sf_st_metadata(const sf_safetensors *st, const char *key) {
  if (st == NULL) return NULL;
  return sf_json_as_string(sf_json_get(st->metadata, key));
}

const char *sf_st_path(const sf_safetensors *st) { return st ? st->path : NULL; }

const char *sf_st_name(const sf_safetensors *st) { return st ? st->name : NULL; }

/* ---- conversions ------------------------------------------------------------------------ */

static float bits_to_f32(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

float sf_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1F;
  uint32_t man = h & 0x3FF;
  if (exp == 0) {
    if (man == 0) return bits_to_f32(sign);
    /* Subnormal: renormalise so the leading 1 becomes the implicit bit. */
    int e = -1;
    do {
      man <<= 1;
      e++;
    } while ((man & 0x400) == 0);
    return bits_to_f32(sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3FF) << 13));
  }
  if (exp == 31) return bits_to_f32(sign | 0x7F800000u | (man << 13));
  return bits_to_f32(sign | ((exp + 127 - 15) << 23) | (man << 13));
}

float sf_bf16_to_f32(uint16_t h) { return bits_to_f32((uint32_t)h << 16); }

uint16_t sf_f32_to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
  x &= 0x7FFFFFFFu;
  if (x >= 0x7F800000u) {
    if (x == 0x7F800000u) return sign | 0x7C00;
    return sign | 0x7E00 | (uint16_t)((x >> 13) & 0x3FF); /* NaN stays NaN (quiet) */
  }
  if (x >= 0x477FF000u) return sign | 0x7C00; /* >= 65520 rounds to infinity */
  if (x < 0x38800000u) {                       /* below 2^-14: subnormal or zero */
    if (x <= 0x33000000u) return sign;         /* <= 2^-25 (the tie rounds to even 0) */
    uint32_t e = x >> 23;
    uint32_t m = (x & 0x7FFFFF) | 0x800000;
    uint32_t shift = 126 - e;
    uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1))) r++;
    return sign | (uint16_t)r;
  }
  uint32_t h = ((x >> 23) - 112) << 10 | ((x >> 13) & 0x3FF);
  uint32_t rem = x & 0x1FFF;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
  return sign | (uint16_t)h;
}

static float f64_to_f32(double v) {
  /* Out-of-range double->float conversion is undefined in C; round by hand at the edge. */
  if (v > FLT_MAX) return v < 0x1.ffffffp127 ? FLT_MAX : INFINITY;
  if (v < -FLT_MAX) return v > -0x1.ffffffp127 ? -FLT_MAX : -INFINITY;
  return (float)v;
}

void sf_st_to_f32_range(const sf_st_tensor *t, float *out, size_t begin, size_t end) {
  const unsigned char *p = t->data;
  switch (t->dtype) {
    case SF_DTYPE_F32: memcpy(out + begin, p + 4 * begin, (end - begin) * 4); break;
    case SF_DTYPE_F16:
      for (size_t i = begin; i < end; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        out[i] = sf_f16_to_f32(h);
      }
      break;
    case SF_DTYPE_BF16:
      for (size_t i = begin; i < end; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        out[i] = sf_bf16_to_f32(h);
      }
      break;
    case SF_DTYPE_F64:
      for (size_t i = begin; i < end; i++) {
        double v;
        memcpy(&v, p + 8 * i, 8);
        out[i] = f64_to_f32(v);
      }
      break;
    case SF_DTYPE_I64:
      for (size_t i = begin; i < end; i++) {
        int64_t v;
        memcpy(&v, p + 8 * i, 8);
        out[i] = (float)v;
      }
      break;
    case SF_DTYPE_I32:
      for (size_t i = begin; i < end; i++) {
        int32_t v;
        memcpy(&v, p + 4 * i, 4);
        out[i] = (float)v;
      }
      break;
    case SF_DTYPE_I16:
      for (size_t i = begin; i < end; i++) {
        int16_t v;
        memcpy(&v, p + 2 * i, 2);
        out[i] = (float)v;
      }
      break;
    case SF_DTYPE_I8:
      for (size_t i = begin; i < end; i++) out[i] = (float)(int8_t)p[i];
      break;
    case SF_DTYPE_U8:
      for (size_t i = begin; i < end; i++) out[i] = (float)p[i];
      break;
    case SF_DTYPE_BOOL:
      for (size_t i = begin; i < end; i++) out[i] = p[i] ? 1.0f : 0.0f;
      break;
    default: break;
  }
}

void sf_st_to_f32(const sf_st_tensor *t, float *out) { sf_st_to_f32_range(t, out, 0, (size_t)t->numel); }

int sf_st_to_i64(const sf_st_tensor *t, int64_t *out) {
  const unsigned char *p = t->data;
  size_t n = (size_t)t->numel;
  switch (t->dtype) {
    case SF_DTYPE_I64: memcpy(out, p, n * 8); return 0;
    case SF_DTYPE_I32:
      for (size_t i = 0; i < n; i++) {
        int32_t v;
        memcpy(&v, p + 4 * i, 4);
        out[i] = v;
      }
      return 0;
    case SF_DTYPE_I16:
      for (size_t i = 0; i < n; i++) {
        int16_t v;
        memcpy(&v, p + 2 * i, 2);
        out[i] = v;
      }
      return 0;
    case SF_DTYPE_I8:
      for (size_t i = 0; i < n; i++) out[i] = (int8_t)p[i];
      return 0;
    case SF_DTYPE_U8:
      for (size_t i = 0; i < n; i++) out[i] = p[i];
      return 0;
    case SF_DTYPE_BOOL:
      for (size_t i = 0; i < n; i++) out[i] = p[i] ? 1 : 0;
      return 0;
    default: return -1;
  }
}

void sf_st_drop_pages(const sf_safetensors *st) {
  if (st != NULL) sf_vfs_drop_pages(&st->map);
}
