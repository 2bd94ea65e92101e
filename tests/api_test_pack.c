/* Pack files through the public API on the tiny-sd fixture (sf_pipeline_write_pack,
 * SF_PARAM_PACK_PATH):
 *  - for f32, f16 and q8 weights, and for the fp16 variant loaded as stored (an f16 UNet with f32
 *    text encoder and VAE), a pipeline loaded from its pack gives byte for byte what the pipeline
 *    that wrote it gives: prompt embeddings, a UNet call, a VAE decode and encode, a 2-step
 *    sf_generate image (8-bit and float); also in low-memory mode, and from a config-only folder
 *    held in memory (no checkpoint at all); weight type, weight bytes and parameter counts agree;
 *  - the pack decides the networks unless SF_PARAM_COMPONENTS asks for one it lacks (refused);
 *  - refusals with a status and a message: another model's pack, a config changed in a value
 *    (while keys like _diffusers_version do not count), a weight type other than the pack's,
 *    random weights or inspect-only with a pack, writing from low-memory or inspect-only
 *    pipelines, unwritable and missing paths;
 *  - damaged files: truncated at many points, extended, a flipped byte in the header or the
 *    index, a file that is not a pack, a directory: a status and a message naming the file, no
 *    crash (the ASan build runs this too).
 * Layout refusals and hostile index fields are in test_pack.c (they need to re-checksum). */
#define _XOPEN_SOURCE 700
#include <snapfusion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mem_folder.h"
#include "test.h"

static sf_context *ctx;
static char *model, *other_model, workdir[256];

/* ---- what a pipeline computes ------------------------------------------------------------- */

typedef struct outputs {
  float *text, *noise, *image, *mean, *logvar, *gen_f32;
  size_t n_text, n_noise, n_image, n_mean, n_gen;
  unsigned char *pixels;
  size_t n_pixels;
  int64_t weight_type, weight_bytes, parameters, networks;
} outputs;

static void outputs_free(outputs *o) {
  free(o->text);
  free(o->noise);
  free(o->image);
  free(o->mean);
  free(o->logvar);
  free(o->gen_f32);
  free(o->pixels);
  memset(o, 0, sizeof *o);
}

static float *randn(uint64_t seed, size_t n) {
  float *x = malloc(n * sizeof *x);
  sf_rng *rng = NULL;
  if (x == NULL || sf_rng_create(SF_RNG_TORCH_CPU, seed, &rng) != SF_OK || sf_rng_randn(rng, x, n) != SF_OK) abort();
  sf_rng_destroy(rng);
  return x;
}

static int64_t info(sf_pipeline *p, sf_info key) {
  int64_t v = -1;
  sf_pipeline_get_int(p, key, &v);
  return v;
}

/* Every building block and a whole generation on deterministic inputs. */
static void run_all(sf_pipeline *p, outputs *o, const char *what) {
  memset(o, 0, sizeof *o);
  o->weight_type = info(p, SF_INFO_WEIGHT_TYPE);
  o->networks = info(p, SF_INFO_NETWORKS);
  const int64_t hidden = info(p, SF_INFO_TEXT_HIDDEN), c = info(p, SF_INFO_LATENT_CHANNELS);
  o->n_text = 77 * (size_t)hidden;
  o->text = calloc(o->n_text, sizeof *o->text);
  CHECK_MSG(sf_encode_prompt(p, "a photo of a cat", 0, o->text, o->n_text) == SF_OK, "%s: encode: %s", what,
            sf_last_error());
  /* latents [1, C, 8, 8] */
  const size_t nl = (size_t)c * 64;
  float *lat = randn(11, nl), t = 500.0f;
  o->n_noise = nl;
  o->noise = calloc(nl, sizeof *o->noise);
  CHECK_MSG(sf_unet_predict_v2(p, lat, nl, 1, 8, 8, &t, 1, o->text, o->n_text, 77, o->noise, nl) == SF_OK,
            "%s: unet: %s", what, sf_last_error());
  o->n_image = 3 * 64 * 64;
  o->image = calloc(o->n_image, sizeof *o->image);
  CHECK_MSG(sf_decode_latents_v2(p, SF_NET_VAE_DECODER, lat, nl, 1, 8, 8, 0, o->image, o->n_image) == SF_OK,
            "%s: decode: %s", what, sf_last_error());
  o->n_mean = nl;
  o->mean = calloc(nl, sizeof *o->mean);
  o->logvar = calloc(nl, sizeof *o->logvar);
  CHECK_MSG(sf_encode_image_v2(p, SF_NET_VAE_ENCODER, o->image, o->n_image, 1, 64, 64, 0, o->mean, nl, o->logvar,
                               nl) == SF_OK,
            "%s: encode image: %s", what, sf_last_error());
  free(lat);
  sf_params *gp = NULL;
  sf_params_create(&gp);
  sf_params_set_string(gp, SF_PARAM_PROMPT, "a red fox in the snow");
  sf_params_set_string(gp, SF_PARAM_NEGATIVE_PROMPT, "blurry");
  sf_params_set_int(gp, SF_PARAM_WIDTH, 64);
  sf_params_set_int(gp, SF_PARAM_HEIGHT, 64);
  sf_params_set_int(gp, SF_PARAM_STEPS, 2);
  sf_params_set_int(gp, SF_PARAM_SEED, 7);
  sf_job *job = NULL;
  sf_image *img = NULL;
  sf_status s = sf_job_start(p, gp, &job);
  if (s == SF_OK) s = sf_job_finish(job, &img);
  CHECK_MSG(s == SF_OK, "%s: generate: %s", what, sf_last_error());
  if (s == SF_OK) {
    o->n_gen = sf_job_image_count(job);
    o->gen_f32 = calloc(o->n_gen, sizeof *o->gen_f32);
    CHECK(sf_job_image_f32(job, SF_LAYOUT_NCHW, o->gen_f32, o->n_gen) == SF_OK);
    o->n_pixels = sf_image_stride(img) * sf_image_height(img);
    o->pixels = malloc(o->n_pixels);
    memcpy(o->pixels, sf_image_pixels(img), o->n_pixels);
  }
  sf_image_destroy(img);
  sf_job_destroy(job);
  sf_params_destroy(gp);
  /* after the runs: in low-memory mode only what is resident counts, and networks count their
   * parameters once built */
  o->weight_bytes = info(p, SF_INFO_WEIGHT_BYTES);
  o->parameters = info(p, SF_INFO_PARAMETERS);
}

static int same(const void *a, const void *b, size_t n) { return a && b && memcmp(a, b, n) == 0; }

static void check_same(const outputs *a, const outputs *b, const char *what, int compare_bytes) {
  CHECK_MSG(same(a->text, b->text, a->n_text * sizeof(float)), "%s: prompt embeddings differ", what);
  CHECK_MSG(same(a->noise, b->noise, a->n_noise * sizeof(float)), "%s: UNet output differs", what);
  CHECK_MSG(same(a->image, b->image, a->n_image * sizeof(float)), "%s: VAE decode differs", what);
  CHECK_MSG(same(a->mean, b->mean, a->n_mean * sizeof(float)) && same(a->logvar, b->logvar, a->n_mean * sizeof(float)),
            "%s: VAE encode differs", what);
  CHECK_MSG(a->n_gen == b->n_gen && same(a->gen_f32, b->gen_f32, a->n_gen * sizeof(float)),
            "%s: generated float image differs", what);
  CHECK_MSG(a->n_pixels == b->n_pixels && same(a->pixels, b->pixels, a->n_pixels), "%s: generated image differs", what);
  CHECK_MSG(a->weight_type == b->weight_type, "%s: weight type %lld vs %lld", what, (long long)a->weight_type,
            (long long)b->weight_type);
  CHECK_MSG(a->parameters == b->parameters, "%s: parameters %lld vs %lld", what, (long long)a->parameters,
            (long long)b->parameters);
  CHECK_MSG(a->networks == b->networks, "%s: networks %lld vs %lld", what, (long long)a->networks, (long long)b->networks);
  if (compare_bytes)
    CHECK_MSG(a->weight_bytes == b->weight_bytes, "%s: weight bytes %lld vs %lld", what, (long long)a->weight_bytes,
              (long long)b->weight_bytes);
}

/* ---- loading ------------------------------------------------------------------------------- */

typedef struct load_opts {
  int weight_type, low_memory, random, inspect, components;
  const char *pack, *variant;
} load_opts;

static sf_status load(const char *dir, const sf_files *files, load_opts o, sf_pipeline **out) {
  sf_params *p = NULL;
  sf_params_create(&p);
  if (o.weight_type) sf_params_set_int(p, SF_PARAM_WEIGHT_TYPE, o.weight_type);
  if (o.low_memory) sf_params_set_int(p, SF_PARAM_LOW_MEMORY, 1);
  if (o.random) sf_params_set_int(p, SF_PARAM_RANDOM_WEIGHTS, 1);
  if (o.inspect) sf_params_set_int(p, SF_PARAM_INSPECT_ONLY, 1);
  if (o.components) sf_params_set_int(p, SF_PARAM_COMPONENTS, o.components);
  if (o.pack) sf_params_set_string(p, SF_PARAM_PACK_PATH, o.pack);
  if (o.variant) sf_params_set_string(p, SF_PARAM_VARIANT, o.variant);
  sf_status s = files ? sf_pipeline_load_files(ctx, files, p, out) : sf_pipeline_load(ctx, dir, p, out);
  sf_params_destroy(p);
  return s;
}

static void pack_path(char *buf, size_t cap, const char *name) { snprintf(buf, cap, "%s/%s", workdir, name); }

/* A set of tiny-sd's files without any checkpoint (configs, tokenizer, scheduler), with
 * unet/config.json's text replaced when unet_config is given. */
static sf_files *config_only_set(const mem_folder *m, const char *unet_config) {
  sf_files *files = NULL;
  CHECK_EQ_INT(sf_files_create(&files), SF_OK);
  for (size_t i = 0; files && i < m->n; i++) {
    const char *path = m->f[i].path;
    size_t n = strlen(path);
    if (n > 12 && strcmp(path + n - 12, ".safetensors") == 0) continue;
    const int replace = unet_config && strcmp(path, "unet/config.json") == 0;
    CHECK(sf_files_add(files, path, replace ? (const void *)unet_config : m->f[i].data,
                       replace ? strlen(unet_config) : m->f[i].size, 1) == SF_OK);
  }
  return files;
}

/* unet/config.json with the first occurrence of `from` replaced by `to` (malloc'd). */
static char *edited_config(const mem_folder *m, const char *from, const char *to) {
  const mem_file *f = find(m, "unet/config.json");
  char *text = calloc(f->size + strlen(to) + 1, 1);
  memcpy(text, f->data, f->size);
  char *at = strstr(text, from);
  CHECK_MSG(at != NULL, "unet/config.json has no '%s'", from);
  if (at) {
    char *rest = strdup(at + strlen(from));
    strcpy(at, to);
    strcat(at, rest);
    free(rest);
  }
  return text;
}

/* ---- the round trips ------------------------------------------------------------------------- */

static void test_round_trip(int weight_type, const char *variant, const char *name, const mem_folder *m) {
  char path[512];
  pack_path(path, sizeof path, name);
  sf_pipeline *p0 = NULL, *p1 = NULL;
  load_opts o = {.weight_type = weight_type, .variant = variant};
  CHECK_MSG(load(model, NULL, o, &p0) == SF_OK, "%s: load: %s", name, sf_last_error());
  if (p0 == NULL) return;
  CHECK_MSG(sf_pipeline_write_pack(p0, path) == SF_OK, "%s: write: %s", name, sf_last_error());
  outputs a, b;
  run_all(p0, &a, name);
  sf_pipeline_destroy(p0);

  load_opts op = {.pack = path};
  CHECK_MSG(load(model, NULL, op, &p1) == SF_OK, "%s: load pack: %s", name, sf_last_error());
  if (p1) {
    run_all(p1, &b, name);
    check_same(&a, &b, name, 1);
    outputs_free(&b);
    /* and a pipeline loaded from a pack writes the same pack again */
    char again[600];
    snprintf(again, sizeof again, "%s.again", path);
    CHECK_MSG(sf_pipeline_write_pack(p1, again) == SF_OK, "%s: rewrite: %s", name, sf_last_error());
    size_t n1 = 0, n2 = 0;
    unsigned char *f1 = read_all(path, &n1), *f2 = read_all(again, &n2);
    CHECK_MSG(f1 && f2 && n1 == n2 && memcmp(f1, f2, n1) == 0, "%s: a pack written from a pack differs", name);
    free(f1);
    free(f2);
    remove(again);
  }
  sf_pipeline_destroy(p1);

  /* low-memory mode: each network built from the pack when it runs */
  char what[128];
  snprintf(what, sizeof what, "%s, low memory", name);
  op.low_memory = 1;
  p1 = NULL;
  CHECK_MSG(load(model, NULL, op, &p1) == SF_OK, "%s: %s", what, sf_last_error());
  if (p1) {
    CHECK_EQ_INT(info(p1, SF_INFO_WEIGHT_BYTES), 0);
    run_all(p1, &b, what);
    check_same(&a, &b, what, 0);
    outputs_free(&b);
  }
  sf_pipeline_destroy(p1);

  /* a folder of configs only, in memory: the weights come from the pack alone */
  snprintf(what, sizeof what, "%s, config-only memory set", name);
  sf_files *files = config_only_set(m, NULL);
  op.low_memory = 0;
  op.variant = variant;
  p1 = NULL;
  CHECK_MSG(load(NULL, files, op, &p1) == SF_OK, "%s: %s", what, sf_last_error());
  if (p1) {
    run_all(p1, &b, what);
    check_same(&a, &b, what, 1);
    outputs_free(&b);
  }
  sf_pipeline_destroy(p1);
  sf_files_destroy(files);
  outputs_free(&a);
}

/* ---- options and refusals ---------------------------------------------------------------------- */

static void expect_fail(sf_status got, sf_status want, const char *needle1, const char *needle2, int line) {
  const char *msg = sf_last_error();
  CHECK_MSG(got == want, "line %d: status %d, expected %d (%s)", line, (int)got, (int)want, msg);
  CHECK_MSG(needle1 == NULL || strstr(msg, needle1) != NULL, "line %d: '%s' lacks '%s'", line, msg, needle1);
  CHECK_MSG(needle2 == NULL || strstr(msg, needle2) != NULL, "line %d: '%s' lacks '%s'", line, msg, needle2);
}
#define EXPECT_FAIL(got, want, n1, n2) expect_fail(got, want, n1, n2, __LINE__)

static void test_refusals(const mem_folder *m) {
  char q8[512], path[512];
  pack_path(q8, sizeof q8, "tiny-q8.sfpack");
  sf_pipeline *p = NULL;

  /* options that exclude a pack, or disagree with it */
  EXPECT_FAIL(load(model, NULL, (load_opts){.pack = q8, .random = 1}, &p), SF_ERR_INVALID_ARGUMENT,
              "SF_PARAM_RANDOM_WEIGHTS", NULL);
  CHECK(p == NULL);
  EXPECT_FAIL(load(model, NULL, (load_opts){.pack = q8, .inspect = 1}, &p), SF_ERR_UNSUPPORTED, "INSPECT_ONLY", NULL);
  EXPECT_FAIL(load(model, NULL, (load_opts){.pack = q8, .weight_type = SF_WEIGHT_F16}, &p), SF_ERR_INVALID_ARGUMENT,
              "f16", "q8");
  CHECK_MSG(load(model, NULL, (load_opts){.pack = q8, .weight_type = SF_WEIGHT_Q8}, &p) == SF_OK, "%s", sf_last_error());
  CHECK_EQ_INT(info(p, SF_INFO_WEIGHT_TYPE), SF_WEIGHT_Q8);
  sf_pipeline_destroy(p);
  p = NULL;

  /* another model: the tiny pruned UNet's folder with tiny-sd's pack */
  EXPECT_FAIL(load(other_model, NULL, (load_opts){.pack = q8}, &p), SF_ERR_BAD_MODEL, "another unet config", q8);
  CHECK(p == NULL);
  /* tiny-sd with one value of the UNet's config changed: refused; a saving tool's key: not */
  char *changed = edited_config(m, "\"sample_size\": 8", "\"sample_size\": 16");
  sf_files *files = config_only_set(m, changed);
  EXPECT_FAIL(load(NULL, files, (load_opts){.pack = q8}, &p), SF_ERR_BAD_MODEL, "another unet config",
              "memory:unet/config.json");
  sf_files_destroy(files);
  free(changed);
  changed = edited_config(m, "\"_diffusers_version\": \"0.30.3\"", "\"_diffusers_version\": \"0.99.0\"");
  files = config_only_set(m, changed);
  CHECK_MSG(load(NULL, files, (load_opts){.pack = q8}, &p) == SF_OK, "%s", sf_last_error());
  sf_pipeline_destroy(p);
  p = NULL;
  sf_files_destroy(files);
  free(changed);

  /* the pack decides the networks; asking for one it lacks is refused */
  sf_pipeline *part = NULL;
  pack_path(path, sizeof path, "tiny-unet-dec.sfpack");
  CHECK(load(model, NULL, (load_opts){.weight_type = SF_WEIGHT_F16, .components = SF_NET_UNET | SF_NET_VAE_DECODER},
             &part) == SF_OK);
  CHECK_MSG(sf_pipeline_write_pack(part, path) == SF_OK, "%s", sf_last_error());
  sf_pipeline_destroy(part);
  CHECK_MSG(load(model, NULL, (load_opts){.pack = path}, &p) == SF_OK, "%s", sf_last_error());
  CHECK_EQ_INT(info(p, SF_INFO_NETWORKS), SF_NET_UNET | SF_NET_VAE_DECODER);
  sf_pipeline_destroy(p);
  p = NULL;
  EXPECT_FAIL(load(model, NULL, (load_opts){.pack = path, .components = SF_NET_TEXT_ENCODER | SF_NET_UNET}, &p),
              SF_ERR_INVALID_ARGUMENT, "text encoder", path);
  CHECK_MSG(load(model, NULL, (load_opts){.pack = path, .components = SF_NET_UNET}, &p) == SF_OK, "%s", sf_last_error());
  CHECK_EQ_INT(info(p, SF_INFO_NETWORKS), SF_NET_UNET);
  sf_pipeline_destroy(p);
  p = NULL;

  /* writing: arguments, states, paths */
  EXPECT_FAIL(sf_pipeline_write_pack(NULL, path), SF_ERR_INVALID_ARGUMENT, "NULL", NULL);
  CHECK(load(model, NULL, (load_opts){.low_memory = 1}, &p) == SF_OK);
  EXPECT_FAIL(sf_pipeline_write_pack(p, NULL), SF_ERR_INVALID_ARGUMENT, "NULL", NULL);
  EXPECT_FAIL(sf_pipeline_write_pack(p, path), SF_ERR_BAD_STATE, "SF_PARAM_LOW_MEMORY", NULL);
  sf_pipeline_destroy(p);
  p = NULL;
  CHECK(load(model, NULL, (load_opts){.inspect = 1}, &p) == SF_OK);
  EXPECT_FAIL(sf_pipeline_write_pack(p, path), SF_ERR_BAD_STATE, "SF_PARAM_INSPECT_ONLY", NULL);
  sf_pipeline_destroy(p);
  p = NULL;
  CHECK(load(model, NULL, (load_opts){0}, &p) == SF_OK);
  char bad[600];
  snprintf(bad, sizeof bad, "%s/no-such-dir/x.sfpack", workdir);
  EXPECT_FAIL(sf_pipeline_write_pack(p, bad), SF_ERR_IO, "no-such-dir", NULL);
  CHECK(access(bad, F_OK) != 0);
  sf_pipeline_destroy(p);
  p = NULL;
  EXPECT_FAIL(load(model, NULL, (load_opts){.pack = bad}, &p), SF_ERR_IO, bad, NULL);
  EXPECT_FAIL(load(model, NULL, (load_opts){.pack = workdir}, &p), SF_ERR_IO, workdir, NULL);
  CHECK(p == NULL);
}

/* ---- damaged files --------------------------------------------------------------------------------- */

static void write_file(const char *path, const unsigned char *data, size_t n) {
  FILE *f = fopen(path, "wb");
  CHECK(f != NULL && (n == 0 || fwrite(data, 1, n, f) == n));
  if (f) fclose(f);
}

/* Loading the pack at path must fail with SF_ERR_BAD_MODEL and a message naming the file. */
static void expect_damaged(const char *path, const char *needle, const char *what, size_t at) {
  sf_pipeline *p = NULL;
  sf_status s = load(model, NULL, (load_opts){.pack = path}, &p);
  const char *msg = sf_last_error();
  CHECK_MSG(s == SF_ERR_BAD_MODEL && p == NULL, "%s %zu: status %d: %s", what, at, (int)s, msg);
  CHECK_MSG(strstr(msg, path) != NULL, "%s %zu: '%s' does not name the file", what, at, msg);
  CHECK_MSG(needle == NULL || strstr(msg, needle) != NULL, "%s %zu: '%s' lacks '%s'", what, at, msg, needle);
  sf_pipeline_destroy(p);
}

/* Byte at of the file at path xor flip (in place). */
static void flip_byte(const char *path, size_t at, unsigned char flip) {
  FILE *f = fopen(path, "r+b");
  int c = f && fseek(f, (long)at, SEEK_SET) == 0 ? fgetc(f) : EOF;
  CHECK(c != EOF && fseek(f, (long)at, SEEK_SET) == 0 && fputc(c ^ flip, f) != EOF);
  if (f) fclose(f);
}

static void test_damaged(void) {
  char good[512], bad[512];
  pack_path(good, sizeof good, "tiny-f32.sfpack");
  pack_path(bad, sizeof bad, "damaged.sfpack");
  size_t n = 0;
  unsigned char *data = read_all(good, &n);
  CHECK(data != NULL && n > 4096);
  if (data == NULL) return;
  /* a flipped bit anywhere in the header or the first index entries */
  write_file(bad, data, n);
  for (size_t at = 0; at < 512 + 3 * 256; at++) {
    flip_byte(bad, at, (unsigned char)(1u << (at % 8)));
    expect_damaged(bad, NULL, "flipped byte", at);
    flip_byte(bad, at, (unsigned char)(1u << (at % 8)));
  }
  flip_byte(bad, 100, 1);
  expect_damaged(bad, "header checksum", "flipped byte", 100);
  flip_byte(bad, 100, 1);
  flip_byte(bad, 600, 1);
  expect_damaged(bad, "index checksum", "flipped byte", 600);
  flip_byte(bad, 600, 1);
  /* extended */
  FILE *f = fopen(bad, "ab");
  CHECK(f != NULL && fputc(0, f) != EOF);
  if (f) fclose(f);
  expect_damaged(bad, "extra bytes", "extended", n + 1);
  /* truncated: through the file, then at every byte of the header and the first index entries */
  CHECK(truncate(bad, (off_t)(n - 1)) == 0);
  expect_damaged(bad, "truncated", "truncated at", n - 1);
  for (size_t k = 63; k >= 1; k--) {
    CHECK(truncate(bad, (off_t)(n * k / 64)) == 0);
    expect_damaged(bad, NULL, "truncated at", n * k / 64);
  }
  for (size_t cut = 1100; cut-- > 0;) {
    CHECK(truncate(bad, (off_t)cut) == 0);
    expect_damaged(bad, cut < 8 ? "not a snapfusion pack" : NULL, "truncated at", cut);
  }
  write_file(bad, data, 300);
  expect_damaged(bad, "truncated", "truncated at", 300);
  /* not a pack at all: a safetensors checkpoint, and garbage after the magic */
  char st[4400];
  snprintf(st, sizeof st, "%s/unet/diffusion_pytorch_model.safetensors", model);
  size_t sn = 0;
  unsigned char *sd = read_all(st, &sn);
  if (sd) {
    write_file(bad, sd, sn);
    expect_damaged(bad, "not a snapfusion pack", "safetensors", sn);
  }
  free(sd);
  for (size_t i = 8; i < 8192; i++) data[i] = (unsigned char)(i * 2654435761u >> 13);
  write_file(bad, data, 8192);
  expect_damaged(bad, NULL, "garbage", 8192);
  free(data);
  remove(bad);
}

int main(void) {
  const char *fx = sf_test_fixtures();
  if (fx == NULL) return TEST_SKIP_EXIT_CODE;
  char buf[4200];
  snprintf(buf, sizeof buf, "%s/public/tiny-sd", fx);
  model = strdup(buf);
  snprintf(buf, sizeof buf, "%s/public/tiny-pruned/snapfusion_like", fx);
  other_model = strdup(buf);
  snprintf(workdir, sizeof workdir, "/tmp/sf-api-pack-XXXXXX");
  if (mkdtemp(workdir) == NULL) {
    fprintf(stderr, "mkdtemp failed\n");
    return 1;
  }
  if (sf_context_create(&ctx) != SF_OK) return 1;
  sf_context_set_int(ctx, SF_PARAM_THREADS, 2);
  mem_folder m = {0};
  walk(&m, model, "");

  test_round_trip(SF_WEIGHT_F32, NULL, "tiny-f32.sfpack", &m);
  test_round_trip(SF_WEIGHT_F16, NULL, "tiny-f16.sfpack", &m);
  test_round_trip(SF_WEIGHT_Q8, NULL, "tiny-q8.sfpack", &m);
  /* the fp16 variant as stored: an f16 UNet, f32 text encoder and VAE */
  test_round_trip(SF_WEIGHT_DEFAULT, "fp16", "tiny-fp16-variant.sfpack", &m);
  test_refusals(&m);
  test_damaged();

  mem_folder_free(&m);
  sf_context_destroy(ctx);
  const char *names[] = {"tiny-f32.sfpack", "tiny-f16.sfpack", "tiny-q8.sfpack", "tiny-fp16-variant.sfpack",
                         "tiny-unet-dec.sfpack"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    char path[512];
    pack_path(path, sizeof path, names[i]);
    remove(path);
  }
  rmdir(workdir);
  free(model);
  free(other_model);
  TEST_MAIN_END();
}
