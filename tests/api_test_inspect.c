/* Inspect-only loads (SF_PARAM_INSPECT_ONLY) and memory estimates (sf_pipeline_estimate_memory),
 * through the public API on a copy of the tiny-sd fixture held in memory (sf_files):
 *  - a folder a full load rejects is rejected by inspection too, for each kind of defect: a
 *    config key missing, a negative channel count, an unknown block type, a tensor of the wrong
 *    rank, a tensor renamed (missing + left over), a truncated config (the message says where it
 *    was cut); UNet config errors name the folder and the file;
 *  - several defects at once are all reported: each logged, the error counting them;
 *  - a sound folder inspects fine, runs nothing (a message says why), and reports exactly the
 *    weight bytes and parameters a full load has, for f32, f16 and q8 weights;
 *  - the estimate's weights are the full load's weight bytes and its workspace is the workspace a
 *    generation of the same parameters then holds (SF_INFO_ARENA_BYTES), with and without
 *    guidance; low-memory mode lowers the peak; bad arguments are refused. */
#define _XOPEN_SOURCE 700
#include <pthread.h>
#include <snapfusion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem_folder.h"
#include "test.h"

static sf_context *ctx;

/* ---- the log: problems reported by inspection ------------------------------------------- */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static int log_errors;
static char log_text[16384];

static void on_log(void *user, sf_log_level level, const char *msg) {
  (void)user;
  if (level != SF_LOG_ERROR) return;
  pthread_mutex_lock(&log_lock);
  log_errors++;
  size_t n = strlen(log_text);
  snprintf(log_text + n, sizeof log_text - n, "%s\n", msg);
  pthread_mutex_unlock(&log_lock);
}

static void log_reset(void) {
  pthread_mutex_lock(&log_lock);
  log_errors = 0;
  log_text[0] = '\0';
  pthread_mutex_unlock(&log_lock);
}

/* ---- editing the folder in memory ------------------------------------------------------- */

static mem_file *find_mut(mem_folder *m, const char *path) { return (mem_file *)find(m, path); }

/* Replaces bytes [at, at + len) of file f by repl (any length). */
static void splice(mem_file *f, size_t at, size_t len, const char *repl) {
  size_t rl = strlen(repl), n = f->size - len + rl;
  unsigned char *d = malloc(n ? n : 1);
  if (d == NULL) abort();
  memcpy(d, f->data, at);
  memcpy(d + at, repl, rl);
  memcpy(d + at + rl, f->data + at + len, f->size - at - len);
  free(f->data);
  f->data = d;
  f->size = n;
}

/* Offset of needle in f at or after from, or SIZE_MAX. */
static size_t find_in(const mem_file *f, const char *needle, size_t from) {
  size_t nl = strlen(needle);
  for (size_t i = from; i + nl <= f->size; i++)
    if (memcmp(f->data + i, needle, nl) == 0) return i;
  return SIZE_MAX;
}

/* A JSON config: the first value of key (a number inside an array or alone) is negated. */
static int negate_first_number(mem_file *f, const char *key) {
  char k[128];
  snprintf(k, sizeof k, "\"%s\"", key);
  size_t at = find_in(f, k, 0);
  if (at == SIZE_MAX) return 0;
  for (size_t i = at + strlen(k); i < f->size; i++)
    if (f->data[i] >= '0' && f->data[i] <= '9') {
      splice(f, i, 0, "-");
      return 1;
    }
  return 0;
}

/* A JSON config without key: the member (key, value and a comma next to it) removed. */
static int drop_key(mem_file *f, const char *key) {
  char k[128];
  snprintf(k, sizeof k, "\"%s\"", key);
  size_t at = find_in(f, k, 0);
  if (at == SIZE_MAX) return 0;
  size_t i = at + strlen(k);
  int depth = 0;
  for (; i < f->size; i++) { /* the end of the value: a ',' or '}' outside brackets */
    unsigned char ch = f->data[i];
    if (ch == '[' || ch == '{') depth++;
    else if ((ch == ']' || ch == '}') && depth > 0) depth--;
    else if ((ch == ',' || ch == '}') && depth == 0) break;
  }
  if (i >= f->size) return 0;
  size_t end = f->data[i] == ',' ? i + 1 : i; /* a following comma goes with it */
  size_t start = at;
  if (f->data[i] == '}') /* the last member: the comma before it goes */
    while (start > 0 && f->data[start - 1] != ',') start--;
  if (f->data[i] == '}' && start > 0) start--;
  splice(f, start, end - start, "");
  return 1;
}

/* A JSON config: the first string of the array under key replaced by repl. */
static int replace_first_string(mem_file *f, const char *key, const char *repl) {
  char k[128];
  snprintf(k, sizeof k, "\"%s\"", key);
  size_t at = find_in(f, k, 0);
  if (at == SIZE_MAX) return 0;
  size_t open = find_in(f, "[", at);
  size_t q1 = open == SIZE_MAX ? SIZE_MAX : find_in(f, "\"", open);
  size_t q2 = q1 == SIZE_MAX ? SIZE_MAX : find_in(f, "\"", q1 + 1);
  if (q2 == SIZE_MAX) return 0;
  char quoted[128];
  snprintf(quoted, sizeof quoted, "\"%s\"", repl);
  splice(f, q1, q2 - q1 + 1, quoted);
  return 1;
}

/* A safetensors file: header edits keep the data where it is (offsets are relative to the end of
 * the header), the header length is rewritten. */
static uint64_t header_len(const mem_file *f) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--) n = (n << 8) | f->data[i];
  return n;
}
static void set_header_len(mem_file *f, uint64_t n) {
  for (int i = 0; i < 8; i++) f->data[i] = (unsigned char)(n >> (8 * i));
}
static void header_splice(mem_file *f, size_t at, size_t len, const char *repl) {
  uint64_t n = header_len(f);
  splice(f, at, len, repl);
  set_header_len(f, n - len + strlen(repl));
}

/* Tensor name's shape [.., a, b] becomes [.., a*b] (same values, one dimension fewer). */
static int merge_last_dims(mem_file *f, const char *name) {
  char k[256];
  snprintf(k, sizeof k, "\"%s\"", name);
  size_t at = find_in(f, k, 8);
  size_t sh = at == SIZE_MAX ? SIZE_MAX : find_in(f, "\"shape\"", at);
  size_t open = sh == SIZE_MAX ? SIZE_MAX : find_in(f, "[", sh);
  size_t close = open == SIZE_MAX ? SIZE_MAX : find_in(f, "]", open);
  if (close == SIZE_MAX || close - open > 200) return 0;
  long long dims[8];
  int nd = 0;
  char buf[256];
  memcpy(buf, f->data + open + 1, close - open - 1);
  buf[close - open - 1] = '\0';
  for (char *tok = strtok(buf, ", "); tok && nd < 8; tok = strtok(NULL, ", ")) dims[nd++] = atoll(tok);
  if (nd < 2) return 0;
  dims[nd - 2] *= dims[nd - 1];
  nd--;
  char out[256] = "[";
  for (int i = 0; i < nd; i++) {
    size_t l = strlen(out);
    snprintf(out + l, sizeof out - l, "%s%lld", i ? "," : "", dims[i]);
  }
  strcat(out, "]");
  header_splice(f, open, close - open + 1, out);
  return 1;
}

/* Tensor name renamed with its last character changed (same length). */
static int rename_tensor(mem_file *f, const char *name) {
  char k[256];
  snprintf(k, sizeof k, "\"%s\"", name);
  size_t at = find_in(f, k, 8);
  if (at == SIZE_MAX || at >= 8 + header_len(f)) return 0;
  unsigned char *last = f->data + at + strlen(k) - 2;
  *last = *last == 'z' ? 'y' : 'z';
  return 1;
}

/* ---- loading ---------------------------------------------------------------------------- */

static sf_params *options(int inspect, int weight_type, int low_memory) {
  sf_params *opt = NULL;
  CHECK_EQ_INT(sf_params_create(&opt), SF_OK);
  if (inspect) CHECK_EQ_INT(sf_params_set_int(opt, SF_PARAM_INSPECT_ONLY, 1), SF_OK);
  if (weight_type) CHECK_EQ_INT(sf_params_set_int(opt, SF_PARAM_WEIGHT_TYPE, weight_type), SF_OK);
  if (low_memory) CHECK_EQ_INT(sf_params_set_int(opt, SF_PARAM_LOW_MEMORY, 1), SF_OK);
  return opt;
}

static sf_status load(const mem_folder *m, int inspect, int weight_type, int low_memory, sf_pipeline **out,
                      char *err, size_t cap) {
  sf_files *files = make_set(m, 1, NULL);
  sf_params *opt = options(inspect, weight_type, low_memory);
  *out = NULL;
  sf_status s = sf_pipeline_load_files(ctx, files, opt, out);
  if (err) snprintf(err, cap, "%s", s == SF_OK ? "" : sf_last_error());
  sf_params_destroy(opt);
  sf_files_destroy(files);
  return s;
}

static int64_t info(sf_pipeline *p, sf_info key) {
  int64_t v = -1;
  CHECK_MSG(sf_pipeline_get_int(p, key, &v) == SF_OK, "info %d: %s", (int)key, sf_last_error());
  return v;
}

/* ---- defects ---------------------------------------------------------------------------- */

typedef int (*edit_fn)(mem_folder *m);

static int edit_missing_key(mem_folder *m) { return drop_key(find_mut(m, "unet/config.json"), "block_out_channels"); }
static int edit_negative(mem_folder *m) { return negate_first_number(find_mut(m, "unet/config.json"), "block_out_channels"); }
static int edit_block_type(mem_folder *m) {
  return replace_first_string(find_mut(m, "unet/config.json"), "down_block_types", "WarpDownBlock2D");
}
static int edit_rank(mem_folder *m) {
  return merge_last_dims(find_mut(m, "unet/diffusion_pytorch_model.safetensors"), "conv_in.weight");
}
static int edit_rename(mem_folder *m) {
  return rename_tensor(find_mut(m, "vae/diffusion_pytorch_model.safetensors"), "decoder.conv_in.bias");
}
static int edit_vae_negative(mem_folder *m) {
  return negate_first_number(find_mut(m, "vae/config.json"), "block_out_channels");
}
static int edit_text_layers(mem_folder *m) {
  return negate_first_number(find_mut(m, "text_encoder/config.json"), "num_hidden_layers");
}
static int edit_truncated(mem_folder *m) {
  mem_file *f = find_mut(m, "unet/config.json");
  f->size = f->size / 2;
  return 1;
}

/* One defect: the full load and the inspection both fail; the inspection's message holds the
 * full load's (the same problem, found the same way) and needles. */
static void test_defect(const mem_folder *orig, const char *what, edit_fn edit, const char *needle) {
  mem_folder m = mem_folder_copy(orig);
  CHECK_MSG(edit(&m), "%s: the fixture has nothing to edit", what);
  char full[1024], insp[1024];
  sf_pipeline *p = NULL;
  sf_status sf = load(&m, 0, 0, 0, &p, full, sizeof full);
  CHECK_MSG(sf != SF_OK, "%s: a full load accepted it", what);
  sf_pipeline_destroy(p);
  log_reset();
  sf_status si = load(&m, 1, 0, 0, &p, insp, sizeof insp);
  CHECK_MSG(si != SF_OK, "%s: inspection accepted it", what);
  sf_pipeline_destroy(p);
  CHECK_MSG(log_errors >= 1, "%s: nothing logged", what);
  /* the problem the full load stops at is among those inspection reports */
  CHECK_MSG(strstr(log_text, full) != NULL || strstr(insp, full) != NULL, "%s: full load says\n  %s\ninspection says\n  %s",
            what, full, log_text);
  if (needle) CHECK_MSG(strstr(insp, needle) != NULL, "%s: '%s' not in: %s", what, needle, insp);
  mem_folder_free(&m);
}

static void test_defects(const mem_folder *m) {
  test_defect(m, "missing block_out_channels", edit_missing_key, "unet/config.json");
  test_defect(m, "negative channels", edit_negative, "unet/config.json");
  test_defect(m, "unknown block type", edit_block_type, "WarpDownBlock2D");
  test_defect(m, "tensor of the wrong rank", edit_rank, "conv_in.weight");
  test_defect(m, "renamed tensor", edit_rename, "decoder.conv_in.bias");
  test_defect(m, "negative VAE channels", edit_vae_negative, "vae");
  test_defect(m, "negative text encoder layers", edit_text_layers, "text_encoder");
  /* a truncated config: where it was cut, not "byte 0" */
  mem_folder t = mem_folder_copy(m);
  edit_truncated(&t);
  size_t cut = find(&t, "unet/config.json")->size;
  char insp[1024], where[64];
  sf_pipeline *p = NULL;
  CHECK(load(&t, 1, 0, 0, &p, insp, sizeof insp) != SF_OK);
  sf_pipeline_destroy(p);
  snprintf(where, sizeof where, "byte %zu", cut);
  CHECK_MSG(strstr(insp, "unet/config.json") != NULL && strstr(insp, "byte 0") == NULL,
            "truncated config: %s", insp);
  CHECK_MSG(strstr(insp, where) != NULL || strstr(insp, "line") != NULL, "truncated config (%zu bytes): %s", cut, insp);
  mem_folder_free(&t);
}

/* Several defects in three components: all reported. */
static void test_all_reported(const mem_folder *orig) {
  mem_folder m = mem_folder_copy(orig);
  CHECK(edit_rank(&m));
  CHECK(edit_rename(&m));
  CHECK(edit_text_layers(&m));
  char insp[1024];
  sf_pipeline *p = NULL;
  log_reset();
  CHECK(load(&m, 1, 0, 0, &p, insp, sizeof insp) == SF_ERR_BAD_MODEL);
  sf_pipeline_destroy(p);
  /* text_encoder config, unet rank, vae: missing bias + left-over renamed tensor = 4 */
  int listed = 0; /* one line per problem, besides the error itself (logged as every error is) */
  for (const char *q = log_text; (q = strchr(q, '\n')) != NULL; q++) listed++;
  CHECK_MSG(listed == 4 + 1, "%d lines logged:\n%s", listed, log_text);
  CHECK_MSG(strstr(insp, "4 problems") != NULL, "%s", insp);
  CHECK_MSG(strstr(log_text, "text_encoder") && strstr(log_text, "conv_in.weight") &&
                strstr(log_text, "decoder.conv_in.bias"),
            "%s", log_text);
  mem_folder_free(&m);
}

/* ---- a sound folder --------------------------------------------------------------------- */

static sf_params *gen_params(int64_t size, double guidance, int steps) {
  sf_params *g = NULL;
  CHECK_EQ_INT(sf_params_create(&g), SF_OK);
  sf_params_set_string(g, SF_PARAM_PROMPT, "a cat");
  if (size) sf_params_set_int(g, SF_PARAM_WIDTH, size);
  if (size) sf_params_set_int(g, SF_PARAM_HEIGHT, size);
  sf_params_set_float(g, SF_PARAM_GUIDANCE_SCALE, guidance);
  sf_params_set_int(g, SF_PARAM_STEPS, steps);
  sf_params_set_int(g, SF_PARAM_SEED, 3);
  return g;
}

static int64_t estimate(sf_pipeline *p, const sf_params *g, sf_memory what) {
  int64_t v = -1;
  CHECK_MSG(sf_pipeline_estimate_memory(p, g, what, &v) == SF_OK, "estimate %d: %s", (int)what, sf_last_error());
  return v;
}

static void test_sound(const mem_folder *m) {
  static const int types[] = {SF_WEIGHT_DEFAULT, SF_WEIGHT_F16, SF_WEIGHT_Q8};
  int64_t size = 0;
  for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
    sf_pipeline *insp = NULL, *full = NULL;
    char err[1024];
    log_reset();
    CHECK_MSG(load(m, 1, types[t], 0, &insp, err, sizeof err) == SF_OK, "inspect: %s", err);
    CHECK_MSG(log_errors == 0, "%s", log_text);
    CHECK_MSG(load(m, 0, types[t], 0, &full, err, sizeof err) == SF_OK, "load: %s", err);
    if (insp == NULL || full == NULL) {
      sf_pipeline_destroy(insp);
      sf_pipeline_destroy(full);
      continue;
    }
    /* nothing runs, and the message says why */
    CHECK_EQ_INT(info(insp, SF_INFO_NETWORKS), 0);
    float emb[77 * 1024];
    CHECK(sf_encode_prompt(insp, "a cat", 0, emb, sizeof emb / sizeof emb[0]) == SF_ERR_BAD_STATE);
    CHECK_MSG(strstr(sf_last_error(), "SF_PARAM_INSPECT_ONLY") != NULL, "%s", sf_last_error());
    sf_image *img = NULL;
    sf_params *g1 = gen_params(0, 1.0, 1);
    sf_status gs = sf_generate(insp, g1, NULL, NULL, &img);
    CHECK_MSG(gs == SF_ERR_BAD_STATE, "%d %s", (int)gs, sf_last_error());
    CHECK(img == NULL);
    sf_params_destroy(g1);
    /* what a load would pack, exactly */
    CHECK_EQ_INT(info(insp, SF_INFO_WEIGHT_BYTES), info(full, SF_INFO_WEIGHT_BYTES));
    CHECK_EQ_INT(info(insp, SF_INFO_PARAMETERS), info(full, SF_INFO_PARAMETERS));
    CHECK_EQ_INT(info(insp, SF_INFO_WEIGHT_TYPE), info(full, SF_INFO_WEIGHT_TYPE));
    CHECK_EQ_INT(info(insp, SF_INFO_DEFAULT_WIDTH), info(full, SF_INFO_DEFAULT_WIDTH));
    CHECK_EQ_INT(info(insp, SF_INFO_SIZE_MULTIPLE), info(full, SF_INFO_SIZE_MULTIPLE));
    CHECK_EQ_INT(info(full, SF_INFO_WEIGHT_TYPE), types[t] == SF_WEIGHT_DEFAULT ? SF_WEIGHT_F32 : types[t]);
    size = info(full, SF_INFO_SIZE_MULTIPLE);
    /* the estimate: weights as loaded; the workspace a generation then holds */
    for (int guided = 0; guided < 2; guided++) {
      sf_params *g = gen_params(2 * size, guided ? 7.5 : 1.0, 2);
      int64_t peak = estimate(insp, g, SF_MEMORY_PEAK), w = estimate(insp, g, SF_MEMORY_WEIGHTS),
              ws = estimate(insp, g, SF_MEMORY_WORKSPACE), other = estimate(insp, g, SF_MEMORY_OTHER);
      CHECK_EQ_INT(peak, w + ws + other);
      CHECK_EQ_INT(estimate(insp, g, SF_MEMORY_WEIGHTS_TOTAL), info(full, SF_INFO_WEIGHT_BYTES));
      CHECK_EQ_INT(estimate(full, g, SF_MEMORY_PEAK), peak); /* the same on the loaded pipeline */
      sf_image *im = NULL;
      CHECK_MSG(sf_generate(full, g, NULL, NULL, &im) == SF_OK, "%s", sf_last_error());
      sf_image_destroy(im);
      CHECK_EQ_INT(estimate(insp, g, SF_MEMORY_WORKSPACE_RUN), info(full, SF_INFO_ARENA_BYTES));
      CHECK(ws == 0 || ws == info(full, SF_INFO_ARENA_BYTES));
      CHECK(peak > info(full, SF_INFO_WEIGHT_BYTES));
      sf_params_destroy(g);
    }
    sf_pipeline_destroy(insp);
    sf_pipeline_destroy(full);
  }
  /* low-memory mode: less than holding everything (the peak has one network) */
  sf_pipeline *normal = NULL, *low = NULL;
  CHECK(load(m, 1, 0, 0, &normal, NULL, 0) == SF_OK);
  CHECK(load(m, 1, 0, 1, &low, NULL, 0) == SF_OK);
  if (normal && low) {
    sf_params *g = gen_params(2 * size, 7.5, 2);
    CHECK(estimate(low, g, SF_MEMORY_WEIGHTS) < estimate(normal, g, SF_MEMORY_WEIGHTS));
    CHECK(estimate(low, g, SF_MEMORY_PEAK) < estimate(normal, g, SF_MEMORY_PEAK));
    CHECK_EQ_INT(estimate(low, g, SF_MEMORY_WEIGHTS_TOTAL), estimate(normal, g, SF_MEMORY_WEIGHTS_TOTAL));
    /* a bigger image needs more */
    sf_params *big = gen_params(8 * size, 7.5, 2);
    CHECK(estimate(normal, big, SF_MEMORY_WORKSPACE_RUN) > estimate(normal, g, SF_MEMORY_WORKSPACE_RUN));
    /* refusals */
    int64_t v = 7;
    CHECK(sf_pipeline_estimate_memory(normal, g, (sf_memory)99, &v) == SF_ERR_INVALID_ARGUMENT);
    CHECK(sf_pipeline_estimate_memory(NULL, g, SF_MEMORY_PEAK, &v) == SF_ERR_INVALID_ARGUMENT);
    CHECK(sf_pipeline_estimate_memory(normal, g, SF_MEMORY_PEAK, NULL) == SF_ERR_INVALID_ARGUMENT);
    sf_params *odd = gen_params(size + 8, 7.5, 2);
    CHECK(sf_pipeline_estimate_memory(normal, odd, SF_MEMORY_PEAK, &v) == SF_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(v, 0);
    /* defaults: no params at all is the model's default size */
    CHECK_MSG(sf_pipeline_estimate_memory(normal, NULL, SF_MEMORY_PEAK, &v) == SF_OK && v > 0, "%s", sf_last_error());
    sf_params_destroy(odd);
    sf_params_destroy(big);
    sf_params_destroy(g);
  }
  sf_pipeline_destroy(normal);
  sf_pipeline_destroy(low);
}

int main(void) {
  const char *fx = sf_test_fixtures();
  if (fx == NULL) return TEST_SKIP_EXIT_CODE;
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/public/tiny-sd", fx);
  CHECK_EQ_INT(sf_context_create(&ctx), SF_OK);
  if (ctx == NULL) TEST_MAIN_END();
  sf_context_set_log_callback(ctx, on_log, NULL);
  mem_folder m = {0};
  walk(&m, dir, "");
  test_defects(&m);
  test_all_reported(&m);
  test_sound(&m);
  mem_folder_free(&m);
  sf_context_destroy(ctx);
  TEST_MAIN_END();
}
