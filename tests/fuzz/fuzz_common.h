/* Shared helpers of the libFuzzer targets (tests/fuzz/fuzz_*.c): finding the fixtures, reading
 * files into memory, a per-process temporary file, the tiny-sd model folder as an sf_files set,
 * and FZ_ASSERT for the invariants the targets check (a violated invariant aborts, which
 * libFuzzer reports as a crash with the input that caused it).
 *
 * The harness may print and abort; the library never does. Every target is deterministic: one
 * worker thread, fixed seeds, nothing depending on time. */
#ifndef SF_FUZZ_COMMON_H
#define SF_FUZZ_COMMON_H

#include <errno.h>
#include <snapfusion.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FZ_ASSERT(cond, ...)                                                              \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      fprintf(stderr, "%s:%d: invariant failed: %s: ", __FILE__, __LINE__, #cond);        \
      fprintf(stderr, __VA_ARGS__);                                                       \
      fprintf(stderr, " (sf_last_error: %s)\n", sf_last_error());                        \
      abort();                                                                            \
    }                                                                                     \
  } while (0)

/* A failure of the harness itself (missing fixtures, out of memory at start-up). */
static inline void fz_die(const char *what) {
  fprintf(stderr, "fuzz harness: %s\n", what);
  abort();
}

/* The fixture folder ($SNAPFUSION_FIXTURES or the one beside the source tree), or dies. */
static inline const char *fz_fixtures(void) {
  static char path[4096];
  const char *env = getenv("SNAPFUSION_FIXTURES");
  snprintf(path, sizeof path, "%s", env && *env ? env : SF_FUZZ_DEFAULT_FIXTURES);
  char probe[4200];
  snprintf(probe, sizeof probe, "%s/public/manifest.json", path);
  struct stat st;
  if (stat(probe, &st) != 0) {
    fprintf(stderr, "fuzz harness: fixtures not found at %s (set SNAPFUSION_FIXTURES)\n", path);
    abort();
  }
  return path;
}

/* The whole file, malloc'd (one extra NUL byte after it), or dies. */
static inline unsigned char *fz_read_file(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  struct stat st;
  unsigned char *buf = NULL;
  if (f != NULL && fstat(fileno(f), &st) == 0 && (buf = malloc((size_t)st.st_size + 1)) != NULL) {
    *size = (size_t)st.st_size;
    if (fread(buf, 1, *size, f) != *size) {
      free(buf);
      buf = NULL;
    } else {
      buf[*size] = 0;
    }
  }
  if (f) fclose(f);
  if (buf == NULL) {
    fprintf(stderr, "fuzz harness: cannot read %s\n", path);
    abort();
  }
  return buf;
}

/* A file under $TMPDIR (or /tmp) private to this process, removed at exit. Returns its path. */
static char fz_tmp_paths[4][4096];
static int fz_tmp_count;
static inline void fz_tmp_cleanup(void) {
  for (int i = 0; i < fz_tmp_count; i++) unlink(fz_tmp_paths[i]);
}
static inline const char *fz_tmp_file(const char *suffix) {
  if (fz_tmp_count == 4) fz_die("too many temporary files");
  const char *dir = getenv("TMPDIR");
  char *p = fz_tmp_paths[fz_tmp_count];
  snprintf(p, sizeof fz_tmp_paths[0], "%s/sf-fuzz-XXXXXX%s", dir && *dir ? dir : "/tmp", suffix);
  int fd = mkstemps(p, (int)strlen(suffix));
  if (fd < 0) fz_die("cannot create a temporary file");
  close(fd);
  if (fz_tmp_count++ == 0) atexit(fz_tmp_cleanup);
  return p;
}
/* Replaces the file's contents with data[0..size), or dies. */
static inline void fz_write_file(const char *path, const void *data, size_t size) {
  FILE *f = fopen(path, "wb");
  if (f == NULL || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) fz_die("cannot write a temporary file");
}

/* ---- the tiny-sd folder in memory ------------------------------------------------------------ */

typedef struct fz_file {
  const char *path; /* relative to the folder */
  unsigned char *data;
  size_t size;
} fz_file;

/* Every file of public/tiny-sd the loader reads (the fp16 variant apart). */
static fz_file fz_tiny_sd[] = {
    {"model_index.json", NULL, 0},
    {"scheduler/scheduler_config.json", NULL, 0},
    {"text_encoder/config.json", NULL, 0},
    {"text_encoder/model.safetensors", NULL, 0},
    {"tokenizer/merges.txt", NULL, 0},
    {"tokenizer/special_tokens_map.json", NULL, 0},
    {"tokenizer/tokenizer_config.json", NULL, 0},
    {"tokenizer/vocab.json", NULL, 0},
    {"unet/config.json", NULL, 0},
    {"unet/diffusion_pytorch_model.safetensors", NULL, 0},
    {"vae/config.json", NULL, 0},
    {"vae/diffusion_pytorch_model.safetensors", NULL, 0},
};
#define FZ_TINY_SD_FILES (sizeof fz_tiny_sd / sizeof fz_tiny_sd[0])

/* Reads them once (kept for the whole process). */
static inline void fz_tiny_sd_read(void) {
  if (fz_tiny_sd[0].data != NULL) return;
  const char *fx = fz_fixtures();
  for (size_t i = 0; i < FZ_TINY_SD_FILES; i++) {
    char path[4400];
    snprintf(path, sizeof path, "%s/public/tiny-sd/%s", fx, fz_tiny_sd[i].path);
    fz_tiny_sd[i].data = fz_read_file(path, &fz_tiny_sd[i].size);
  }
}

static inline const fz_file *fz_tiny_sd_find(const char *path) {
  for (size_t i = 0; i < FZ_TINY_SD_FILES; i++)
    if (strcmp(fz_tiny_sd[i].path, path) == 0) return &fz_tiny_sd[i];
  return NULL;
}

/* An sf_files set of tiny-sd's files, borrowed (no copies), leaving out the files whose path
 * starts with one of the NULL-terminated prefixes in `skip` (may be NULL). */
static inline sf_files *fz_tiny_sd_set(const char *const *skip) {
  fz_tiny_sd_read();
  sf_files *files = NULL;
  if (sf_files_create(&files) != SF_OK) fz_die("sf_files_create failed");
  for (size_t i = 0; i < FZ_TINY_SD_FILES; i++) {
    int skipped = 0;
    for (size_t k = 0; skip && skip[k]; k++)
      if (strncmp(fz_tiny_sd[i].path, skip[k], strlen(skip[k])) == 0) skipped = 1;
    if (skipped) continue;
    if (sf_files_add(files, fz_tiny_sd[i].path, fz_tiny_sd[i].data, fz_tiny_sd[i].size, 0) != SF_OK)
      fz_die(sf_last_error());
  }
  return files;
}

/* A context with one worker thread (deterministic, and polite on shared machines). */
static inline sf_context *fz_context(void) {
  sf_context *ctx = NULL;
  if (sf_context_create(&ctx) != SF_OK || sf_context_set_int(ctx, SF_PARAM_THREADS, 1) != SF_OK)
    fz_die("cannot create a context");
  return ctx;
}

/* A failure is a known sf_status other than SF_ERR_INTERNAL (which means a bug in the library),
 * with a message. */
static inline void fz_check_failure(sf_status s, const char *call) {
  /* SF_FUZZ_VERBOSE=1 shows why inputs are refused (e.g. when checking that seeds load). */
  if (getenv("SF_FUZZ_VERBOSE")) fprintf(stderr, "%s: %s: %s\n", call, sf_status_string(s), sf_last_error());
  FZ_ASSERT(s != SF_OK && strcmp(sf_status_string(s), "unknown status") != 0, "%s returned %d", call, (int)s);
  FZ_ASSERT(s != SF_ERR_INTERNAL, "%s: internal error", call);
  FZ_ASSERT(sf_last_error()[0] != '\0', "%s failed (%s) without a message", call, sf_status_string(s));
}

/* ---- running a loaded pipeline's networks once, on a small input ------------------------------ */

static inline int64_t fz_info(sf_pipeline *p, sf_info key, int64_t fallback) {
  int64_t v;
  return sf_pipeline_get_int(p, key, &v) == SF_OK ? v : fallback;
}

static inline float *fz_floats(size_t n, float scale) {
  float *x = malloc((n ? n : 1) * sizeof *x);
  if (x == NULL) fz_die("out of memory");
  uint32_t s = 12345;
  for (size_t i = 0; i < n; i++) {
    s = s * 1664525u + 1013904223u;
    x[i] = scale * ((float)(s >> 8) / 16777216.0f - 0.5f);
  }
  return x;
}

/* One UNet evaluation at the smallest latent size the UNet takes (batch 1, 77 tokens): a UNet
 * that loaded must run (its shapes were checked at load). */
static inline void fz_run_unet(sf_pipeline *p) {
  size_t c = (size_t)fz_info(p, SF_INFO_LATENT_CHANNELS, 0), hidden = (size_t)fz_info(p, SF_INFO_TEXT_HIDDEN, 0);
  size_t factor = (size_t)fz_info(p, SF_INFO_SCALE_FACTOR, 8), multiple = (size_t)fz_info(p, SF_INFO_SIZE_MULTIPLE, 0);
  FZ_ASSERT(c > 0 && hidden > 0 && factor > 0 && multiple >= factor && multiple % factor == 0,
            "UNet info: channels %zu, hidden %zu, factor %zu, multiple %zu", c, hidden, factor, multiple);
  size_t side = multiple / factor;
  if (side > 16 || c > 64 || hidden > 4096) return; /* too slow for a fuzz iteration */
  size_t n = c * side * side, tokens = 77;
  float *lat = fz_floats(n, 2.0f), *text = fz_floats(tokens * hidden, 1.0f);
  /* out_channels may differ from the input's (learned sigma: 2C): room for 2C. */
  float *out = fz_floats(2 * n, 0.0f);
  float t = 500.0f;
  sf_status s = sf_unet_predict_v2(p, lat, n, 1, side, side, &t, 1, text, tokens * hidden, tokens, out, 2 * n);
  FZ_ASSERT(s == SF_OK, "sf_unet_predict_v2 on a loaded UNet: %s", sf_status_string(s));
  free(lat);
  free(text);
  free(out);
}

#endif
