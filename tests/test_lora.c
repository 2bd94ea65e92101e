/* LoRA loading (SF_PARAM_LORAS) through the public API, on the model-format fixture set's LoRA
 * cases (models/manifest.json: the base folder and LoRA files are read from its lora/ cases, so
 * another set of other shapes runs the same checks):
 *  - scale 0 gives the base model's UNet and text encoder outputs bit for bit; a LoRA changes them;
 *  - the same at 1 and 2 threads and in low-memory mode (networks packed per run): bit for bit;
 *  - one file listed twice at scales a and b equals it once at a + b (float64 merging);
 *  - a pack written from a LoRA pipeline holds the merged weights (same outputs, loaded without
 *    the LoRA); LoRAs with a pack or random weights are refused; inspect-only checks them;
 *  - modules of a network that is not loaded are left out;
 *  - a synthetic PEFT file (no alpha) and the same kohya file with alpha = rank give the same
 *    text encoder; malformed files and lists: unknown key, LoHa key, module the model lacks,
 *    shapes that do not fit, rank mismatch, missing up, non-scalar alpha, non-float tensor,
 *    truncated file, missing file, bad scale: a status and a message naming the file and key
 *    (also at inspect-only). */
#define _XOPEN_SOURCE 700
#include <snapfusion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/json.h"
#include "test.h"

static sf_context *ctx;
static char base_dir[4096], lora_file[4096], workdir[256];
static int64_t te_hidden;

/* ---- what a pipeline computes ---- */

typedef struct outs {
  float *text, *noise;
  size_t n_text, n_noise;
} outs;

static void outs_free(outs *o) {
  free(o->text);
  free(o->noise);
  memset(o, 0, sizeof *o);
}

static float *randn(uint64_t seed, size_t n) {
  float *x = malloc(n * sizeof *x);
  sf_rng *rng = NULL;
  if (x == NULL || sf_rng_create(SF_RNG_TORCH_CPU, seed, &rng) != SF_OK || sf_rng_randn(rng, x, n) != SF_OK) abort();
  sf_rng_destroy(rng);
  return x;
}

/* Text embeddings of a prompt and one UNet call on fixed inputs (whichever networks p has). */
static int compute(sf_pipeline *p, outs *o) {
  memset(o, 0, sizeof *o);
  int64_t nets = 0, hidden = 0, ch = 0;
  if (sf_pipeline_get_int(p, SF_INFO_NETWORKS, &nets) != SF_OK ||
      sf_pipeline_get_int(p, SF_INFO_TEXT_HIDDEN, &hidden) != SF_OK)
    return 0;
  if (nets & SF_NET_TEXT_ENCODER) {
    o->n_text = 77 * (size_t)hidden;
    o->text = malloc(o->n_text * sizeof *o->text);
    if (o->text == NULL || sf_encode_prompt(p, "a watercolor fox in tall grass", 0, o->text, o->n_text) != SF_OK)
      return 0;
  }
  if (nets & SF_NET_UNET) {
    if (sf_pipeline_get_int(p, SF_INFO_LATENT_CHANNELS, &ch) != SF_OK) return 0;
    const size_t b = 2, h = 8, w = 8, n_lat = b * (size_t)ch * h * w, n_ehs = b * 77 * (size_t)hidden;
    float *lat = randn(7, n_lat), *ehs = randn(8, n_ehs), t[2] = {621, 621};
    o->n_noise = n_lat;
    o->noise = malloc(n_lat * sizeof *o->noise);
    sf_status s = o->noise ? sf_unet_predict_v2(p, lat, n_lat, b, h, w, t, b, ehs, n_ehs, 77, o->noise, n_lat)
                           : SF_ERR_OUT_OF_MEMORY;
    free(lat);
    free(ehs);
    if (s != SF_OK) {
      fprintf(stderr, "unet: %s\n", sf_context_last_error(ctx));
      return 0;
    }
  }
  return 1;
}

/* Loads base_dir with these LoRAs (spec NULL: none) and options; NULL on failure (printed). */
static sf_pipeline *load(const char *spec, int64_t components, int low_memory, const char *pack, int inspect,
                         sf_status *out_status) {
  sf_params *o = NULL;
  sf_pipeline *p = NULL;
  sf_status s = sf_params_create(&o);
  if (s == SF_OK && spec) s = sf_params_set_string(o, SF_PARAM_LORAS, spec);
  if (s == SF_OK && components) s = sf_params_set_int(o, SF_PARAM_COMPONENTS, components);
  if (s == SF_OK && low_memory) s = sf_params_set_int(o, SF_PARAM_LOW_MEMORY, 1);
  if (s == SF_OK && pack) s = sf_params_set_string(o, SF_PARAM_PACK_PATH, pack);
  if (s == SF_OK && inspect) s = sf_params_set_int(o, SF_PARAM_INSPECT_ONLY, 1);
  if (s == SF_OK) s = sf_pipeline_load(ctx, base_dir, o, &p);
  sf_params_destroy(o);
  if (out_status) *out_status = s;
  return p;
}

static int load_compute(const char *spec, int64_t components, int low_memory, const char *pack, outs *o) {
  sf_status s;
  sf_pipeline *p = load(spec, components, low_memory, pack, 0, &s);
  if (p == NULL) {
    fprintf(stderr, "load: %s: %s\n", sf_status_string(s), sf_context_last_error(ctx));
    return 0;
  }
  int ok = compute(p, o);
  sf_pipeline_destroy(p);
  return ok;
}

static int same(const float *a, const float *b, size_t n) { return a && b && memcmp(a, b, n * sizeof *a) == 0; }

static double max_diff(const float *a, const float *b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - (double)b[i]);
    if (!(d <= m)) m = d; /* NaN wins */
  }
  return m;
}

/* ---- the fixture set's LoRA cases ---- */

/* From models/manifest.json: the base folder of the first lora/ UNet case with one kohya LoRA
 * at a non-zero scale, and that LoRA file. 0 when the set has none. */
static int find_case(const char *models) {
  if (strlen(models) > 3000) return 0;
  char path[4400];
  snprintf(path, sizeof path, "%s/manifest.json", models);
  sf_diag d = {0};
  sf_json_doc *doc = sf_json_parse_file_ex(path, NULL, 64u << 20, SF_JSON_ALLOW_NONFINITE, &d);
  if (doc == NULL) return 0;
  const sf_json *cases = sf_json_get(sf_json_root(doc), "cases");
  int found = 0;
  for (size_t i = 0; cases && i < cases->len && !found; i++) {
    const sf_json *c = sf_json_at(cases, i);
    const char *name = sf_json_as_string(sf_json_get(c, "name"));
    const char *model = sf_json_as_string(sf_json_get(c, "model"));
    const sf_json *loras = sf_json_get(sf_json_get(c, "params"), "loras");
    if (!name || strncmp(name, "lora/", 5) != 0 || !model || !loras || loras->len != 1) continue;
    const sf_json *l = sf_json_at(loras, 0);
    const char *fmt = sf_json_as_string(sf_json_get(l, "format")), *file = sf_json_as_string(sf_json_get(l, "file"));
    double scale = 0;
    if (!fmt || strcmp(fmt, "kohya") != 0 || !file || !sf_json_as_double(sf_json_get(l, "scale"), &scale) || scale == 0)
      continue;
    char dir[512];
    if (strlen(model) >= sizeof dir || strlen(file) > 1000) continue;
    snprintf(dir, sizeof dir, "%s", model);
    dir[strcspn(dir, "/ ")] = '\0';
    snprintf(base_dir, sizeof base_dir, "%s/%s", models, dir);
    snprintf(lora_file, sizeof lora_file, "%s/%s", models, file);
    found = 1;
  }
  sf_json_free(doc);
  return found;
}

/* ---- synthetic LoRA files ---- */

typedef struct st_tensor {
  const char *name, *dtype;
  int ndim;
  int64_t shape[4];
} st_tensor;

/* A safetensors file with these tensors (values 0.01 * (k % 7 - 3)); truncate > 0 cuts that
 * many bytes off its end. */
static void write_st(const char *path, const st_tensor *t, size_t n, size_t truncate) {
  char header[8192];
  size_t off = 0, data = 0, hl = 0;
  hl += (size_t)snprintf(header + hl, sizeof header - hl, "{");
  for (size_t i = 0; i < n; i++) {
    size_t count = 1, es = strcmp(t[i].dtype, "F32") == 0 ? 4 : strcmp(t[i].dtype, "I64") == 0 ? 8 : 2;
    for (int k = 0; k < t[i].ndim; k++) count *= (size_t)t[i].shape[k];
    hl += (size_t)snprintf(header + hl, sizeof header - hl, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", i ? "," : "",
                           t[i].name, t[i].dtype);
    for (int k = 0; k < t[i].ndim; k++)
      hl += (size_t)snprintf(header + hl, sizeof header - hl, "%s%lld", k ? "," : "", (long long)t[i].shape[k]);
    hl += (size_t)snprintf(header + hl, sizeof header - hl, "],\"data_offsets\":[%zu,%zu]}", data, data + count * es);
    data += count * es;
  }
  hl += (size_t)snprintf(header + hl, sizeof header - hl, "}");
  while (hl % 8) header[hl++] = ' ';
  unsigned char *bytes = calloc(data ? data : 1, 1);
  for (size_t k = 0; k + 4 <= data; k += 4) {
    float v = 0.01f * (float)((int)((k / 4) % 7) - 3);
    memcpy(bytes + k, &v, 4);
  }
  FILE *f = fopen(path, "wb");
  if (f == NULL) abort();
  uint64_t len = hl;
  unsigned char le[8];
  for (int i = 0; i < 8; i++) le[i] = (unsigned char)(len >> (8 * i));
  size_t total = 8 + hl + data;
  unsigned char *all = malloc(total);
  memcpy(all, le, 8);
  memcpy(all + 8, header, hl);
  memcpy(all + 8 + hl, bytes, data);
  (void)off;
  fwrite(all, 1, total - (truncate < total ? truncate : 0), f);
  fclose(f);
  free(all);
  free(bytes);
}

/* Loading base_dir with the file as its one LoRA fails with status want and a message holding
 * each of the needles (NULL-terminated); also at inspect-only. */
static void expect_refused(const char *what, const char *spec, sf_status want, const char *const *needles) {
  for (int inspect = 0; inspect < 2; inspect++) {
    sf_status s;
    sf_pipeline *p = load(spec, 0, 0, NULL, inspect, &s);
    CHECK_MSG(p == NULL && s == want, "%s (inspect %d): status %s", what, inspect, sf_status_string(s));
    sf_pipeline_destroy(p);
    const char *msg = sf_context_last_error(ctx);
    if (getenv("SF_TEST_VERBOSE")) fprintf(stderr, "%s: %s\n", what, msg);
    for (size_t i = 0; needles[i]; i++)
      CHECK_MSG(strstr(msg, needles[i]) != NULL, "%s (inspect %d): message '%s' lacks '%s'", what, inspect, msg,
                needles[i]);
  }
}

static void test_malformed(void) {
  const int64_t h = te_hidden;
  char path[512], spec[4400];
  struct {
    const char *what;
    st_tensor t[3];
    size_t n, truncate;
    sf_status want;
    const char *needle;
  } bad[] = {
      {"unknown key", {{"foo.weight", "F32", 2, {2, 2}}}, 1, 0, SF_ERR_BAD_MODEL, "foo.weight"},
      {"LoHa key", {{"lora_te_text_model_encoder_layers_0_self_attn_q_proj.hada_w1_a", "F32", 2, {h, 2}}}, 1, 0,
       SF_ERR_UNSUPPORTED, "hada_w1_a"},
      {"module the model lacks",
       {{"lora_te_text_model_encoder_layers_999_self_attn_q_proj.lora_down.weight", "F32", 2, {2, h}},
        {"lora_te_text_model_encoder_layers_999_self_attn_q_proj.lora_up.weight", "F32", 2, {h, 2}}},
       2, 0, SF_ERR_BAD_MODEL, "lora_te_text_model_encoder_layers_999_self_attn_q_proj"},
      {"PEFT module the model lacks",
       {{"unet.no_such_block.proj.lora_A.weight", "F32", 2, {2, h}},
        {"unet.no_such_block.proj.lora_B.weight", "F32", 2, {h, 2}}},
       2, 0, SF_ERR_BAD_MODEL, "unet.no_such_block.proj"},
      {"shape that does not fit",
       {{"lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight", "F32", 2, {2, h + 1}},
        {"lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight", "F32", 2, {h, 2}}},
       2, 0, SF_ERR_BAD_MODEL, "does not fit"},
      {"conv kernel on a linear layer",
       {{"lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight", "F32", 4, {2, h, 3, 3}},
        {"lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight", "F32", 4, {h, 2, 1, 1}}},
       2, 0, SF_ERR_BAD_MODEL, "does not fit"},
      {"rank mismatch",
       {{"lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight", "F32", 2, {2, h}},
        {"lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight", "F32", 2, {h, 3}}},
       2, 0, SF_ERR_BAD_MODEL, "rank mismatch"},
      {"missing up", {{"lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight", "F32", 2, {2, h}}}, 1, 0,
       SF_ERR_BAD_MODEL, "lora_up"},
      {"alpha without down", {{"lora_te_text_model_encoder_layers_0_self_attn_q_proj.alpha", "F32", 0, {0}}}, 1, 0,
       SF_ERR_BAD_MODEL, "alpha"},
      {"non-scalar alpha",
       {{"lora_te_text_model_encoder_layers_0_self_attn_q_proj.alpha", "F32", 1, {2}},
        {"lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight", "F32", 2, {2, h}},
        {"lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight", "F32", 2, {h, 2}}},
       3, 0, SF_ERR_BAD_MODEL, ".alpha"},
      {"integer tensor",
       {{"lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight", "I64", 2, {2, h}},
        {"lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight", "F32", 2, {h, 2}}},
       2, 0, SF_ERR_BAD_MODEL, "I64"},
      {"truncated file",
       {{"lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight", "F32", 2, {2, h}},
        {"lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight", "F32", 2, {h, 2}}},
       2, 5, SF_ERR_BAD_MODEL, "bad.safetensors"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    snprintf(path, sizeof path, "%s/bad%zu.bad.safetensors", workdir, i);
    write_st(path, bad[i].t, bad[i].n, bad[i].truncate);
    snprintf(spec, sizeof spec, "%s\t0.5", path);
    const char *needles[] = {path, bad[i].needle, NULL};
    expect_refused(bad[i].what, spec, bad[i].want, needles);
    unlink(path);
  }
  /* the list itself */
  snprintf(spec, sizeof spec, "%s\tnot-a-number", lora_file);
  const char *n1[] = {"SF_PARAM_LORAS", "not-a-number", NULL};
  expect_refused("bad scale", spec, SF_ERR_INVALID_ARGUMENT, n1);
  snprintf(spec, sizeof spec, "%s\t0.5x", lora_file);
  expect_refused("scale with trailing text", spec, SF_ERR_INVALID_ARGUMENT, (const char *const[]){"0.5x", NULL});
  snprintf(spec, sizeof spec, "%s/no-such-lora.safetensors", workdir);
  const char *n2[] = {"no-such-lora.safetensors", NULL};
  sf_status s;
  sf_pipeline *p = load(spec, 0, 0, NULL, 0, &s);
  CHECK_MSG(p == NULL && s != SF_OK, "missing file: %s", sf_status_string(s));
  CHECK_MSG(strstr(sf_context_last_error(ctx), n2[0]) != NULL, "missing file: '%s'", sf_context_last_error(ctx));
  sf_pipeline_destroy(p);
}

/* A PEFT file without alpha and the kohya file with alpha = rank are the same LoRA (the same
 * values: the tensors lie at the same offsets, the kohya file's alpha after them). */
static void test_formats_agree(const outs *base) {
  const int64_t h = te_hidden;
  char peft[512], kohya[512], spec[1200];
  snprintf(peft, sizeof peft, "%s/peft.safetensors", workdir);
  snprintf(kohya, sizeof kohya, "%s/kohya.safetensors", workdir);
  const st_tensor tp[] = {{"text_encoder.text_model.encoder.layers.0.self_attn.v_proj.lora_A.weight", "F32", 2, {3, h}},
                          {"text_encoder.text_model.encoder.layers.0.self_attn.v_proj.lora_B.weight", "F32", 2, {h, 3}}};
  const st_tensor tk[] = {{"lora_te_text_model_encoder_layers_0_self_attn_v_proj.lora_down.weight", "F32", 2, {3, h}},
                          {"lora_te_text_model_encoder_layers_0_self_attn_v_proj.lora_up.weight", "F32", 2, {h, 3}},
                          {"lora_te_text_model_encoder_layers_0_self_attn_v_proj.alpha", "F32", 0, {0}}};
  write_st(peft, tp, 2, 0);
  write_st(kohya, tk, 3, 0);
  FILE *f = fopen(kohya, "r+b"); /* alpha = rank = 3 */
  float three = 3.0f;
  if (f == NULL || fseek(f, -4, SEEK_END) != 0 || fwrite(&three, 4, 1, f) != 1) abort();
  fclose(f);
  outs a = {0}, b = {0};
  snprintf(spec, sizeof spec, "%s\t0.8", peft);
  CHECK(load_compute(spec, SF_NET_TEXT_ENCODER, 0, NULL, &a));
  snprintf(spec, sizeof spec, "%s\t0.8", kohya);
  CHECK(load_compute(spec, SF_NET_TEXT_ENCODER, 0, NULL, &b));
  CHECK_MSG(same(a.text, b.text, a.n_text), "PEFT and kohya (alpha = rank) differ by %g",
            a.text && b.text ? max_diff(a.text, b.text, a.n_text) : -1.0);
  CHECK_MSG(a.text && base->text && max_diff(a.text, base->text, a.n_text) > 0, "the synthetic LoRA changed nothing");
  outs_free(&a);
  outs_free(&b);
  unlink(peft);
  unlink(kohya);
}

int main(void) {
  const char *fx = sf_test_fixtures();
  if (fx == NULL) return TEST_SKIP_EXIT_CODE;
  char models[4200];
  snprintf(models, sizeof models, "%s/models", fx);
  if (!find_case(models)) {
    fprintf(stderr, "SKIPPED: no lora/ case with one kohya LoRA in %s/manifest.json\n", models);
    return TEST_SKIP_EXIT_CODE;
  }
  snprintf(workdir, sizeof workdir, "/tmp/sf-test-lora-XXXXXX");
  if (mkdtemp(workdir) == NULL || sf_context_create(&ctx) != SF_OK) return 1;
  sf_context_set_int(ctx, SF_PARAM_THREADS, 2);
  const int64_t nets = SF_NET_TEXT_ENCODER | SF_NET_UNET;
  char spec[9000];

  outs base = {0}, zero = {0}, lora = {0}, t1 = {0}, low = {0}, twice = {0}, packed = {0}, unet_only = {0};
  CHECK(load_compute(NULL, nets, 0, NULL, &base));
  te_hidden = (int64_t)(base.n_text / 77);

  /* scale 0: the base model bit for bit */
  snprintf(spec, sizeof spec, "%s\t0", lora_file);
  CHECK(load_compute(spec, nets, 0, NULL, &zero));
  CHECK(same(zero.text, base.text, base.n_text));
  CHECK(same(zero.noise, base.noise, base.n_noise));

  /* a LoRA changes both networks; threads and low-memory mode change nothing */
  snprintf(spec, sizeof spec, "%s\t0.75", lora_file);
  CHECK(load_compute(spec, nets, 0, NULL, &lora));
  CHECK_MSG(lora.text && max_diff(lora.text, base.text, base.n_text) > 1e-3, "text encoder unchanged");
  CHECK_MSG(lora.noise && max_diff(lora.noise, base.noise, base.n_noise) > 1e-3, "UNet unchanged");
  sf_context_set_int(ctx, SF_PARAM_THREADS, 1);
  CHECK(load_compute(spec, nets, 0, NULL, &t1));
  sf_context_set_int(ctx, SF_PARAM_THREADS, 2);
  CHECK(same(t1.text, lora.text, lora.n_text) && same(t1.noise, lora.noise, lora.n_noise));
  CHECK(load_compute(spec, nets, 1, NULL, &low));
  CHECK(same(low.text, lora.text, lora.n_text) && same(low.noise, lora.noise, lora.n_noise));

  /* the file twice, at 0.5 and 0.25: summed in float64, so (nearly always bit for bit) 0.75 */
  snprintf(spec, sizeof spec, "%s\t0.5\n\n%s\t0.25\n", lora_file, lora_file);
  CHECK(load_compute(spec, nets, 0, NULL, &twice));
  CHECK_MSG(twice.noise && max_diff(twice.noise, lora.noise, lora.n_noise) < 1e-5 &&
                max_diff(twice.text, lora.text, lora.n_text) < 1e-5,
            "0.5 + 0.25 vs 0.75: %g %g", max_diff(twice.noise, lora.noise, lora.n_noise),
            max_diff(twice.text, lora.text, lora.n_text));

  /* only the UNet loaded: the text encoder's modules are left out */
  snprintf(spec, sizeof spec, "%s\t0.75", lora_file);
  CHECK(load_compute(spec, SF_NET_UNET, 0, NULL, &unet_only));
  CHECK(same(unet_only.noise, lora.noise, lora.n_noise));

  /* a pack of a LoRA pipeline holds the merged weights; LoRA + pack, LoRA + random refused */
  char pack[512];
  snprintf(pack, sizeof pack, "%s/lora.sfpack", workdir);
  sf_status s;
  sf_pipeline *p = load(spec, nets, 0, NULL, 0, &s);
  CHECK(p != NULL && sf_pipeline_write_pack(p, pack) == SF_OK);
  sf_pipeline_destroy(p);
  CHECK(load_compute(NULL, nets, 0, pack, &packed));
  CHECK(same(packed.text, lora.text, lora.n_text) && same(packed.noise, lora.noise, lora.n_noise));
  p = load(spec, nets, 0, pack, 0, &s);
  CHECK_MSG(p == NULL && s == SF_ERR_INVALID_ARGUMENT && strstr(sf_context_last_error(ctx), "SF_PARAM_PACK_PATH"),
            "LoRA with a pack: %s", sf_context_last_error(ctx));
  sf_pipeline_destroy(p);
  unlink(pack);
  {
    sf_params *o = NULL;
    p = NULL;
    sf_params_create(&o);
    sf_params_set_string(o, SF_PARAM_LORAS, spec);
    sf_params_set_int(o, SF_PARAM_RANDOM_WEIGHTS, 1);
    s = sf_pipeline_load(ctx, base_dir, o, &p);
    sf_params_destroy(o);
    CHECK_MSG(p == NULL && s == SF_ERR_INVALID_ARGUMENT && strstr(sf_context_last_error(ctx), "SF_PARAM_RANDOM_WEIGHTS"),
              "LoRA with random weights: %s", sf_context_last_error(ctx));
    sf_pipeline_destroy(p);
  }
  /* inspect-only: names and shapes checked, nothing packed */
  p = load(spec, nets, 0, NULL, 1, &s);
  CHECK_MSG(p != NULL, "inspect-only with a LoRA: %s", sf_context_last_error(ctx));
  sf_pipeline_destroy(p);

  test_formats_agree(&base);
  test_malformed();

  outs_free(&base);
  outs_free(&zero);
  outs_free(&lora);
  outs_free(&t1);
  outs_free(&low);
  outs_free(&twice);
  outs_free(&packed);
  outs_free(&unet_only);
  rmdir(workdir);
  sf_context_destroy(ctx);
  TEST_MAIN_END();
}
