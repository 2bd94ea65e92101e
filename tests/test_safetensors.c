#define _POSIX_C_SOURCE 200809L
#include <float.h>
#include <stdint.h>
#include <unistd.h>

#include "io/safetensors.h"
#include "test.h"

static sf_diag diag;

/* ---- building files in memory ----------------------------------------------------------- */

typedef struct blob {
  unsigned char *p;
  size_t n;
} blob;

/* 8-byte little-endian header length field (hlen), then header text, then data. */
static blob make_raw(uint64_t hlen, const char *header, const void *data, size_t data_len) {
  size_t hl = strlen(header);
  blob b;
  b.n = 8 + hl + data_len;
  b.p = malloc(b.n ? b.n : 1);
  for (int i = 0; i < 8; i++) b.p[i] = (unsigned char)(hlen >> (8 * i));
  memcpy(b.p + 8, header, hl);
  if (data_len) memcpy(b.p + 8 + hl, data, data_len);
  return b;
}

static blob make(const char *header, const void *data, size_t data_len) {
  return make_raw(strlen(header), header, data, data_len);
}

static sf_safetensors *open_blob(blob b) {
  sf_diag_clear(&diag);
  return sf_st_open_memory(b.p, b.n, "mem.safetensors", &diag);
}

/* Asserts the header + data is rejected with status and a message containing each needle. */
static void reject(const char *header, size_t data_len, sf_status status, const char *needle1,
                   const char *needle2, int line) {
  unsigned char zeros[64] = {0};
  blob b = make(header, zeros, data_len);
  sf_safetensors *st = open_blob(b);
  CHECK_MSG(st == NULL, "line %d: accepted", line);
  sf_st_close(st);
  CHECK_MSG(diag.status == status, "line %d: status %d (%s)", line, (int)diag.status, diag.msg);
  CHECK_MSG(strstr(diag.msg, "mem.safetensors") != NULL, "line %d: no file name in '%s'", line,
            diag.msg);
  CHECK_MSG(strstr(diag.msg, needle1) != NULL, "line %d: '%s' lacks '%s'", line, diag.msg,
            needle1);
  if (needle2)
    CHECK_MSG(strstr(diag.msg, needle2) != NULL, "line %d: '%s' lacks '%s'", line, diag.msg,
              needle2);
  free(b.p);
}

#define REJECT(h, n, st, a, b) reject(h, n, st, a, b, __LINE__)

/* A file with one tensor of every dtype laid out back to back. */
static blob make_good(void) {
  unsigned char data[256];
  size_t off = 0;
  char header[2048];
  int hn = snprintf(header, sizeof header, "{\"__metadata__\":{\"format\":\"pt\"}");
#define ADD(name, dtype, shape, ...)                                                          \
  do {                                                                                        \
    size_t size_ = sizeof(__VA_ARGS__);                                                       \
    memcpy(data + off, (__VA_ARGS__), size_);                                                 \
    hn += snprintf(header + hn, sizeof header - (size_t)hn,                                   \
                   ",\"%s\":{\"dtype\":\"%s\",\"shape\":%s,\"data_offsets\":[%zu,%zu]}", name, \
                   dtype, shape, off, off + size_);                                           \
    off += size_;                                                                             \
  } while (0)
  ADD("f32", "F32", "[2,2]", ((float[]){1.5f, -2.0f, 0.0f, 3.25f}));
  ADD("f16", "F16", "[3]", ((uint16_t[]){0x3C00, 0xC000, 0x0001}));
  ADD("bf16", "BF16", "[2]", ((uint16_t[]){0x3F80, 0xC0A0}));
  ADD("f64", "F64", "[1,2]", ((double[]){0.1, -3.0}));
  ADD("i64", "I64", "[2]", ((int64_t[]){-5, (int64_t)1 << 40}));
  ADD("i32", "I32", "[2]", ((int32_t[]){-7, 100000}));
  ADD("i16", "I16", "[2]", ((int16_t[]){-300, 300}));
  ADD("i8", "I8", "[2]", ((int8_t[]){-128, 127}));
  ADD("u8", "U8", "[2]", ((uint8_t[]){0, 255}));
  ADD("bool", "BOOL", "[2]", ((uint8_t[]){0, 1}));
  ADD("scalar", "F32", "[]", ((float[]){42.0f}));
#undef ADD
  /* an empty tensor takes no bytes: begin == end */
  hn += snprintf(header + hn, sizeof header - (size_t)hn,
                 ",\"empty\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[%zu,%zu]}", off,
                 off);
  /* odd padding so the data section (and every tensor) starts unaligned */
  hn += snprintf(header + hn, sizeof header - (size_t)hn, "}%s", (hn + 1) % 2 ? "" : " ");
  return make(header, data, off);
}

static void test_good(void) {
  blob b = make_good();
  sf_safetensors *st = open_blob(b);
  CHECK_MSG(st != NULL, "%s", diag.msg);
  if (st == NULL) {
    free(b.p);
    return;
  }
  CHECK_EQ_INT(sf_st_count(st), 12);
  for (size_t i = 1; i < sf_st_count(st); i++)
    CHECK(strcmp(sf_st_tensor_at(st, i - 1)->name, sf_st_tensor_at(st, i)->name) < 0);
  CHECK(sf_st_tensor_at(st, 12) == NULL);
  CHECK(strcmp(sf_st_metadata(st, "format"), "pt") == 0);
  CHECK(sf_st_metadata(st, "nope") == NULL);
  CHECK(sf_st_find(st, "nope") == NULL);
  CHECK(sf_st_find(st, "f3") == NULL);
  float f[8];
  int64_t iv[8];
  const sf_st_tensor *t = sf_st_find(st, "f32");
  CHECK(t && t->dtype == SF_DTYPE_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 2 &&
        t->numel == 4 && t->nbytes == 16);
  CHECK(t && ((uintptr_t)t->data & 1) == 1); /* the file was laid out unaligned on purpose */
  sf_st_to_f32(t, f);
  CHECK(f[0] == 1.5f && f[1] == -2.0f && f[2] == 0.0f && f[3] == 3.25f);
  CHECK(sf_st_to_i64(t, iv) == -1);
  t = sf_st_find(st, "f16");
  sf_st_to_f32(t, f);
  CHECK(f[0] == 1.0f && f[1] == -2.0f && f[2] == ldexpf(1.0f, -24));
  t = sf_st_find(st, "bf16");
  sf_st_to_f32(t, f);
  CHECK(f[0] == 1.0f && f[1] == -5.0f);
  CHECK(sf_st_to_i64(t, iv) == -1);
  t = sf_st_find(st, "f64");
  CHECK(t && t->ndim == 2 && t->shape[1] == 2);
  sf_st_to_f32(t, f);
  CHECK(f[0] == 0.1f && f[1] == -3.0f);
  t = sf_st_find(st, "i64");
  sf_st_to_f32(t, f);
  CHECK(f[0] == -5.0f && f[1] == ldexpf(1.0f, 40));
  CHECK(sf_st_to_i64(t, iv) == 0 && iv[0] == -5 && iv[1] == (int64_t)1 << 40);
  t = sf_st_find(st, "i32");
  sf_st_to_f32(t, f);
  CHECK(f[0] == -7.0f && f[1] == 100000.0f);
  CHECK(sf_st_to_i64(t, iv) == 0 && iv[0] == -7 && iv[1] == 100000);
  t = sf_st_find(st, "i16");
  sf_st_to_f32(t, f);
  CHECK(f[0] == -300.0f && f[1] == 300.0f);
  CHECK(sf_st_to_i64(t, iv) == 0 && iv[0] == -300 && iv[1] == 300);
  t = sf_st_find(st, "i8");
  sf_st_to_f32(t, f);
  CHECK(f[0] == -128.0f && f[1] == 127.0f);
  CHECK(sf_st_to_i64(t, iv) == 0 && iv[0] == -128 && iv[1] == 127);
  t = sf_st_find(st, "u8");
  sf_st_to_f32(t, f);
  CHECK(f[0] == 0.0f && f[1] == 255.0f);
  CHECK(sf_st_to_i64(t, iv) == 0 && iv[0] == 0 && iv[1] == 255);
  t = sf_st_find(st, "bool");
  CHECK(t && t->dtype == SF_DTYPE_BOOL);
  sf_st_to_f32(t, f);
  CHECK(f[0] == 0.0f && f[1] == 1.0f);
  CHECK(sf_st_to_i64(t, iv) == 0 && iv[0] == 0 && iv[1] == 1);
  t = sf_st_find(st, "scalar");
  CHECK(t && t->ndim == 0 && t->numel == 1);
  sf_st_to_f32(t, f);
  CHECK(f[0] == 42.0f);
  t = sf_st_find(st, "empty");
  CHECK(t && t->ndim == 2 && t->numel == 0 && t->nbytes == 0);
  sf_st_close(st);

  /* write it to a file and map it */
  char path[] = "/tmp/sf_test_st_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd >= 0) {
    CHECK(write(fd, b.p, b.n) == (ssize_t)b.n);
    close(fd);
    sf_diag_clear(&diag);
    st = sf_st_open(path, &diag);
    CHECK_MSG(st != NULL, "%s", diag.msg);
    if (st) {
      CHECK(strcmp(sf_st_path(st), path) == 0);
      t = sf_st_find(st, "i32");
      CHECK(t && sf_st_to_i64(t, iv) == 0 && iv[1] == 100000);
    }
    sf_st_close(st);
    /* a truncated file on disk names the display name */
    CHECK(truncate(path, 20) == 0);
    sf_diag_clear(&diag);
    st = sf_st_open_as(path, "unet/w.safetensors", &diag);
    CHECK(st == NULL && diag.status == SF_ERR_BAD_MODEL &&
          strstr(diag.msg, "unet/w.safetensors") != NULL);
    CHECK(truncate(path, 0) == 0);
    sf_diag_clear(&diag);
    st = sf_st_open(path, &diag);
    CHECK(st == NULL && diag.status == SF_ERR_BAD_MODEL && strstr(diag.msg, "too short"));
    unlink(path);
  }
  sf_diag_clear(&diag);
  st = sf_st_open("/nonexistent/x.safetensors", &diag);
  CHECK(st == NULL && diag.status == SF_ERR_IO && strstr(diag.msg, "/nonexistent/x.safetensors"));
  free(b.p);
}

static void test_bad(void) {
  /* file shorter than 8 bytes */
  blob b = make_good();
  sf_diag_clear(&diag);
  sf_safetensors *st = sf_st_open_memory(b.p, 5, "mem.safetensors", &diag);
  CHECK(st == NULL && diag.status == SF_ERR_BAD_MODEL && strstr(diag.msg, "too short"));
  /* truncated inside the header, then inside the data */
  sf_diag_clear(&diag);
  st = sf_st_open_memory(b.p, 30, "mem.safetensors", &diag);
  CHECK(st == NULL && strstr(diag.msg, "past the end of the file"));
  sf_diag_clear(&diag);
  st = sf_st_open_memory(b.p, b.n - 1, "mem.safetensors", &diag);
  CHECK(st == NULL && diag.status == SF_ERR_BAD_MODEL && strstr(diag.msg, "past the data"));
  free(b.p);

  b = make_raw(1000, "{}", NULL, 0);
  st = open_blob(b);
  CHECK(st == NULL && strstr(diag.msg, "runs past the end of the file"));
  free(b.p);
  b = make_raw((uint64_t)1 << 63, "{}", NULL, 0);
  st = open_blob(b);
  CHECK(st == NULL && diag.status == SF_ERR_BAD_MODEL && strstr(diag.msg, "absurd"));
  free(b.p);
  b = make_raw(UINT64_MAX, "{}", NULL, 0);
  st = open_blob(b);
  CHECK(st == NULL && strstr(diag.msg, "absurd"));
  free(b.p);
  /* empty header object, no data: a valid file with no tensors */
  b = make("{}", NULL, 0);
  st = open_blob(b);
  CHECK(st != NULL && sf_st_count(st) == 0);
  sf_st_close(st);
  free(b.p);

  const sf_status BAD = SF_ERR_BAD_MODEL;
  REJECT("{\"a\":", 0, BAD, "invalid JSON", "header");
  REJECT("", 0, BAD, "empty", NULL);
  REJECT("[1]", 0, BAD, "not a JSON object", NULL);
  REJECT("{\"__metadata__\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
         "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
         0, BAD, "nesting", NULL);
  REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
         8, BAD, "duplicate key \"a\"", NULL);
  REJECT("{\"a\xff\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, BAD, "UTF-8",
         NULL);
  REJECT("{\"a\xed\xa0\x80\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, BAD,
         "surrogate", NULL);
  REJECT("{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, BAD, "NUL",
         NULL);
  REJECT("{\"w\":{\"dtype\":\"F32\",\"shape\":[25],\"data_offsets\":[0,100]}}", 8, BAD,
         "past the data section", "\"w\"");
  REJECT("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8, BAD, "end before",
         "\"w\"");
  REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
         12, BAD, "overlaps tensor \"a\"", "tensor \"b\"");
  REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
         12, BAD, "hole of 4 bytes", "\"a\"");
  REJECT("{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, BAD,
         "hole of 4 bytes at the start", "\"b\"");
  REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, BAD,
         "hole at the end", "\"a\"");
  REJECT("{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
         SF_ERR_UNSUPPORTED, "unsupported dtype \"F8_E4M3\"", "\"a\"");
  REJECT("{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
         SF_ERR_UNSUPPORTED, "unsupported dtype", NULL);
  REJECT("{\"a\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, BAD,
         "dtype is not a string", NULL);
  REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, BAD, "needs 12",
         "\"a\"");
  REJECT("{\"a\":{\"dtype\":\"F16\",\"shape\":[4294967296,4294967296,2],\"data_offsets\":[0,0]}}",
         0, BAD, "overflow", "\"a\"");
  REJECT("{\"a\":{\"dtype\":\"F64\",\"shape\":[2305843009213693952,1],\"data_offsets\":[0,0]}}", 0,
         BAD, "overflow", NULL);
  REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 0, BAD, "negative",
         "\"a\"");
  REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, BAD,
         "not an integer", NULL);
  REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", 4, BAD,
         "not an integer", NULL);
  REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
         SF_ERR_UNSUPPORTED, "9 dimensions", NULL);
  REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}", 4, BAD,
         "shape is not an array", NULL);
  REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0.5,4]}}", 4, BAD,
         "data_offsets are not", "\"a\"");
  REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4, BAD,
         "data_offsets are not", NULL);
  REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[\"0\",\"4\"]}}", 4, BAD,
         "data_offsets are not", NULL);
  REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 4, BAD,
         "[begin, end]", NULL);
  REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, BAD, "missing \"data_offsets\"", NULL);
  REJECT("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, BAD, "missing \"dtype\"", NULL);
  REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4, BAD,
         "unexpected key \"x\"", NULL);
  REJECT("{\"a\":[1]}", 4, BAD, "not an object", "\"a\"");
  REJECT("{\"__metadata__\":{\"format\":1}}", 0, BAD, "__metadata__", "format");
  REJECT("{\"__metadata__\":\"x\"}", 0, BAD, "__metadata__ is not an object", NULL);

  /* sorted by offset the tensors may come in any header order */
  unsigned char data[8] = {0};
  b = make("{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
           "\"a\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
           data, 8);
  st = open_blob(b);
  CHECK_MSG(st != NULL, "%s", diag.msg);
  CHECK(st && strcmp(sf_st_tensor_at(st, 0)->name, "a") == 0 &&
        sf_st_tensor_at(st, 0)->data == b.p + b.n - 4);
  sf_st_close(st);
  free(b.p);
}

static uint32_t rng_state = 12345;
static uint32_t rnd(void) {
  rng_state = rng_state * 1664525u + 1013904223u;
  return rng_state >> 8;
}

static void test_fuzz(void) {
  blob good = make_good();
  int opened = 0;
  for (int it = 0; it < 2000; it++) {
    size_t n = good.n;
    unsigned char *buf = malloc(n);
    memcpy(buf, good.p, n);
    int kind = (int)(rnd() % 4);
    if (kind == 0) {
      n = rnd() % (good.n + 1);
    } else {
      int flips = 1 + (int)(rnd() % 4);
      for (int k = 0; k < flips; k++) {
        size_t at = kind == 1 ? rnd() % 8 : 8 + rnd() % (n - 8);
        if (kind == 3) buf[at] = (unsigned char)"{}[]\",:0123456789-.e\\u "[rnd() % 24];
        else buf[at] ^= (unsigned char)(1u << (rnd() % 8));
      }
    }
    unsigned char *exact = malloc(n ? n : 1); /* exact size so ASan sees any over-read */
    memcpy(exact, buf, n);
    free(buf);
    sf_diag d;
    sf_diag_clear(&d);
    sf_safetensors *st = sf_st_open_memory(exact, n, "fuzz", &d);
    if (st) {
      opened++;
      for (size_t i = 0; i < sf_st_count(st); i++) {
        const sf_st_tensor *t = sf_st_tensor_at(st, i);
        if (t->numel > 64) continue;
        float f[64];
        int64_t iv[64];
        sf_st_to_f32(t, f);
        (void)sf_st_to_i64(t, iv);
      }
      sf_st_close(st);
    } else {
      CHECK(d.status != SF_OK && d.msg[0] != '\0');
    }
    free(exact);
  }
  CHECK(opened > 0); /* some mutations (e.g. inside data) leave the file valid */
  free(good.p);
}

static void test_half(void) {
  CHECK(sf_f16_to_f32(0x0000) == 0.0f && !signbit(sf_f16_to_f32(0x0000)));
  CHECK(sf_f16_to_f32(0x8000) == 0.0f && signbit(sf_f16_to_f32(0x8000)));
  CHECK(sf_f16_to_f32(0x0001) == ldexpf(1.0f, -24));
  CHECK(sf_f16_to_f32(0x03FF) == ldexpf(1023.0f, -24));
  CHECK(sf_f16_to_f32(0x0400) == ldexpf(1.0f, -14));
  CHECK(sf_f16_to_f32(0x7BFF) == 65504.0f);
  CHECK(sf_f16_to_f32(0x3555) == 0.333251953125f);
  CHECK(isinf(sf_f16_to_f32(0x7C00)) && sf_f16_to_f32(0xFC00) < 0);
  CHECK(isnan(sf_f16_to_f32(0x7E00)) && isnan(sf_f16_to_f32(0x7C01)));
  /* every half value round-trips through float */
  int bad = 0;
  for (uint32_t h = 0; h < 0x10000; h++) {
    float f = sf_f16_to_f32((uint16_t)h);
    uint16_t back = sf_f32_to_f16(f);
    if (isnan(f) ? !isnan(sf_f16_to_f32(back)) : back != h) bad++;
  }
  CHECK_EQ_INT(bad, 0);
  /* rounding: just below / above / exactly at every midpoint between neighbouring halves */
  bad = 0;
  for (uint32_t h = 0; h < 0x7BFF; h++) {
    double lo = sf_f16_to_f32((uint16_t)h), hi = sf_f16_to_f32((uint16_t)(h + 1));
    float mid = (float)((lo + hi) / 2); /* exact: 12 significant bits */
    if (sf_f32_to_f16(nextafterf(mid, 0.0f)) != h) bad++;
    if (sf_f32_to_f16(nextafterf(mid, INFINITY)) != h + 1) bad++;
    if (sf_f32_to_f16(mid) != ((h & 1) ? h + 1 : h)) bad++;
    if (sf_f32_to_f16(-mid) != (((h & 1) ? h + 1 : h) | 0x8000)) bad++;
  }
  CHECK_EQ_INT(bad, 0);
  CHECK(sf_f32_to_f16(65519.99f) == 0x7BFF);
  CHECK(sf_f32_to_f16(65520.0f) == 0x7C00);
  CHECK(sf_f32_to_f16(1e10f) == 0x7C00 && sf_f32_to_f16(-1e10f) == 0xFC00);
  CHECK(sf_f32_to_f16(INFINITY) == 0x7C00 && sf_f32_to_f16(-INFINITY) == 0xFC00);
  CHECK((sf_f32_to_f16(NAN) & 0x7C00) == 0x7C00 && (sf_f32_to_f16(NAN) & 0x3FF) != 0);
  CHECK(sf_f32_to_f16(ldexpf(1.0f, -25)) == 0);
  CHECK(sf_f32_to_f16(nextafterf(ldexpf(1.0f, -25), 1.0f)) == 1);
  CHECK(sf_f32_to_f16(1e-30f) == 0 && sf_f32_to_f16(-1e-30f) == 0x8000);
  CHECK(sf_f32_to_f16(FLT_MIN) == 0);
  CHECK(sf_bf16_to_f32(0x3F80) == 1.0f && sf_bf16_to_f32(0x4049) == 3.140625f);
  CHECK(isinf(sf_bf16_to_f32(0x7F80)) && isnan(sf_bf16_to_f32(0x7FC0)));
  CHECK(sf_dtype_size(SF_DTYPE_BF16) == 2 && sf_dtype_size(SF_DTYPE_I64) == 8 &&
        sf_dtype_size(SF_DTYPE_BOOL) == 1 && sf_dtype_size(SF_DTYPE_COUNT) == 0);
  CHECK(strcmp(sf_dtype_name(SF_DTYPE_BF16), "BF16") == 0);
}

static void test_fixtures(void) {
  const char *fx = sf_test_fixtures();
  if (fx == NULL) return;
  char p32[4200], p16[4200];
  snprintf(p32, sizeof p32, "%s/public/tiny-sd/unet/diffusion_pytorch_model.safetensors", fx);
  snprintf(p16, sizeof p16, "%s/public/tiny-sd/unet/diffusion_pytorch_model.fp16.safetensors", fx);
  sf_diag_clear(&diag);
  sf_safetensors *a = sf_st_open(p32, &diag);
  CHECK_MSG(a != NULL, "%s", diag.msg);
  sf_diag_clear(&diag);
  sf_safetensors *b = sf_st_open(p16, &diag);
  CHECK_MSG(b != NULL, "%s", diag.msg);
  if (a && b) {
    CHECK(sf_st_count(a) > 0);
    CHECK_EQ_INT(sf_st_count(a), sf_st_count(b));
    const sf_st_tensor *ta = sf_st_find(a, "conv_in.weight");
    const sf_st_tensor *tb = sf_st_find(b, "conv_in.weight");
    CHECK(ta && ta->ndim == 4 && ta->dtype == SF_DTYPE_F32);
    CHECK(tb && tb->ndim == 4 && tb->dtype == SF_DTYPE_F16);
    /* same names and shapes; the fp16 file is the fp32 one rounded to nearest-even */
    size_t mismatched = 0, checked = 0;
    for (size_t i = 0; i < sf_st_count(a) && i < sf_st_count(b); i++) {
      const sf_st_tensor *x = sf_st_tensor_at(a, i), *y = sf_st_tensor_at(b, i);
      if (strcmp(x->name, y->name) != 0 || x->ndim != y->ndim ||
          memcmp(x->shape, y->shape, sizeof(int64_t) * (size_t)x->ndim) != 0) {
        mismatched++;
        continue;
      }
      if (x->dtype != SF_DTYPE_F32 || y->dtype != SF_DTYPE_F16) continue;
      float *fx32 = malloc(sizeof(float) * (x->numel ? x->numel : 1));
      sf_st_to_f32(x, fx32);
      const unsigned char *hp = y->data;
      for (uint64_t k = 0; k < x->numel; k++) {
        uint16_t h;
        memcpy(&h, hp + 2 * k, 2);
        if (sf_f32_to_f16(fx32[k]) != h) mismatched++;
        checked++;
      }
      free(fx32);
    }
    CHECK_EQ_INT(mismatched, 0);
    CHECK(checked > 0);
  }
  sf_st_close(a);
  sf_st_close(b);
  /* every safetensors file of the fixture set must validate */
  const char *others[] = {"tiny-sd/vae/diffusion_pytorch_model.safetensors",
                          "tiny-sd/text_encoder/model.safetensors",
                          "taesd/taesd_decoder.safetensors", "taesd/taesd_encoder.safetensors"};
  for (size_t i = 0; i < sizeof others / sizeof *others; i++) {
    snprintf(p32, sizeof p32, "%s/public/%s", fx, others[i]);
    sf_diag_clear(&diag);
    a = sf_st_open(p32, &diag);
    CHECK_MSG(a != NULL && sf_st_count(a) > 0, "%s: %s", others[i], diag.msg);
    sf_st_close(a);
  }
}

int main(void) {
  test_good();
  test_bad();
  test_fuzz();
  test_half();
  test_fixtures();
  TEST_MAIN_END();
}
