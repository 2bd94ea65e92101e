/* The safetensors reader alone (io/safetensors.h, internal): the input is a whole .safetensors
 * file, opened from a buffer (sf_st_open_memory) and, through an in-memory file set, as the
 * model loader opens weights (sf_st_open_vfs); both must agree.
 *
 * Invariants of an accepted file: every tensor lies inside the data section, its byte count is
 * its element count times its dtype's size, tensors are sorted by name and each is found by its
 * name, every tensor converts to float32 (and the integer ones to int64) without reading out of
 * bounds, and metadata values are strings. */
#include "fuzz_common.h"
#include "io/safetensors.h"
#include "io/vfs.h"

static void check(const sf_safetensors *st, const unsigned char *buf, size_t size) {
  size_t n = sf_st_count(st);
  const char *prev = NULL;
  for (size_t i = 0; i < n; i++) {
    const sf_st_tensor *t = sf_st_tensor_at(st, i);
    FZ_ASSERT(t != NULL && t->name != NULL, "tensor %zu", i);
    FZ_ASSERT(t->dtype < SF_DTYPE_COUNT && t->ndim >= 0 && t->ndim <= SF_ST_MAX_DIMS, "%s: dtype/ndim", t->name);
    uint64_t numel = 1;
    for (int k = 0; k < t->ndim; k++) {
      FZ_ASSERT(t->shape[k] >= 0, "%s: negative dim", t->name);
      numel *= (uint64_t)t->shape[k];
    }
    FZ_ASSERT(numel == t->numel && t->nbytes == t->numel * sf_dtype_size(t->dtype), "%s: sizes", t->name);
    if (buf != NULL && t->nbytes > 0) {
      const unsigned char *p = t->data;
      FZ_ASSERT(p >= buf + 8 && t->nbytes <= size && (size_t)(p - buf) <= size - t->nbytes, "%s: out of the file",
                t->name);
    }
    if (prev) FZ_ASSERT(strcmp(prev, t->name) < 0, "not sorted: %s, %s", prev, t->name);
    prev = t->name;
    FZ_ASSERT(sf_st_find(st, t->name) == t, "%s: sf_st_find", t->name);
    if (t->numel <= ((uint64_t)1 << 20)) {
      float *f = malloc((size_t)t->numel * sizeof *f + 1);
      int64_t *iv = malloc((size_t)t->numel * sizeof *iv + 1);
      if (f == NULL || iv == NULL) fz_die("out of memory");
      sf_st_to_f32(t, f);
      int is_int = t->dtype >= SF_DTYPE_I64;
      FZ_ASSERT((sf_st_to_i64(t, iv) == 0) == is_int, "%s: sf_st_to_i64 on %s", t->name, sf_dtype_name(t->dtype));
      /* Integers up to 2^24 convert exactly both ways. */
      for (size_t k = 0; is_int && k < (size_t)t->numel; k++)
        if (iv[k] > -(1 << 24) && iv[k] < (1 << 24)) FZ_ASSERT(f[k] == (float)iv[k], "%s[%zu]", t->name, k);
      free(f);
      free(iv);
    }
  }
  FZ_ASSERT(sf_st_find(st, "\x01no such tensor") == NULL, "found a missing tensor");
  const char *format = sf_st_metadata(st, "format");
  if (format != NULL) FZ_ASSERT(strlen(format) < size || buf == NULL, "metadata");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* An exact-size copy, so ASan sees any read past the end. */
  unsigned char *buf = malloc(size ? size : 1);
  if (buf == NULL) fz_die("out of memory");
  if (size) memcpy(buf, data, size);
  sf_diag d = {0};
  sf_safetensors *st = sf_st_open_memory(buf, size, "fuzz.safetensors", &d);
  if (st == NULL) {
    FZ_ASSERT(d.status != SF_OK && d.status != SF_ERR_INTERNAL && d.msg[0], "status %d, message '%s'", (int)d.status,
              d.msg);
  } else {
    check(st, buf, size);
  }

  /* The same bytes as a file of a memory set (borrowed), as the model loader maps weights. */
  sf_vfs *fs = sf_vfs_mem_create();
  if (fs == NULL) fz_die("out of memory");
  sf_diag d2 = {0};
  if (sf_vfs_mem_add(fs, "unet/diffusion_pytorch_model.safetensors", buf, size, 0, &d2) != SF_OK) fz_die(d2.msg);
  sf_safetensors *st2 = sf_st_open_vfs(fs, "unet/diffusion_pytorch_model.safetensors", NULL, &d2);
  FZ_ASSERT((st == NULL) == (st2 == NULL), "memory open %s, vfs open %s (%s%s)", st ? "succeeded" : "failed",
            st2 ? "succeeded" : "failed", d.msg, d2.msg);
  if (st2 != NULL) {
    check(st2, NULL, 0);
    FZ_ASSERT(sf_st_count(st2) == sf_st_count(st), "counts differ");
  } else {
    FZ_ASSERT(d2.status == d.status, "statuses differ: %d vs %d", (int)d.status, (int)d2.status);
  }
  sf_st_close(st2);
  sf_vfs_mem_destroy(fs);
  sf_st_close(st);
  free(buf);
  return 0;
}
