/* Pack files (io/pack.h, internal; SF_PARAM_PACK_PATH): the input is a whole pack file.
 *
 * Each input is read twice: as it is (the checksums must reject nearly every mutation), and with
 * its header and index CRCs recomputed when it starts with the magic, so the fuzzer reaches the
 * checks behind them: every field of the header and of each index entry, offsets and sizes
 * against the file, overlaps, duplicates. An accepted pack must keep the reader's promises
 * (every blob 64-byte aligned, inside the payload, its size its shape times its dtype's size,
 * found by its name; sf_pack_verify reads every byte without going out of bounds), and is then
 * loaded for the tiny-sd fixture through the public API from a temporary file (the weight source
 * checks every blob against the architecture): any status is fine, a crash or an out-of-bounds
 * read is not.
 *
 * Seeds: packs of tiny-sd (snapfusion pack ../shared/fixtures/public/tiny-sd -o seed.sfpack
 * --weights f32|f16|q8). Build: as the other tests/fuzz targets (clang, -fsanitize=fuzzer, linked
 * against sf_internal, SF_FUZZ_DEFAULT_FIXTURES defined). */
#include <snapfusion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "io/pack.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#ifndef SF_FUZZ_DEFAULT_FIXTURES
#define SF_FUZZ_DEFAULT_FIXTURES "../shared/fixtures"
#endif

#define PK_ASSERT(cond, ...)                                                         \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      fprintf(stderr, "%s:%d: invariant failed: %s: ", __FILE__, __LINE__, #cond);   \
      fprintf(stderr, __VA_ARGS__);                                                  \
      fputc('\n', stderr);                                                           \
      abort();                                                                       \
    }                                                                                \
  } while (0)

static uint32_t get32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void set32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* The tiny-sd folder, or NULL when the fixtures are absent (then only the reader is fuzzed). */
static const char *model_dir(void) {
  static char path[4200];
  static int done;
  if (!done) {
    done = 1;
    const char *env = getenv("SNAPFUSION_FIXTURES");
    snprintf(path, sizeof path, "%s/public/tiny-sd", env && *env ? env : SF_FUZZ_DEFAULT_FIXTURES);
    char probe[4300];
    struct stat st;
    snprintf(probe, sizeof probe, "%s/model_index.json", path);
    if (stat(probe, &st) != 0) path[0] = '\0';
  }
  return path[0] ? path : NULL;
}

static void check_accepted(const sf_pack *pk, const unsigned char *buf, size_t size) {
  const sf_pack_info *in = sf_pack_get_info(pk);
  PK_ASSERT(in->file_bytes == size, "file bytes %llu, size %zu", (unsigned long long)in->file_bytes, size);
  const size_t n = sf_pack_count(pk);
  PK_ASSERT(n >= 1 && n <= (size - SF_PACK_HEADER_BYTES) / SF_PACK_ENTRY_BYTES, "%zu blobs", n);
  const size_t payload = SF_PACK_HEADER_BYTES + n * SF_PACK_ENTRY_BYTES;
  for (size_t i = 0; i < n; i++) {
    const sf_pack_blob *b = sf_pack_at(pk, i);
    const unsigned char *p = b->data;
    PK_ASSERT(b->offset % SF_PACK_ALIGN == 0 && b->offset >= payload, "blob %zu offset", i);
    PK_ASSERT(b->size <= size && b->offset <= size - b->size, "blob %zu outside", i);
    PK_ASSERT(p == buf + b->offset, "blob %zu data", i);
    uint64_t count = 1;
    for (uint32_t k = 0; k < b->ndim; k++) count *= b->shape[k];
    PK_ASSERT(count * sf_pack_dtype_bytes(b->dtype) == b->size, "blob %zu size", i);
    PK_ASSERT(strlen(b->name) > 0 && strlen(b->name) < SF_PACK_NAME_BYTES, "blob %zu name", i);
    PK_ASSERT(sf_pack_find(pk, b->network, b->name) == b, "blob %zu not found by name", i);
    PK_ASSERT(sf_pack_index_of(pk, b) == i, "blob %zu index", i);
  }
  sf_diag d = {0};
  (void)sf_pack_verify(pk, &d); /* reads every blob */
}

/* Loads tiny-sd with the pack at path: any status, never a crash. */
static void load_tiny(const char *path) {
  const char *model = model_dir();
  if (model == NULL) return;
  static sf_context *ctx;
  if (ctx == NULL && (sf_context_create(&ctx) != SF_OK || sf_context_set_int(ctx, SF_PARAM_THREADS, 1) != SF_OK)) abort();
  sf_params *p = NULL;
  if (sf_params_create(&p) != SF_OK || sf_params_set_string(p, SF_PARAM_PACK_PATH, path) != SF_OK) abort();
  sf_pipeline *pipe = NULL;
  sf_status s = sf_pipeline_load(ctx, model, p, &pipe);
  PK_ASSERT((s == SF_OK) == (pipe != NULL), "status %d, pipeline %p", (int)s, (void *)pipe);
  PK_ASSERT(s == SF_OK || *sf_last_error() != '\0', "status %d without a message", (int)s);
  sf_pipeline_destroy(pipe);
  sf_params_destroy(p);
}

static void run(const unsigned char *buf, size_t size) {
  sf_diag d = {0};
  sf_pack *pk = sf_pack_open_memory(buf, size, "fuzz.sfpack", &d);
  if (pk == NULL) {
    PK_ASSERT(d.status != SF_OK && d.msg[0] != '\0', "refused without a status and a message");
    return;
  }
  check_accepted(pk, buf, size);
  sf_pack_close(pk);
  char path[64];
  snprintf(path, sizeof path, "/tmp/fuzz-pack-%ld.sfpack", (long)getpid());
  FILE *f = fopen(path, "wb");
  if (f == NULL || fwrite(buf, 1, size, f) != size || fclose(f) != 0) abort();
  load_tiny(path);
  remove(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* 64-byte aligned exact-size copies (a mapping is page-aligned; ASan sees reads past the end
   * of the allocation, which is rounded only to its own size) */
  unsigned char *buf = NULL;
  if (posix_memalign((void **)&buf, 64, size ? size : 1) != 0) abort();
  if (size) memcpy(buf, data, size);
  run(buf, size);
  if (size >= SF_PACK_HEADER_BYTES && memcmp(buf, SF_PACK_MAGIC, 8) == 0) {
    /* the file's size too: inputs cut by -max_len reach the index */
    for (int i = 0; i < 8; i++) buf[SF_PACK_OFF_FILE_BYTES + i] = (unsigned char)((uint64_t)size >> (8 * i));
    const uint32_t count = get32(buf + SF_PACK_OFF_COUNT);
    if ((uint64_t)count * SF_PACK_ENTRY_BYTES <= size - SF_PACK_HEADER_BYTES)
      set32(buf + SF_PACK_OFF_INDEX_CRC,
            (uint32_t)crc32(0L, buf + SF_PACK_HEADER_BYTES, (uInt)((size_t)count * SF_PACK_ENTRY_BYTES)));
    set32(buf + SF_PACK_OFF_HEADER_CRC, (uint32_t)crc32(0L, buf, SF_PACK_OFF_HEADER_CRC));
    run(buf, size);
  }
  free(buf);
  return 0;
}
