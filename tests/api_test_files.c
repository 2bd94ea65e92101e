/* Loading a model from memory (sf_files + sf_pipeline_load_files) through the public API only:
 * every file of the tiny-sd fixture is read into memory (the folder is walked here), added
 * copied and, separately, borrowed, and the pipelines loaded from the sets must compute exactly
 * what the pipeline loaded from the folder computes: prompt embeddings, a UNet call, a VAE
 * decode, a 2-step generation (also the fp16 variant, and TAESD's raw files). Then the
 * failures (missing files, a truncated safetensors buffer, bad paths, NULL data, a set without
 * model_index.json) and the lifetime rules: borrowed bytes are never written, and a copied set
 * may be destroyed (or its files replaced) right after loading. */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <snapfusion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "test.h"

static sf_context *ctx;

#include "mem_folder.h"

/* ---- loading and running ------------------------------------------------------------------ */

static sf_params *load_options(const char *variant, int64_t networks) {
  sf_params *opt = NULL;
  CHECK_EQ_INT(sf_params_create(&opt), SF_OK);
  if (variant) CHECK_EQ_INT(sf_params_set_string(opt, SF_PARAM_VARIANT, variant), SF_OK);
  if (networks) CHECK_EQ_INT(sf_params_set_int(opt, SF_PARAM_COMPONENTS, networks), SF_OK);
  return opt;
}

static sf_pipeline *load_dir(const char *dir, const char *variant, int64_t networks) {
  sf_params *opt = load_options(variant, networks);
  sf_pipeline *p = NULL;
  sf_status s = sf_pipeline_load(ctx, dir, opt, &p);
  CHECK_MSG(s == SF_OK, "load %s: %s", dir, sf_last_error());
  sf_params_destroy(opt);
  return p;
}

static sf_pipeline *load_set(const sf_files *files, const char *variant, int64_t networks) {
  sf_params *opt = load_options(variant, networks);
  sf_pipeline *p = NULL;
  sf_status s = sf_pipeline_load_files(ctx, files, opt, &p);
  CHECK_MSG(s == SF_OK, "load from memory: %s", sf_last_error());
  CHECK((p != NULL) == (s == SF_OK));
  sf_params_destroy(opt);
  return p;
}

/* Loading must fail with `want` and a message containing `needle`. */
static void load_set_fails(const sf_files *files, sf_status want, const char *needle) {
  sf_pipeline *p = (sf_pipeline *)&p; /* must be reset to NULL */
  sf_status s = sf_pipeline_load_files(ctx, files, NULL, &p);
  CHECK_MSG(s == want, "got %s, want %s: %s", sf_status_string(s), sf_status_string(want), sf_last_error());
  CHECK(p == NULL);
  CHECK_MSG(strstr(sf_last_error(), needle) != NULL, "message \"%s\" lacks \"%s\"", sf_last_error(), needle);
  CHECK_MSG(strstr(sf_context_last_error(ctx), needle) != NULL, "context message \"%s\" lacks \"%s\"",
            sf_context_last_error(ctx), needle);
}

/* Everything a pipeline computes that the comparisons look at. */
typedef struct results {
  float emb[77 * 32];
  float noise[4 * 8 * 8];
  float image[3 * 64 * 64];
  unsigned char *pixels; /* 64x64 RGB8 of a 2-step generation */
  float final_f32[3 * 64 * 64];
} results;

static int64_t info(sf_pipeline *p, sf_info key) {
  int64_t v = -1;
  CHECK_EQ_INT(sf_pipeline_get_int(p, key, &v), SF_OK);
  return v;
}

static sf_params *gen_params(void) {
  sf_params *g = NULL;
  CHECK_EQ_INT(sf_params_create(&g), SF_OK);
  sf_params_set_string(g, SF_PARAM_PROMPT, "a photo of an astronaut riding a horse on mars");
  sf_params_set_string(g, SF_PARAM_NEGATIVE_PROMPT, "blurry");
  sf_params_set_int(g, SF_PARAM_WIDTH, 64);
  sf_params_set_int(g, SF_PARAM_HEIGHT, 64);
  sf_params_set_int(g, SF_PARAM_STEPS, 2);
  sf_params_set_int(g, SF_PARAM_SEED, 7);
  return g;
}

/* Runs the building blocks and a 2-step generation on p (which has every network of tiny-sd). */
static void run_all(sf_pipeline *p, results *r) {
  memset(r, 0, sizeof *r);
  if (p == NULL) return;
  CHECK_EQ_INT(info(p, SF_INFO_TEXT_HIDDEN), 32);
  CHECK_EQ_INT(info(p, SF_INFO_LATENT_CHANNELS), 4);
  CHECK_MSG(sf_encode_prompt(p, "a photo of a cat", 0, r->emb, 77 * 32) == SF_OK, "%s", sf_last_error());
  /* A UNet call on seeded latents, timestep 500, the prompt's embeddings. */
  float latents[4 * 8 * 8], t = 500.0f;
  sf_rng *rng = NULL;
  CHECK_EQ_INT(sf_rng_create(SF_RNG_TORCH_CPU, 3, &rng), SF_OK);
  CHECK_EQ_INT(sf_rng_randn(rng, latents, 4 * 8 * 8), SF_OK);
  sf_rng_destroy(rng);
  CHECK_MSG(sf_unet_predict_v2(p, latents, 4 * 8 * 8, 1, 8, 8, &t, 1, r->emb, 77 * 32, 77, r->noise, 4 * 8 * 8) ==
                SF_OK,
            "%s", sf_last_error());
  CHECK_MSG(sf_decode_latents_v2(p, SF_NET_VAE_DECODER, latents, 4 * 8 * 8, 1, 8, 8, 0, r->image, 3 * 64 * 64) ==
                SF_OK,
            "%s", sf_last_error());
  sf_params *g = gen_params();
  sf_image *img = NULL;
  CHECK_MSG(sf_generate(p, g, NULL, NULL, &img) == SF_OK, "%s", sf_last_error());
  if (img) {
    CHECK_EQ_INT(sf_image_width(img), 64);
    r->pixels = malloc(64 * 64 * 3);
    CHECK(r->pixels != NULL && sf_image_copy(img, r->pixels, 64 * 64 * 3, 64 * 3, NULL) == SF_OK);
  }
  sf_image_destroy(img);
  /* The same run step-wise, for the float image before 8-bit rounding. */
  sf_job *job = NULL;
  CHECK_MSG(sf_job_start(p, g, &job) == SF_OK, "%s", sf_last_error());
  img = NULL;
  if (job) CHECK_MSG(sf_job_finish(job, &img) == SF_OK, "%s", sf_last_error());
  if (job) CHECK_EQ_INT(sf_job_image_f32(job, SF_LAYOUT_NCHW, r->final_f32, 3 * 64 * 64), SF_OK);
  sf_image_destroy(img);
  sf_job_destroy(job);
  sf_params_destroy(g);
}

static int nonzero(const float *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (x[i] != 0.0f) return 1;
  return 0;
}

/* Bit-identical, and not trivially so (the reference computed something). */
static void expect_same(const results *want, const results *got, const char *what) {
  CHECK_MSG(nonzero(want->emb, 77 * 32) && nonzero(want->noise, 4 * 8 * 8) && nonzero(want->image, 3 * 64 * 64) &&
                nonzero(want->final_f32, 3 * 64 * 64),
            "%s: the reference results are zero", what);
  CHECK_MSG(memcmp(want->emb, got->emb, sizeof want->emb) == 0, "%s: prompt embeddings differ", what);
  CHECK_MSG(memcmp(want->noise, got->noise, sizeof want->noise) == 0, "%s: UNet outputs differ", what);
  CHECK_MSG(memcmp(want->image, got->image, sizeof want->image) == 0, "%s: decoded images differ", what);
  CHECK_MSG(want->pixels && got->pixels && memcmp(want->pixels, got->pixels, 64 * 64 * 3) == 0,
            "%s: generated pixels differ", what);
  CHECK_MSG(memcmp(want->final_f32, got->final_f32, sizeof want->final_f32) == 0, "%s: float images differ", what);
}

static void results_free(results *r) {
  free(r->pixels);
  r->pixels = NULL;
}

/* The describe text from its second line on (the first names the model: folder or "memory"). */
static char *describe_body(sf_pipeline *p) {
  size_t need = 0;
  if (p == NULL || sf_pipeline_describe(p, SF_FORMAT_TEXT, NULL, 0, &need) != SF_OK) return NULL;
  char *text = malloc(need);
  if (text == NULL || sf_pipeline_describe(p, SF_FORMAT_TEXT, text, need, NULL) != SF_OK) {
    free(text);
    return NULL;
  }
  char *nl = strchr(text, '\n');
  memmove(text, nl ? nl + 1 : text, strlen(nl ? nl + 1 : text) + 1);
  return text;
}

/* ---- the tests ------------------------------------------------------------------------------- */

static void test_same_results(const char *dir, mem_folder *m) {
  results ref, got;
  sf_pipeline *pd = load_dir(dir, NULL, 0);
  run_all(pd, &ref);
  char *desc_dir = describe_body(pd);
  const uint64_t sum = checksum(m);
  for (int copy = 1; copy >= 0; copy--) {
    sf_files *files = make_set(m, copy, NULL);
    sf_pipeline *pm = load_set(files, NULL, 0);
    /* (d) a set of copied files may go right after loading. */
    if (copy) {
      sf_files_destroy(files);
      files = NULL;
    }
    run_all(pm, &got);
    expect_same(&ref, &got, copy ? "copied set" : "borrowed set");
    char *desc_mem = describe_body(pm);
    CHECK_MSG(desc_dir && desc_mem && strcmp(desc_dir, desc_mem) == 0, "descriptions differ:\n%s\n---\n%s",
              desc_dir ? desc_dir : "(none)", desc_mem ? desc_mem : "(none)");
    free(desc_mem);
    size_t need = 0;
    char first[64] = "";
    if (pm) CHECK_EQ_INT(sf_pipeline_describe(pm, SF_FORMAT_TEXT, first, sizeof first, &need), SF_OK);
    CHECK_MSG(strncmp(first, "model: memory\n", 14) == 0, "describe starts \"%.20s\"", first);
    results_free(&got);
    sf_pipeline_destroy(pm);
    sf_files_destroy(files); /* the borrowed set: only after its pipelines */
  }
  /* (d) the borrowed bytes were read, never written. */
  CHECK_MSG(checksum(m) == sum, "a borrowed buffer was written");
  free(desc_dir);
  results_free(&ref);
  sf_pipeline_destroy(pd);
}

/* Replacing a copied file after loading changes nothing for the pipeline loaded before. */
static void test_replace_after_load(const char *dir, mem_folder *m) {
  results ref, got;
  sf_pipeline *pd = load_dir(dir, NULL, 0);
  run_all(pd, &ref);
  sf_files *files = make_set(m, 1, NULL);
  sf_pipeline *pm = load_set(files, NULL, 0);
  static const unsigned char junk[16] = {1, 2, 3};
  CHECK_EQ_INT(sf_files_add(files, "unet/diffusion_pytorch_model.safetensors", junk, sizeof junk, 1), SF_OK);
  CHECK_EQ_INT(sf_files_add(files, "vae/diffusion_pytorch_model.safetensors", junk, sizeof junk, 0), SF_OK);
  run_all(pm, &got);
  expect_same(&ref, &got, "after replacing files");
  results_free(&got);
  /* The set now holds the junk: a new load sees it. */
  load_set_fails(files, SF_ERR_BAD_MODEL, "memory:unet/diffusion_pytorch_model.safetensors");
  sf_pipeline_destroy(pm);
  sf_files_destroy(files);
  results_free(&ref);
  sf_pipeline_destroy(pd);
}

/* (b) SF_PARAM_VARIANT "fp16" picks unet/diffusion_pytorch_model.fp16.safetensors from memory. */
static void test_variant(const char *dir, mem_folder *m) {
  CHECK(find(m, "unet/diffusion_pytorch_model.fp16.safetensors") != NULL);
  const int64_t nets = SF_NET_TEXT_ENCODER | SF_NET_UNET;
  sf_pipeline *pd = load_dir(dir, "fp16", nets);
  sf_pipeline *p32 = load_dir(dir, NULL, nets);
  sf_files *files = make_set(m, 0, NULL);
  sf_pipeline *pm = load_set(files, "fp16", nets);
  float latents[4 * 8 * 8], t = 321.0f, emb[77 * 32], a[4 * 8 * 8], b[4 * 8 * 8], c[4 * 8 * 8];
  for (size_t i = 0; i < 4 * 8 * 8; i++) latents[i] = (float)((int)(i * 37 % 19) - 9) / 9.0f;
  if (pd && pm && p32) {
    CHECK_EQ_INT(sf_encode_prompt(pd, "a red fox", 0, emb, 77 * 32), SF_OK);
    CHECK_EQ_INT(sf_unet_predict_v2(pd, latents, 256, 1, 8, 8, &t, 1, emb, 77 * 32, 77, a, 256), SF_OK);
    CHECK_EQ_INT(sf_unet_predict_v2(pm, latents, 256, 1, 8, 8, &t, 1, emb, 77 * 32, 77, b, 256), SF_OK);
    CHECK_EQ_INT(sf_unet_predict_v2(p32, latents, 256, 1, 8, 8, &t, 1, emb, 77 * 32, 77, c, 256), SF_OK);
    CHECK_MSG(memcmp(a, b, sizeof a) == 0, "fp16 UNet from memory differs from the folder's");
    CHECK_MSG(memcmp(a, c, sizeof a) != 0, "the fp16 variant computes what the fp32 file does: not loaded?");
    CHECK(nonzero(a, 256));
    char *desc = describe_body(pm);
    CHECK_MSG(desc && strstr(desc, "unet/diffusion_pytorch_model.fp16.safetensors") != NULL, "%s",
              desc ? desc : "(none)");
    free(desc);
  }
  sf_pipeline_destroy(pm);
  /* A variant the set lacks falls back to the plain file, as from a folder. */
  pm = load_set(files, "bf16", nets);
  if (pm) {
    char *desc = describe_body(pm);
    CHECK_MSG(desc && strstr(desc, "unet/diffusion_pytorch_model.safetensors") != NULL, "%s", desc ? desc : "(none)");
    free(desc);
  }
  sf_pipeline_destroy(pm);
  sf_files_destroy(files);
  sf_pipeline_destroy(p32);
  sf_pipeline_destroy(pd);
}

/* The same load options as a folder: components, inspect only, tokenizer path, random weights. */
static void test_options(const char *fx, mem_folder *m) {
  sf_files *files = make_set(m, 0, "tokenizer/merges.txt");
  /* The folder's tokenizer is broken (merges.txt missing): a tokenizer path replaces it. */
  load_set_fails(files, SF_ERR_IO, "memory:tokenizer/merges.txt");
  char tok[4200];
  snprintf(tok, sizeof tok, "%s/public/tokenizer", fx);
  sf_params *opt = load_options(NULL, SF_NET_TEXT_ENCODER);
  CHECK_EQ_INT(sf_params_set_string(opt, SF_PARAM_TOKENIZER_PATH, tok), SF_OK);
  sf_pipeline *p = NULL;
  CHECK_MSG(sf_pipeline_load_files(ctx, files, opt, &p) == SF_OK, "%s", sf_last_error());
  int32_t ids[77];
  if (p) {
    CHECK_EQ_INT(sf_tokenize(p, "a photo of a cat", ids, 77, NULL), SF_OK);
    CHECK_EQ_INT(ids[2], 1125); /* "photo</w>" in CLIP's vocabulary */
    CHECK_EQ_INT(info(p, SF_INFO_NETWORKS), SF_NET_TEXT_ENCODER);
  }
  sf_pipeline_destroy(p);
  sf_params_destroy(opt);
  sf_files_destroy(files);
  /* Without the text encoder a set without tokenizer/ loads (with it, it does not). */
  files = make_set(m, 0, "tokenizer/");
  load_set_fails(files, SF_ERR_IO, "memory:tokenizer/: component folder is missing");
  opt = load_options(NULL, SF_NET_UNET | SF_NET_VAE_DECODER);
  p = NULL;
  CHECK_MSG(sf_pipeline_load_files(ctx, files, opt, &p) == SF_OK, "%s", sf_last_error());
  if (p) CHECK_EQ_INT(info(p, SF_INFO_NETWORKS), SF_NET_UNET | SF_NET_VAE_DECODER);
  sf_pipeline_destroy(p);
  sf_params_destroy(opt);
  sf_files_destroy(files);

  /* Inspect only: configs without weights are enough; random weights build from them. */
  files = NULL;
  CHECK_EQ_INT(sf_files_create(&files), SF_OK);
  for (size_t i = 0; i < m->n; i++)
    if (strstr(m->f[i].path, ".safetensors") == NULL)
      CHECK_EQ_INT(sf_files_add(files, m->f[i].path, m->f[i].data, m->f[i].size, 1), SF_OK);
  opt = load_options(NULL, 0);
  CHECK_EQ_INT(sf_params_set_int(opt, SF_PARAM_INSPECT_ONLY, 1), SF_OK);
  p = NULL;
  CHECK_MSG(sf_pipeline_load_files(ctx, files, opt, &p) == SF_OK, "%s", sf_last_error());
  if (p) CHECK_EQ_INT(info(p, SF_INFO_NETWORKS), 0);
  sf_pipeline_destroy(p);
  sf_params_destroy(opt);
  load_set_fails(files, SF_ERR_BAD_MODEL, "has a config but no weights");
  opt = load_options(NULL, 0);
  CHECK_EQ_INT(sf_params_set_int(opt, SF_PARAM_RANDOM_WEIGHTS, 1), SF_OK);
  p = NULL;
  CHECK_MSG(sf_pipeline_load_files(ctx, files, opt, &p) == SF_OK, "%s", sf_last_error());
  float emb[77 * 32];
  if (p) CHECK_EQ_INT(sf_encode_prompt(p, "a cat", 0, emb, 77 * 32), SF_OK);
  sf_pipeline_destroy(p);
  sf_params_destroy(opt);
  sf_files_destroy(files);
}

/* A set of TAESD's raw taesd.py files alone loads like their folder. */
static void test_taesd(const char *fx) {
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/public/taesd", fx);
  mem_folder t = {0};
  walk(&t, dir, "");
  sf_files *files = make_set(&t, 1, NULL);
  sf_pipeline *pd = load_dir(dir, NULL, 0), *pm = load_set(files, NULL, 0);
  sf_files_destroy(files);
  float latents[4 * 8 * 8], a[3 * 64 * 64], b[3 * 64 * 64];
  for (size_t i = 0; i < 4 * 8 * 8; i++) latents[i] = (float)((int)(i * 13 % 11) - 5) / 5.0f;
  if (pd && pm) {
    CHECK_EQ_INT(info(pm, SF_INFO_NETWORKS), info(pd, SF_INFO_NETWORKS));
    CHECK_EQ_INT(sf_decode_latents_v2(pd, SF_NET_TAESD_DECODER, latents, 256, 1, 8, 8, 0, a, 3 * 64 * 64), SF_OK);
    CHECK_EQ_INT(sf_decode_latents_v2(pm, SF_NET_TAESD_DECODER, latents, 256, 1, 8, 8, 0, b, 3 * 64 * 64), SF_OK);
    CHECK(nonzero(a, 3 * 64 * 64));
    CHECK_MSG(memcmp(a, b, sizeof a) == 0, "TAESD from memory decodes differently");
  }
  sf_pipeline_destroy(pm);
  sf_pipeline_destroy(pd);
  /* A truncated raw file is named. */
  const mem_file *dec = find(&t, "taesd_decoder.safetensors");
  CHECK(dec != NULL);
  if (dec) {
    CHECK_EQ_INT(sf_files_create(&files), SF_OK);
    CHECK_EQ_INT(sf_files_add(files, "taesd_decoder.safetensors", dec->data, dec->size - 1, 1), SF_OK);
    load_set_fails(files, SF_ERR_BAD_MODEL, "memory:taesd_decoder.safetensors");
    sf_files_destroy(files);
  }
  mem_folder_free(&t);
}

/* (c) what goes wrong, and how it is named. */
static void test_failures(mem_folder *m) {
  /* Missing files. */
  struct {
    const char *skip;
    sf_status want;
    const char *needle;
  } missing[] = {
      {"model_index.json", SF_ERR_IO, "memory:model_index.json is missing"},
      {"unet/config.json", SF_ERR_IO, "memory:unet/config.json is missing"},
      {"scheduler/scheduler_config.json", SF_ERR_IO, "memory:scheduler/"},
      {"tokenizer/vocab.json", SF_ERR_IO, "memory:tokenizer/vocab.json: cannot open"},
  };
  for (size_t i = 0; i < sizeof missing / sizeof *missing; i++) {
    sf_files *files = make_set(m, 0, missing[i].skip);
    load_set_fails(files, missing[i].want, missing[i].needle);
    sf_files_destroy(files);
  }
  /* An empty set, and one with other files only. */
  sf_files *files = NULL;
  CHECK_EQ_INT(sf_files_create(&files), SF_OK);
  load_set_fails(files, SF_ERR_IO, "memory:model_index.json is missing");
  CHECK_EQ_INT(sf_files_add(files, "readme.txt", "hi", 2, 1), SF_OK);
  load_set_fails(files, SF_ERR_IO, "memory:model_index.json is missing");
  sf_files_destroy(files);

  /* A truncated weight buffer (copied, so a read past its end would be caught by ASan). */
  const mem_file *unet = find(m, "unet/diffusion_pytorch_model.safetensors");
  CHECK(unet != NULL);
  const size_t cuts[] = {0, 4, 8, 100, 0 /* half */, 1 /* all but one byte */};
  for (size_t i = 0; unet && i < sizeof cuts / sizeof *cuts; i++) {
    size_t size = i == 4 ? unet->size / 2 : i == 5 ? unet->size - 1 : cuts[i];
    files = make_set(m, 1, NULL);
    CHECK_EQ_INT(sf_files_add(files, unet->path, unet->data, size, 1), SF_OK);
    load_set_fails(files, SF_ERR_BAD_MODEL, "file memory:unet/diffusion_pytorch_model.safetensors");
    sf_files_destroy(files);
  }
  /* A bad config. */
  files = make_set(m, 0, NULL);
  CHECK_EQ_INT(sf_files_add(files, "vae/config.json", "{\"a\": ", 6, 1), SF_OK);
  load_set_fails(files, SF_ERR_BAD_MODEL, "memory:vae/config.json");
  sf_files_destroy(files);

  /* Bad paths, NULL data: refused by sf_files_add, naming the path. */
  CHECK_EQ_INT(sf_files_create(&files), SF_OK);
  const char *bad[] = {"../x", "/abs", "", "a/../b", "a//b", "./a", "a/", "a\\b", ".."};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    sf_status s = sf_files_add(files, bad[i], "x", 1, 1);
    CHECK_MSG(s == SF_ERR_INVALID_ARGUMENT, "path \"%s\": %s", bad[i], sf_status_string(s));
    char quoted[64];
    snprintf(quoted, sizeof quoted, "\"%s\"", bad[i]);
    CHECK_MSG(strstr(sf_last_error(), quoted) != NULL, "\"%s\" not named: %s", bad[i], sf_last_error());
  }
  CHECK_EQ_INT(sf_files_add(files, NULL, "x", 1, 1), SF_ERR_INVALID_ARGUMENT);
  CHECK_EQ_INT(sf_files_add(files, "unet/config.json", NULL, 5, 1), SF_ERR_INVALID_ARGUMENT);
  CHECK_MSG(strstr(sf_last_error(), "unet/config.json") != NULL, "%s", sf_last_error());
  CHECK_EQ_INT(sf_files_add(files, "unet/config.json", NULL, 5, 0), SF_ERR_INVALID_ARGUMENT);
  CHECK_EQ_INT(sf_files_add(files, "empty.txt", NULL, 0, 0), SF_OK); /* an empty file */
  /* A file and a folder of the same name cannot both exist. */
  CHECK_EQ_INT(sf_files_add(files, "unet/config.json", "{}", 2, 1), SF_OK);
  CHECK_EQ_INT(sf_files_add(files, "unet", "{}", 2, 1), SF_ERR_INVALID_ARGUMENT);
  CHECK_MSG(strstr(sf_last_error(), "unet") != NULL, "%s", sf_last_error());
  CHECK_EQ_INT(sf_files_add(files, "unet/config.json/x", "{}", 2, 1), SF_ERR_INVALID_ARGUMENT);
  CHECK_EQ_INT(sf_files_add(NULL, "a", "x", 1, 1), SF_ERR_INVALID_ARGUMENT);
  sf_files_destroy(files);
  sf_files_destroy(NULL);

  /* NULL arguments. */
  CHECK_EQ_INT(sf_files_create(NULL), SF_ERR_INVALID_ARGUMENT);
  sf_pipeline *p = (sf_pipeline *)&p;
  CHECK_EQ_INT(sf_pipeline_load_files(ctx, NULL, NULL, &p), SF_ERR_INVALID_ARGUMENT);
  CHECK(p == NULL);
  CHECK(strstr(sf_last_error(), "sf_pipeline_load_files") != NULL);
  CHECK_EQ_INT(sf_files_create(&files), SF_OK);
  CHECK_EQ_INT(sf_pipeline_load_files(NULL, files, NULL, &p), SF_ERR_INVALID_ARGUMENT);
  CHECK_EQ_INT(sf_pipeline_load_files(ctx, files, NULL, NULL), SF_ERR_INVALID_ARGUMENT);
  sf_files_destroy(files);
}

int main(void) {
  const char *fx = sf_test_fixtures();
  if (fx == NULL) return TEST_SKIP_EXIT_CODE;
  if (sf_context_create(&ctx) != SF_OK) {
    fprintf(stderr, "context: %s\n", sf_last_error());
    return 1;
  }
  sf_context_set_int(ctx, SF_PARAM_THREADS, 2);
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/public/tiny-sd", fx);
  mem_folder m = {0};
  walk(&m, dir, "");
  CHECK(m.n >= 10);
  CHECK(find(&m, "model_index.json") && find(&m, "tokenizer/vocab.json") &&
        find(&m, "unet/diffusion_pytorch_model.safetensors"));

  test_same_results(dir, &m);
  test_replace_after_load(dir, &m);
  test_variant(dir, &m);
  test_options(fx, &m);
  test_taesd(fx);
  test_failures(&m);

  mem_folder_free(&m);
  sf_context_destroy(ctx);
  TEST_MAIN_END();
}
