#define _XOPEN_SOURCE 700 /* mkdtemp, nftw */
#include <ftw.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/model_folder.h"
#include "test.h"

static sf_diag diag;

/* ---- temp folder helpers ---------------------------------------------------------------- */

static char root[64];

static const char *at(const char *fmt, ...) {
  static char buf[4][512];
  static int k;
  char *b = buf[k++ & 3];
  int n = snprintf(b, 512, "%s/", root);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(b + n, (size_t)(512 - n), fmt, ap);
  va_end(ap);
  return b;
}

static void write_file(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  CHECK_MSG(f != NULL, "cannot write %s", path);
  if (f == NULL) return;
  if (n) fwrite(data, 1, n, f);
  fclose(f);
}

static void write_text(const char *path, const char *text) { write_file(path, text, strlen(text)); }

/* A safetensors file holding the named tensors, each F32 [2] (or F16 [2] if half). */
static void write_st(const char *path, int half, int n, const char *const *names) {
  char header[2048];
  unsigned char data[512];
  size_t off = 0, es = half ? 2 : 4;
  int hn = snprintf(header, sizeof header, "{");
  for (int i = 0; i < n; i++) {
    hn += snprintf(header + hn, sizeof header - (size_t)hn,
                   "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[2],\"data_offsets\":[%zu,%zu]}",
                   i ? "," : "", names[i], half ? "F16" : "F32", off, off + 2 * es);
    for (int k = 0; k < 2; k++) {
      float v = (float)(i * 2 + k);
      if (half) {
        uint16_t h = sf_f32_to_f16(v);
        memcpy(data + off + 2 * (size_t)k, &h, 2);
      } else {
        memcpy(data + off + 4 * (size_t)k, &v, 4);
      }
    }
    off += 2 * es;
  }
  hn += snprintf(header + hn, sizeof header - (size_t)hn, "}");
  unsigned char *buf = malloc(8 + (size_t)hn + off);
  uint64_t hl = (uint64_t)hn;
  for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(hl >> (8 * i));
  memcpy(buf + 8, header, (size_t)hn);
  memcpy(buf + 8 + hn, data, off);
  write_file(path, buf, 8 + (size_t)hn + off);
  free(buf);
}

static const char *const unet_names[] = {"conv_in.bias", "conv_in.weight", "time_embedding.w"};
static const char *const vae_names[] = {"decoder.conv_in.weight", "encoder.conv_in.weight"};
static const char *const te_names[] = {"text_model.a", "text_model.b", "text_model.c",
                                       "text_model.d"};

/* A complete folder: unet, vae, text_encoder (single files), tokenizer, scheduler. */
static void make_folder(void) {
  strcpy(root, "/tmp/sf_test_mf_XXXXXX");
  CHECK(mkdtemp(root) != NULL);
  write_text(at("model_index.json"),
             "{\"_class_name\": \"StableDiffusionPipeline\", \"_diffusers_version\": \"0.30.3\",\n"
             " \"feature_extractor\": [null, null], \"requires_safety_checker\": false,\n"
             " \"safety_checker\": [null, null], \"image_encoder\": [\"transformers\", null],\n"
             " \"scheduler\": [\"diffusers\", \"DDIMScheduler\"],\n"
             " \"text_encoder\": [\"transformers\", \"CLIPTextModel\"],\n"
             " \"tokenizer\": [\"transformers\", \"CLIPTokenizer\"],\n"
             " \"unet\": [\"diffusers\", \"UNet2DConditionModel\"],\n"
             " \"vae\": [\"diffusers\", \"AutoencoderKL\"]}");
  const char *dirs[] = {"unet", "vae", "text_encoder", "tokenizer", "scheduler"};
  for (int i = 0; i < 5; i++) CHECK(mkdir(at("%s", dirs[i]), 0700) == 0);
  write_text(at("unet/config.json"),
             "{\"_class_name\": \"UNet2DConditionModel\", \"sample_size\": 8}");
  write_st(at("unet/diffusion_pytorch_model.safetensors"), 0, 3, unet_names);
  write_text(at("vae/config.json"), "{\"_class_name\": \"AutoencoderKL\", \"scaling_factor\": 0.18215}");
  write_st(at("vae/diffusion_pytorch_model.safetensors"), 0, 2, vae_names);
  write_text(at("text_encoder/config.json"), "{\"hidden_size\": 32}");
  write_st(at("text_encoder/model.safetensors"), 0, 4, te_names);
  write_text(at("tokenizer/tokenizer_config.json"), "{\"model_max_length\": 77}");
  write_text(at("tokenizer/vocab.json"), "{}");
  write_text(at("tokenizer/merges.txt"), "#version: 0.2\n");
  write_text(at("scheduler/scheduler_config.json"),
             "{\"_class_name\": \"DDIMScheduler\", \"lambda_min_clipped\": -Infinity}");
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static void remove_folder(void) { nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

static sf_model_folder *open_folder(const char *variant) {
  sf_diag_clear(&diag);
  return sf_model_folder_open(root, variant, &diag);
}

/* Asserts opening fails with status and a message holding both needles and the folder. */
static void expect_fail(const char *variant, sf_status status, const char *n1, const char *n2,
                        int line) {
  sf_model_folder *m = open_folder(variant);
  CHECK_MSG(m == NULL, "line %d: opened", line);
  sf_model_folder_close(m);
  CHECK_MSG(diag.status == status, "line %d: status %d: %s", line, (int)diag.status, diag.msg);
  CHECK_MSG(strstr(diag.msg, root) != NULL, "line %d: folder not named: %s", line, diag.msg);
  CHECK_MSG(strstr(diag.msg, n1) != NULL, "line %d: '%s' lacks '%s'", line, diag.msg, n1);
  if (n2) CHECK_MSG(strstr(diag.msg, n2) != NULL, "line %d: '%s' lacks '%s'", line, diag.msg, n2);
}

#define EXPECT_FAIL(v, st, a, b) expect_fail(v, st, a, b, __LINE__)

/* ---- cases ------------------------------------------------------------------------------ */

static void test_good(void) {
  make_folder();
  sf_model_folder *m = open_folder(NULL);
  CHECK_MSG(m != NULL, "%s", diag.msg);
  if (m) {
    CHECK(strcmp(m->class_name, "StableDiffusionPipeline") == 0);
    CHECK_EQ_INT(m->n_components, 5);
    CHECK(sf_model_folder_find(m, "safety_checker") == NULL);
    CHECK(sf_model_folder_find(m, "feature_extractor") == NULL);
    CHECK(sf_model_folder_find(m, "image_encoder") == NULL);
    CHECK(sf_model_folder_find(m, "requires_safety_checker") == NULL);
    const sf_component *u = sf_model_folder_find(m, "unet");
    CHECK(u && u->kind == SF_COMPONENT_MODEL && u->weights && !u->config_only && !u->sharded &&
          !u->is_variant && u->note == NULL);
    CHECK(u && strcmp(u->library, "diffusers") == 0 &&
          strcmp(u->class_name, "UNet2DConditionModel") == 0);
    CHECK(u && strcmp(u->weights_file, "unet/diffusion_pytorch_model.safetensors") == 0);
    int64_t ss = 0;
    CHECK(u && sf_json_as_i64(sf_json_get(sf_component_config(u), "sample_size"), &ss) && ss == 8);
    if (u && u->weights) {
      sf_weights *w = u->weights;
      CHECK_EQ_INT(sf_weights_count(w), 3);
      const sf_st_tensor *t = sf_weights_find(w, "conv_in.weight");
      CHECK(t && t->numel == 2);
      CHECK(sf_weights_find(w, "missing") == NULL);
      CHECK(strcmp(sf_weights_at(w, 0)->name, "conv_in.bias") == 0);
      CHECK(sf_weights_at(w, 3) == NULL);
      CHECK(strstr(sf_weights_file_of(w, t), "unet/diffusion_pytorch_model.safetensors") != NULL);
      /* usage tracking */
      CHECK_EQ_INT(sf_weights_unused_count(w), 3);
      sf_weights_mark_used(w, t);
      sf_weights_mark_used(w, sf_weights_find(w, "conv_in.bias"));
      CHECK_EQ_INT(sf_weights_unused_count(w), 1);
      CHECK(strcmp(sf_weights_first_unused(w)->name, "time_embedding.w") == 0);
      sf_weights_mark_used(w, sf_weights_find(w, "time_embedding.w"));
      CHECK(sf_weights_first_unused(w) == NULL);
      sf_weights_clear_used(w);
      CHECK_EQ_INT(sf_weights_unused_count(w), 3);
      sf_weights_stats s;
      sf_weights_get_stats(w, &s);
      CHECK(s.n_tensors == 3 && s.n_files == 1 && s.n_params == 6 && s.n_bytes == 24 &&
            s.dtype_tensors[SF_DTYPE_F32] == 3 && s.dtype_params[SF_DTYPE_F32] == 6);
    }
    const sf_component *te = sf_model_folder_find(m, "text_encoder");
    CHECK(te && te->weights && sf_weights_count(te->weights) == 4 &&
          strcmp(te->weights_file, "text_encoder/model.safetensors") == 0);
    const sf_component *tok = sf_model_folder_find(m, "tokenizer");
    CHECK(tok && tok->kind == SF_COMPONENT_TOKENIZER && tok->weights == NULL &&
          !tok->config_only && strstr(tok->dir, "tokenizer") != NULL);
    const sf_component *sch = sf_model_folder_find(m, "scheduler");
    CHECK(sch && sch->kind == SF_COMPONENT_SCHEDULER && sch->weights == NULL && sch->config);
    double lmc = 0;
    CHECK(sch && sf_json_as_double(sf_json_get(sf_component_config(sch), "lambda_min_clipped"),
                                   &lmc) && isinf(lmc) && lmc < 0);
  }
  sf_model_folder_close(m);

  /* a variant that no component has: every model falls back with a note */
  m = open_folder("fp16");
  CHECK_MSG(m != NULL, "%s", diag.msg);
  if (m) {
    const sf_component *v = sf_model_folder_find(m, "vae");
    CHECK(v && !v->is_variant && v->note && strstr(v->note, "fp16") &&
          strstr(v->note, "vae/diffusion_pytorch_model.safetensors"));
    CHECK(sf_model_folder_find(m, "scheduler")->note == NULL);
  }
  sf_model_folder_close(m);

  /* the variant where present */
  write_st(at("unet/diffusion_pytorch_model.fp16.safetensors"), 1, 3, unet_names);
  m = open_folder("fp16");
  CHECK_MSG(m != NULL, "%s", diag.msg);
  if (m) {
    const sf_component *u = sf_model_folder_find(m, "unet");
    CHECK(u && u->is_variant && u->note == NULL &&
          strcmp(u->weights_file, "unet/diffusion_pytorch_model.fp16.safetensors") == 0);
    const sf_st_tensor *t = u ? sf_weights_find(u->weights, "conv_in.weight") : NULL;
    CHECK(t && t->dtype == SF_DTYPE_F16);
    sf_weights_stats s;
    sf_weights_get_stats(u ? u->weights : NULL, &s);
    CHECK(s.dtype_tensors[SF_DTYPE_F16] == 3 && s.n_bytes == 12);
    CHECK(sf_model_folder_find(m, "vae")->note != NULL);
  }
  sf_model_folder_close(m);
  /* without a variant the plain file is used even if a variant exists */
  m = open_folder(NULL);
  CHECK(m && sf_weights_find(sf_model_folder_find(m, "unet")->weights, "conv_in.weight")->dtype ==
                 SF_DTYPE_F32);
  sf_model_folder_close(m);
  sf_diag_clear(&diag);
  CHECK(sf_model_folder_open(root, "../x", &diag) == NULL &&
        diag.status == SF_ERR_INVALID_ARGUMENT);

  /* one component folder by itself */
  sf_diag_clear(&diag);
  sf_component *c = sf_component_open(at("unet/"), "fp16", &diag);
  CHECK_MSG(c != NULL, "%s", diag.msg);
  if (c) {
    CHECK(strcmp(c->name, "unet") == 0 && c->library == NULL);
    CHECK(c->class_name && strcmp(c->class_name, "UNet2DConditionModel") == 0);
    CHECK(c->is_variant && sf_weights_count(c->weights) == 3);
    CHECK(strcmp(c->weights_file, "diffusion_pytorch_model.fp16.safetensors") == 0);
  }
  sf_component_close(c);
  sf_diag_clear(&diag);
  c = sf_component_open(at("scheduler"), NULL, &diag);
  CHECK(c && c->kind == SF_COMPONENT_SCHEDULER && c->weights == NULL);
  sf_component_close(c);
  sf_diag_clear(&diag);
  c = sf_component_open(root, NULL, &diag); /* the pipeline folder is not a component */
  CHECK(c == NULL && diag.status == SF_ERR_IO && strstr(diag.msg, "config.json is missing"));
  sf_diag_clear(&diag);
  c = sf_component_open(at("nonexistent"), NULL, &diag);
  CHECK(c == NULL && diag.status == SF_ERR_IO && strstr(diag.msg, "nonexistent"));

  sf_diag_clear(&diag);
  sf_weights *w = sf_weights_open_file(at("vae/diffusion_pytorch_model.safetensors"), &diag);
  CHECK(w && sf_weights_count(w) == 2 && sf_weights_file_count(w) == 1 &&
        sf_st_count(sf_weights_file(w, 0)) == 2);
  sf_weights_close(w);
  remove_folder();
}

static void write_index(const char *path, const char *map) {
  char buf[2048];
  snprintf(buf, sizeof buf, "{\"metadata\": {\"total_size\": 32}, \"weight_map\": {%s}}", map);
  write_text(path, buf);
}

static void test_sharded(void) {
  make_folder();
  remove(at("text_encoder/model.safetensors"));
  const char *s1[] = {"text_model.a", "text_model.c"}, *s2[] = {"text_model.b", "text_model.d"};
  write_st(at("text_encoder/model-00001-of-00002.safetensors"), 0, 2, s1);
  write_st(at("text_encoder/model-00002-of-00002.safetensors"), 0, 2, s2);
  write_index(at("text_encoder/model.safetensors.index.json"),
              "\"text_model.a\": \"model-00001-of-00002.safetensors\","
              "\"text_model.b\": \"model-00002-of-00002.safetensors\","
              "\"text_model.c\": \"model-00001-of-00002.safetensors\","
              "\"text_model.d\": \"model-00002-of-00002.safetensors\"");
  /* and a sharded fp16 variant of the unet, diffusers naming */
  const char *u1[] = {"conv_in.bias", "conv_in.weight"}, *u2[] = {"time_embedding.w"};
  write_st(at("unet/diffusion_pytorch_model.fp16-00001-of-00002.safetensors"), 1, 2, u1);
  write_st(at("unet/diffusion_pytorch_model.fp16-00002-of-00002.safetensors"), 1, 1, u2);
  write_index(at("unet/diffusion_pytorch_model.safetensors.index.fp16.json"),
              "\"conv_in.bias\": \"diffusion_pytorch_model.fp16-00001-of-00002.safetensors\","
              "\"conv_in.weight\": \"diffusion_pytorch_model.fp16-00001-of-00002.safetensors\","
              "\"time_embedding.w\": \"diffusion_pytorch_model.fp16-00002-of-00002.safetensors\"");
  sf_model_folder *m = open_folder("fp16");
  CHECK_MSG(m != NULL, "%s", diag.msg);
  if (m) {
    const sf_component *te = sf_model_folder_find(m, "text_encoder");
    CHECK(te && te->sharded && !te->is_variant && te->note != NULL);
    CHECK(te && strcmp(te->weights_file, "text_encoder/model.safetensors.index.json") == 0);
    sf_weights *w = te ? te->weights : NULL;
    CHECK_EQ_INT(sf_weights_count(w), 4);
    CHECK_EQ_INT(sf_weights_file_count(w), 2);
    for (size_t i = 1; i < sf_weights_count(w); i++)
      CHECK(strcmp(sf_weights_at(w, i - 1)->name, sf_weights_at(w, i)->name) < 0);
    const sf_st_tensor *t = sf_weights_find(w, "text_model.d");
    CHECK(t && strstr(sf_weights_file_of(w, t), "model-00002-of-00002") != NULL);
    sf_weights_stats s;
    sf_weights_get_stats(w, &s);
    CHECK(s.n_files == 2 && s.n_tensors == 4 && s.n_params == 8);
    const sf_component *u = sf_model_folder_find(m, "unet");
    CHECK(u && u->sharded && u->is_variant && sf_weights_count(u->weights) == 3 &&
          sf_weights_find(u->weights, "time_embedding.w")->dtype == SF_DTYPE_F16);
  }
  sf_model_folder_close(m);

  /* a tensor the weight_map places in the wrong shard */
  write_index(at("text_encoder/model.safetensors.index.json"),
              "\"text_model.a\": \"model-00002-of-00002.safetensors\","
              "\"text_model.b\": \"model-00002-of-00002.safetensors\","
              "\"text_model.c\": \"model-00001-of-00002.safetensors\"");
  EXPECT_FAIL(NULL, SF_ERR_BAD_MODEL, "text_encoder/model.safetensors.index.json",
              "but it is in text_encoder/model-00001-of-00002.safetensors");
  /* a tensor no shard has */
  write_index(at("text_encoder/model.safetensors.index.json"),
              "\"text_model.a\": \"model-00001-of-00002.safetensors\","
              "\"text_model.zz\": \"model-00002-of-00002.safetensors\"");
  EXPECT_FAIL(NULL, SF_ERR_BAD_MODEL, "\"text_model.zz\"", "lacks it");
  /* a missing shard */
  write_index(at("text_encoder/model.safetensors.index.json"),
              "\"text_model.a\": \"model-00001-of-00002.safetensors\","
              "\"text_model.b\": \"model-00003-of-00002.safetensors\"");
  EXPECT_FAIL(NULL, SF_ERR_IO, "lists shard text_encoder/model-00003-of-00002.safetensors",
              "missing");
  /* a shard name escaping the folder */
  write_index(at("text_encoder/model.safetensors.index.json"),
              "\"text_model.a\": \"../vae/diffusion_pytorch_model.safetensors\"");
  EXPECT_FAIL(NULL, SF_ERR_BAD_MODEL, "not a plain file name", NULL);
  write_text(at("text_encoder/model.safetensors.index.json"), "{\"metadata\": {}}");
  EXPECT_FAIL(NULL, SF_ERR_BAD_MODEL, "weight_map", NULL);
  /* one tensor in two shards */
  const char *dup[] = {"text_model.b", "text_model.a"};
  write_st(at("text_encoder/model-00002-of-00002.safetensors"), 0, 2, dup);
  write_index(at("text_encoder/model.safetensors.index.json"),
              "\"text_model.a\": \"model-00001-of-00002.safetensors\","
              "\"text_model.b\": \"model-00002-of-00002.safetensors\"");
  EXPECT_FAIL(NULL, SF_ERR_BAD_MODEL, "\"text_model.a\" is in two shards",
              "text_encoder/model-00001-of-00002.safetensors and "
              "text_encoder/model-00002-of-00002.safetensors");
  remove_folder();
}

static void test_errors(void) {
  make_folder();
  /* config only: a model folder without weights */
  remove(at("unet/diffusion_pytorch_model.safetensors"));
  sf_model_folder *m = open_folder(NULL);
  CHECK_MSG(m != NULL, "%s", diag.msg);
  if (m) {
    const sf_component *u = sf_model_folder_find(m, "unet");
    CHECK(u && u->config_only && u->weights == NULL && u->weights_file == NULL && u->config);
  }
  sf_model_folder_close(m);
  /* pickle weights only */
  write_text(at("unet/diffusion_pytorch_model.bin"), "PK");
  EXPECT_FAIL(NULL, SF_ERR_UNSUPPORTED, "unet/diffusion_pytorch_model.bin", "safetensors");
  remove(at("unet/diffusion_pytorch_model.bin"));
  /* a corrupt weights file */
  static const char corrupt[] = "\x10\0\0\0\0\0\0\0{\"a\":1}";
  write_file(at("unet/diffusion_pytorch_model.safetensors"), corrupt, sizeof corrupt - 1);
  EXPECT_FAIL(NULL, SF_ERR_BAD_MODEL, "unet/diffusion_pytorch_model.safetensors", "past the end");
  write_st(at("unet/diffusion_pytorch_model.safetensors"), 0, 3, unet_names);
  /* missing config.json of a present component */
  remove(at("vae/config.json"));
  EXPECT_FAIL(NULL, SF_ERR_IO, "vae/config.json is missing", NULL);
  write_text(at("vae/config.json"), "{\"a\": 1,}");
  EXPECT_FAIL(NULL, SF_ERR_BAD_MODEL, "vae/config.json: invalid JSON", "trailing comma");
  write_text(at("vae/config.json"), "[]");
  EXPECT_FAIL(NULL, SF_ERR_BAD_MODEL, "vae/config.json: not a JSON object", NULL);
  write_text(at("vae/config.json"), "{}");
  remove(at("scheduler/scheduler_config.json"));
  EXPECT_FAIL(NULL, SF_ERR_IO, "scheduler/scheduler_config.json is missing", NULL);
  write_text(at("scheduler/scheduler_config.json"), "{}");
  /* a listed component without its folder */
  remove_folder();
  make_folder();
  remove(at("vae/config.json"));
  remove(at("vae/diffusion_pytorch_model.safetensors"));
  rmdir(at("vae"));
  EXPECT_FAIL(NULL, SF_ERR_IO, "vae/: component folder is missing", NULL);
  /* bad model_index.json */
  write_text(at("model_index.json"), "{\"unet\": [\"diffusers\", \"UNet2DConditionModel\"");
  EXPECT_FAIL(NULL, SF_ERR_BAD_MODEL, "model_index.json: invalid JSON", "unterminated");
  write_text(at("model_index.json"), "[1, 2]");
  EXPECT_FAIL(NULL, SF_ERR_BAD_MODEL, "model_index.json: not a JSON object", NULL);
  write_text(at("model_index.json"), "{\"_class_name\": \"X\", \"a\": [null, null]}");
  EXPECT_FAIL(NULL, SF_ERR_BAD_MODEL, "no components", NULL);
  write_text(at("model_index.json"), "{\"..\": [\"diffusers\", \"UNet2DConditionModel\"]}");
  EXPECT_FAIL(NULL, SF_ERR_BAD_MODEL, "not a folder name", NULL);
  write_text(at("model_index.json"), "{\"unet\": [\"diffusers\", \"A\"], \"unet\": [\"x\", \"y\"]}");
  EXPECT_FAIL(NULL, SF_ERR_BAD_MODEL, "duplicate key \"unet\"", NULL);
  remove(at("model_index.json"));
  EXPECT_FAIL(NULL, SF_ERR_IO, "model_index.json is missing", NULL);
  remove_folder();
  EXPECT_FAIL(NULL, SF_ERR_IO, "does not exist", NULL);
}

static void test_fixture(void) {
  const char *fx = sf_test_fixtures();
  if (fx == NULL) return;
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/public/tiny-sd", fx);
  const char *variants[2] = {NULL, "fp16"};
  for (int v = 0; v < 2; v++) {
    sf_diag_clear(&diag);
    sf_model_folder *m = sf_model_folder_open(dir, variants[v], &diag);
    CHECK_MSG(m != NULL, "%s", diag.msg);
    if (m == NULL) continue;
    const char *names[] = {"unet", "vae", "text_encoder", "tokenizer", "scheduler"};
    for (int i = 0; i < 5; i++) CHECK_MSG(sf_model_folder_find(m, names[i]) != NULL, "%s", names[i]);
    CHECK(sf_model_folder_find(m, "safety_checker") == NULL);
    const sf_component *u = sf_model_folder_find(m, "unet");
    const sf_st_tensor *t = u ? sf_weights_find(u->weights, "conv_in.weight") : NULL;
    CHECK(t && t->ndim == 4 && t->dtype == (v ? SF_DTYPE_F16 : SF_DTYPE_F32));
    CHECK(u && u->is_variant == v);
    const sf_component *vae = sf_model_folder_find(m, "vae");
    CHECK(vae && vae->weights && sf_weights_count(vae->weights) > 0);
    CHECK(vae && (vae->note != NULL) == v); /* tiny-sd ships no fp16 vae */
    const sf_component *te = sf_model_folder_find(m, "text_encoder");
    sf_weights_stats s;
    sf_weights_get_stats(te ? te->weights : NULL, &s);
    CHECK(s.n_tensors > 0 && s.n_params > 0 && s.n_files == 1);
    CHECK(sf_model_folder_find(m, "tokenizer")->kind == SF_COMPONENT_TOKENIZER);
    CHECK(sf_model_folder_find(m, "scheduler")->config != NULL);
    sf_model_folder_close(m);
  }
  snprintf(dir, sizeof dir, "%s/public/taesd/taesd_decoder.safetensors", fx);
  sf_diag_clear(&diag);
  sf_weights *w = sf_weights_open_file(dir, &diag);
  CHECK_MSG(w != NULL && sf_weights_count(w) > 0, "%s", diag.msg);
  sf_weights_close(w);
}

int main(void) {
  test_good();
  test_sharded();
  test_errors();
  test_fixture();
  TEST_MAIN_END();
}
