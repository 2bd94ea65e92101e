/* UNet2DConditionModel: every fixture case of component "unet" (tiny-sd incl. the fp16 weight
 * variant and non-square latents, the pruned SnapFusion-like and BK-SDM-like UNets), re-planning
 * across batch sizes, thread-count determinism, config refusals, checkpoint/architecture
 * mismatches, and random-weight builds of the real SnapFusion-style and BK-SDM-tiny layouts. */
#include <pthreadpool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xnnpack.h>

#include "fixture_util.h"
#include "graph/wsrc.h"
#include "io/json.h"
#include "io/model_folder.h"
#include "models/unet.h"
#include "test.h"
#include "test_exec.h"

/* ---- helpers ----------------------------------------------------------------------------- */

static sf_status parse_config_text(const char *text, sf_unet_config *cfg, sf_diag *d) {
  sf_json_doc *doc = sf_json_parse(text, strlen(text), d);
  if (doc == NULL) return d->status;
  sf_status s = sf_unet_config_parse(sf_json_root(doc), cfg, d);
  sf_json_free(doc);
  return s;
}

typedef struct model {
  char key[256];
  sf_component *comp;
  sf_wsrc *ws;
  sf_unet *unet;
} model;

static void model_close(model *m) {
  sf_unet_destroy(m->unet);
  sf_wsrc_destroy(m->ws);
  sf_component_close(m->comp);
  memset(m, 0, sizeof *m);
}

/* "tiny-sd/unet" or "tiny-sd/unet (variant fp16)". */
static int model_open(model *m, const fx_manifest *fm, const char *model_field) {
  char dir_rel[256], variant[32] = "";
  snprintf(dir_rel, sizeof dir_rel, "%s", model_field);
  char *paren = strstr(dir_rel, " (variant ");
  if (paren) {
    snprintf(variant, sizeof variant, "%s", paren + 10);
    char *close = strchr(variant, ')');
    if (close) *close = '\0';
    *paren = '\0';
  }
  char dir[4400];
  fx_path(fm, dir_rel, dir, sizeof dir);
  sf_diag d = {0};
  snprintf(m->key, sizeof m->key, "%s", model_field);
  m->comp = sf_component_open(dir, variant[0] ? variant : NULL, &d);
  CHECK_MSG(m->comp != NULL, "%s: %s", dir, d.msg);
  if (m->comp == NULL) return 0;
  if (variant[0]) CHECK_MSG(m->comp->is_variant, "%s: variant %s not loaded", dir, variant);
  sf_unet_config cfg;
  sf_status s = sf_unet_config_parse(sf_component_config(m->comp), &cfg, &d);
  CHECK_MSG(s == SF_OK, "%s: %s", dir, d.msg);
  if (s != SF_OK) return 0;
  m->ws = sf_wsrc_from_weights(m->comp->weights, "unet");
  m->unet = m->ws ? sf_unet_build(&cfg, m->ws, &d) : NULL;
  CHECK_MSG(m->unet != NULL, "%s: %s", dir, d.msg);
  return m->unet != NULL;
}

/* ---- fixture cases ------------------------------------------------------------------------ */

typedef struct case_io {
  float *sample, *t_f32, *t_passed, *text, *ref;
  size_t n, ch, h, w, tokens, dim;
} case_io;

static void case_io_free(case_io *io) {
  free(io->sample);
  free(io->t_f32);
  free(io->t_passed);
  free(io->text);
  free(io->ref);
}

static int dims(const sf_safetensors *st, const char *key, int ndim, int64_t *out) {
  const sf_st_tensor *t = sf_st_find(st, key);
  if (t == NULL || t->ndim != ndim) return 0;
  for (int i = 0; i < ndim; i++) out[i] = t->shape[i];
  return 1;
}

static int case_load(const fx_manifest *fm, const sf_json *c, case_io *io) {
  memset(io, 0, sizeof *io);
  sf_safetensors *st = fx_case_open(fm, c);
  if (st == NULL) return 0;
  int64_t s4[4], s3[3];
  int ok = dims(st, "in.sample", 4, s4) && dims(st, "in.encoder_hidden_states", 3, s3);
  if (ok) {
    io->n = (size_t)s4[0];
    io->ch = (size_t)s4[1];
    io->h = (size_t)s4[2];
    io->w = (size_t)s4[3];
    io->tokens = (size_t)s3[1];
    io->dim = (size_t)s3[2];
    size_t nt = 0;
    io->sample = fx_f32(st, "in.sample", NULL);
    io->t_f32 = fx_f32(st, "in.timestep_f32", NULL);
    io->text = fx_f32(st, "in.encoder_hidden_states", NULL);
    io->ref = fx_f32(st, "out.noise_pred", NULL);
    /* The tensor the pipeline actually passed: 0-d (broadcast like diffusers' expand) or [B]. */
    float *tp = fx_f32(st, "in.timestep", &nt);
    io->t_passed = malloc(io->n * sizeof *io->t_passed);
    if (tp && io->t_passed && (nt == 1 || nt == io->n))
      for (size_t i = 0; i < io->n; i++) io->t_passed[i] = tp[nt == 1 ? 0 : i];
    else {
      free(io->t_passed);
      io->t_passed = NULL;
    }
    free(tp);
    ok = io->sample && io->t_f32 && io->text && io->ref && io->t_passed;
  }
  sf_st_close(st);
  return ok;
}

static int bit_equal(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof *a) == 0; }

/* max |a - b| / (|b| + 1e-6) over the pairs where both are finite; the others are added to
 * *nonfinite, which callers require to stay 0. */
static double max_rel_diff(const float *a, const float *b, size_t n, size_t *nonfinite) {
  double worst = 0;
  for (size_t i = 0; i < n; i++) {
    double e = fabs((double)a[i] - (double)b[i]) / (fabs((double)b[i]) + 1e-6);
    if (!isfinite(a[i]) || !isfinite(b[i])) ++*nonfinite;
    else if (e > worst) worst = e;
  }
  return worst;
}

/* Batch 1 after batch 2 (a re-plan) must reproduce each item; then batch 2 again. */
static void check_replan(sf_unet *u, const case_io *io, const float *out2) {
  size_t per = io->ch * io->h * io->w, per_text = io->tokens * io->dim;
  float *out1 = malloc(per * sizeof *out1), *again = malloc(io->n * per * sizeof *again);
  sf_diag d = {0};
  for (size_t b = 0; b < io->n && out1 && again; b++) {
    sf_status s = sf_unet_run(u, TX(NULL), TP(), io->sample + b * per, 1, io->h, io->w, io->t_f32 + b, NULL,
                              io->text + b * per_text, io->tokens, out1, &d);
    CHECK_MSG(s == SF_OK, "%s", d.msg);
    size_t nonfinite = 0;
    double rel = max_rel_diff(out1, out2 + b * per, per, &nonfinite);
    printf("  batch-1 re-plan, item %zu: %s (max rel diff %.2g)\n", b,
           bit_equal(out1, out2 + b * per, per) ? "bit-identical" : "differs", rel);
    CHECK_MSG(nonfinite == 0, "item %zu of batch 2 vs batch 1: %zu non-finite values", b, nonfinite);
    CHECK_MSG(rel <= 1e-6, "item %zu of batch 2 vs batch 1: rel diff %g", b, rel);
  }
  if (again) {
    sf_status s =
        sf_unet_run(u, TX(NULL), TP(), io->sample, io->n, io->h, io->w, io->t_f32, NULL, io->text, io->tokens, again, &d);
    CHECK_MSG(s == SF_OK, "%s", d.msg);
    CHECK_MSG(bit_equal(again, out2, io->n * per), "batch 2 after batch 1 differs from the first batch-2 run");
  }
  free(out1);
  free(again);
}

static void check_threads(sf_unet *u, const case_io *io) {
  size_t count = io->n * io->ch * io->h * io->w;
  float *a = malloc(count * sizeof *a), *b = malloc(count * sizeof *b);
  pthreadpool_t p1 = pthreadpool_create(1), p2 = pthreadpool_create(2);
  sf_diag d = {0};
  if (a && b && p1 && p2) {
    sf_status s1 = sf_unet_run(u, TX(p1), TP(), io->sample, io->n, io->h, io->w, io->t_f32, NULL, io->text, io->tokens, a, &d);
    sf_status s2 = sf_unet_run(u, TX(p2), TP(), io->sample, io->n, io->h, io->w, io->t_f32, NULL, io->text, io->tokens, b, &d);
    CHECK_MSG(s1 == SF_OK && s2 == SF_OK, "%s", d.msg);
    size_t nonfinite = 0; /* (the bit comparison decides; this is for the message) */
    CHECK_MSG(bit_equal(a, b, count), "1 and 2 threads differ (max rel %g)", max_rel_diff(a, b, count, &nonfinite));
    printf("  threads 1 vs 2: %s\n", bit_equal(a, b, count) ? "bit-identical" : "DIFFER");
  }
  if (p1) pthreadpool_destroy(p1);
  if (p2) pthreadpool_destroy(p2);
  free(a);
  free(b);
}

static void check_bad_sizes(sf_unet *u, const case_io *io) {
  size_t factor = (size_t)1 << sf_unet_get_config(u)->n_downsamplers;
  if (factor < 2) return;
  size_t h = io->h + factor / 2; /* not a multiple: refused before touching the inputs */
  float dummy = 0;
  sf_diag d = {0};
  sf_status s = sf_unet_run(u, TX(NULL), TP(), &dummy, 1, h, io->w, &dummy, NULL, &dummy, 1, &dummy, &d);
  CHECK_EQ_INT(s, SF_ERR_INVALID_ARGUMENT);
  CHECK_MSG(strstr(d.msg, "multiple") != NULL, "%s", d.msg);
}

static void run_fixture_cases(const fx_manifest *fm) {
  model models[8];
  size_t n_models = 0;
  memset(models, 0, sizeof models);
  int replan_done = 0, threads_done = 0, cases = 0;
  for (size_t i = 0; i < fm->cases->len; i++) {
    const sf_json *c = sf_json_at(fm->cases, i);
    const char *comp = sf_json_as_string(sf_json_get(c, "component"));
    const char *name = sf_json_as_string(sf_json_get(c, "name"));
    const char *mname = sf_json_as_string(sf_json_get(c, "model"));
    if (comp == NULL || strcmp(comp, "unet") != 0 || name == NULL || mname == NULL) continue;
    model *m = NULL;
    for (size_t k = 0; k < n_models; k++)
      if (strcmp(models[k].key, mname) == 0) m = &models[k];
    if (m == NULL && n_models < 8) {
      m = &models[n_models++];
      if (!model_open(m, fm, mname)) continue;
    }
    if (m == NULL || m->unet == NULL) continue;
    case_io io;
    if (!case_load(fm, c, &io)) {
      CHECK_MSG(0, "%s: cannot load case tensors", name);
      case_io_free(&io);
      continue;
    }
    size_t count = io.n * io.ch * io.h * io.w;
    float *out = malloc(count * sizeof *out), *out_passed = malloc(count * sizeof *out);
    sf_diag d = {0};
    sf_status s =
        out ? sf_unet_run(m->unet, TX(NULL), TP(), io.sample, io.n, io.h, io.w, io.t_f32, NULL, io.text, io.tokens, out, &d)
            : SF_ERR_OUT_OF_MEMORY;
    CHECK_MSG(s == SF_OK, "%s: %s", name, d.msg);
    if (s == SF_OK) {
      fx_result r = {0, 0, 0, 0};
      int pass = fx_compare(c, "noise_pred", out, io.ref, count, &r);
      printf("%-40s %-34s max abs err %.3g  worst ratio %.3f  %s\n", name, mname, r.max_abs, r.worst_ratio,
             pass ? "ok" : "FAIL");
      CHECK_MSG(pass, "%s: %zu values out of tolerance", name, r.n_bad);
      cases++;
      /* The tensor as passed (int64 0-d, float 0-d, or per-sample) gives the same result. */
      s = sf_unet_run(m->unet, TX(NULL), TP(), io.sample, io.n, io.h, io.w, io.t_passed, NULL, io.text, io.tokens, out_passed,
                      &d);
      CHECK_MSG(s == SF_OK && bit_equal(out, out_passed, count), "%s: in.timestep run differs from timestep_f32", name);
      if (!replan_done && io.n == 2) {
        check_replan(m->unet, &io, out);
        replan_done = 1;
      }
      if (!threads_done) {
        CHECK_MSG(sf_plan_check(sf_unet_graph(m->unet), TP(), &d) == 0, "%s", d.msg);
        check_threads(m->unet, &io);
        check_bad_sizes(m->unet, &io);
        threads_done = 1;
      }
    }
    free(out);
    free(out_passed);
    case_io_free(&io);
  }
  CHECK_MSG(cases >= 1, "no UNet case ran");
  CHECK(replan_done);
  printf("%d UNet fixture cases\n", cases);
  for (size_t k = 0; k < n_models; k++) model_close(&models[k]);
}

/* ---- config parsing and refusals ---------------------------------------------------------- */

#define BASE_CONFIG_HEAD                                                                                   \
  "{\"_class_name\": \"UNet2DConditionModel\", \"block_out_channels\": [32, 64], \"norm_num_groups\": 8, " \
  "\"cross_attention_dim\": 32, \"attention_head_dim\": [2, 4], \"layers_per_block\": 1, "

static void expect_refusal(const char *tail, sf_status want, const char *needle) {
  char text[2048];
  snprintf(text, sizeof text, "%s%s", BASE_CONFIG_HEAD, tail);
  sf_unet_config cfg;
  sf_diag d = {0};
  sf_status s = parse_config_text(text, &cfg, &d);
  CHECK_MSG(s == want && strstr(d.msg, needle) != NULL, "config tail %s: status %d, message '%s' (want %d, '%s')", tail,
            (int)s, d.msg, (int)want, needle);
}

#define OK_TYPES                                                                                            \
  "\"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"], \"up_block_types\": [\"UpBlock2D\", " \
  "\"CrossAttnUpBlock2D\"]"

static void test_config_refusals(void) {
  /* The base itself parses. */
  {
    char text[1024];
    snprintf(text, sizeof text, "%s%s}", BASE_CONFIG_HEAD, OK_TYPES);
    sf_unet_config cfg;
    sf_diag d = {0};
    CHECK_MSG(parse_config_text(text, &cfg, &d) == SF_OK, "%s", d.msg);
  }
  expect_refusal(
      "\"down_block_types\": [\"CrossAttnDownBlock2D\", \"FancyDownBlock2D\"], "
      "\"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\"]}",
      SF_ERR_UNSUPPORTED, "unsupported: down_block_types[1]=\"FancyDownBlock2D\"");
  expect_refusal(
      "\"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"], "
      "\"up_block_types\": [\"UpBlock2D\", \"SimpleCrossAttnUpBlock2D\"]}",
      SF_ERR_UNSUPPORTED, "unsupported: up_block_types[1]");
  static const struct {
    const char *field;
    const char *needle;
  } unsupported_fields[] = {
      {"\"class_embed_type\": \"timestep\"", "unsupported: class_embed_type=\"timestep\""},
      {"\"num_class_embeds\": 10", "unsupported: num_class_embeds=10"},
      {"\"addition_embed_type\": \"text_time\"", "unsupported: addition_embed_type"},
      {"\"time_cond_proj_dim\": 2", "unsupported: time_cond_proj_dim=2"}, /* its sinusoid divides by 0 */
      {"\"encoder_hid_dim\": 64", "unsupported: encoder_hid_dim=64"},
      {"\"dual_cross_attention\": true", "unsupported: dual_cross_attention=true"},
      {"\"time_embedding_type\": \"fourier\"", "unsupported: time_embedding_type=\"fourier\""},
      {"\"resnet_time_scale_shift\": \"scale_shift\"", "unsupported: resnet_time_scale_shift"},
      {"\"attention_type\": \"gated\"", "unsupported: attention_type"},
      {"\"conv_in_kernel\": 4", "unsupported: conv_in_kernel=4"},
      {"\"act_fn\": \"gelu\"", "unsupported: act_fn=\"gelu\""},
      {"\"num_attention_heads\": 8", "unsupported: num_attention_heads=8"},
      {"\"mid_block_type\": \"UNetMidBlock2DSimpleCrossAttn\"", "unsupported: mid_block_type"},
      {"\"downsample_padding\": 2", "unsupported: downsample_padding=2"},
      {"\"some_future_option\": 3", "unsupported: some_future_option=3"},
      {"\"timestep_post_act\": \"mish\"", "unsupported: timestep_post_act"},
      {"\"class_embeddings_concat\": true", "unsupported: class_embeddings_concat"},
  };
  for (size_t i = 0; i < sizeof unsupported_fields / sizeof *unsupported_fields; i++) {
    char tail[512];
    snprintf(tail, sizeof tail, "%s, %s}", unsupported_fields[i].field, OK_TYPES);
    expect_refusal(tail, SF_ERR_UNSUPPORTED, unsupported_fields[i].needle);
  }
  /* Accepted: LCM's guidance embedding (time_embedding.cond_proj); null = none. */
  {
    char text[1024];
    sf_unet_config cfg;
    sf_diag d = {0};
    snprintf(text, sizeof text, "%s\"time_cond_proj_dim\": 256, %s}", BASE_CONFIG_HEAD, OK_TYPES);
    CHECK_MSG(parse_config_text(text, &cfg, &d) == SF_OK, "%s", d.msg);
    CHECK_EQ_INT((int)cfg.time_cond_proj_dim, 256);
    snprintf(text, sizeof text, "%s\"time_cond_proj_dim\": null, %s}", BASE_CONFIG_HEAD, OK_TYPES);
    CHECK_MSG(parse_config_text(text, &cfg, &d) == SF_OK, "%s", d.msg);
    CHECK_EQ_INT((int)cfg.time_cond_proj_dim, 0);
  }
  expect_refusal("\"time_cond_proj_dim\": \"16\", " OK_TYPES "}", SF_ERR_BAD_MODEL, "time_cond_proj_dim");
  /* Accepted: fp32 makes upcasting a no-op. */
  {
    char text[1024];
    snprintf(text, sizeof text, "%s\"upcast_attention\": true, %s}", BASE_CONFIG_HEAD, OK_TYPES);
    sf_unet_config cfg;
    sf_diag d = {0};
    CHECK_MSG(parse_config_text(text, &cfg, &d) == SF_OK, "%s", d.msg);
  }
  /* Malformed. */
  expect_refusal("\"transformer_layers_per_block\": [[1], 1], " OK_TYPES "}", SF_ERR_BAD_MODEL,
                 "reverse_transformer_layers_per_block");
  expect_refusal("\"attention_head_dim\": [2, 4, 8], " OK_TYPES "}", SF_ERR_BAD_MODEL, "attention_head_dim");
  expect_refusal("\"down_block_types\": [\"DownBlock2D\"], \"up_block_types\": [\"UpBlock2D\"]}", SF_ERR_BAD_MODEL,
                 "entries");
  {
    sf_unet_config cfg;
    sf_diag d = {0};
    sf_status s =
        parse_config_text("{\"down_block_types\": [\"DownBlock2D\"], \"up_block_types\": [\"UpBlock2D\"]}", &cfg, &d);
    CHECK_MSG(s == SF_ERR_BAD_MODEL && strstr(d.msg, "block_out_channels"), "%s", d.msg);
  }
}

static sf_status parse_config_file(const char *path, sf_unet_config *cfg, sf_diag *d) {
  sf_json_doc *doc = sf_json_parse_file(path, 1 << 20, d);
  if (doc == NULL) return d->status;
  sf_status s = sf_unet_config_parse(sf_json_root(doc), cfg, d);
  sf_json_free(doc);
  return s;
}

/* Per-stage resolution on the real layouts: SD-1.5 legacy heads, SnapFusion's reversed
 * transformer depths, BK-SDM without mid block. */
static int test_config_resolution(const char *configs_dir) {
  char path[4400];
  sf_unet_config c;
  sf_diag d = {0};
  snprintf(path, sizeof path, "%s/sd-v1-5/unet/config.json", configs_dir);
  if (access(path, R_OK) != 0) return 0;
  CHECK_MSG(parse_config_file(path, &c, &d) == SF_OK, "%s", d.msg);
  CHECK_EQ_INT(c.n_blocks, 4);
  CHECK_EQ_INT(c.down[0].heads, 8);
  CHECK_EQ_INT(c.mid.heads, 8);
  CHECK_EQ_INT(c.cross_attention_dim, 768);
  CHECK_EQ_INT(c.mid_kind, SF_UNET_MID_CROSS_ATTN);
  CHECK_EQ_INT(c.up[0].kind, SF_UNET_BLOCK_PLAIN);
  CHECK_EQ_INT(c.up[3].layers, 3);
  CHECK_EQ_INT(c.up[3].in_channels, 640); /* prev_output_channel */
  CHECK_EQ_INT(c.up[3].skip_in_channels, 320);
  CHECK_EQ_INT(c.time_embed_dim, 1280);

  d = (sf_diag){0};
  snprintf(path, sizeof path, "%s/snapfusion-style/unet/config.json", configs_dir);
  CHECK_MSG(parse_config_file(path, &c, &d) == SF_OK, "%s", d.msg);
  CHECK_EQ_INT(c.down[0].kind, SF_UNET_BLOCK_PLAIN);
  CHECK_EQ_INT(c.down[0].layers, 2);
  CHECK_EQ_INT(c.down[2].layers, 1);
  CHECK_EQ_INT(c.down[2].transformer_layers[0], 2);
  CHECK_EQ_INT(c.mid.transformer_layers[0], 1);
  CHECK_EQ_INT(c.up[1].layers, 2);
  CHECK_EQ_INT(c.up[1].transformer_layers[0], 3);
  CHECK_EQ_INT(c.up[1].transformer_layers[1], 3);
  CHECK_EQ_INT(c.up[2].layers, 3);
  CHECK_EQ_INT(c.up[2].transformer_layers[2], 1);

  d = (sf_diag){0};
  snprintf(path, sizeof path, "%s/bk-sdm-tiny/unet/config.json", configs_dir);
  CHECK_MSG(parse_config_file(path, &c, &d) == SF_OK, "%s", d.msg);
  CHECK_EQ_INT(c.mid_kind, SF_UNET_MID_NONE);
  CHECK_EQ_INT(c.up[0].layers, 2);
  CHECK_EQ_INT(c.n_downsamplers, 2);
  return 1;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- random weights on the real architectures -------------------------------------------- */

/* Divides every width of a parsed config by `div`, keeping the block structure (types,
 * per-stage depths, heads, mid block): the real layouts at a fraction of the weights. */
static void shrink_widths(sf_unet_config *c, size_t div) {
  for (size_t i = 0; i < c->n_blocks; i++) {
    c->block_out_channels[i] /= div;
    sf_unet_block *bl[2] = {&c->down[i], &c->up[i]};
    for (int k = 0; k < 2; k++) {
      bl[k]->in_channels /= div;
      bl[k]->out_channels /= div;
      bl[k]->skip_in_channels /= div;
      bl[k]->cross_attention_dim /= div;
    }
  }
  c->mid.in_channels /= div;
  c->mid.out_channels /= div;
  c->mid.cross_attention_dim /= div;
  c->time_proj_dim /= div;
  c->time_embed_dim /= div;
  c->cross_attention_dim /= div;
}

/* Full-size random builds take ~10-20 s each (0.3-0.8 G parameters); by default the real
 * configs run with widths / 10. SF_TEST_FULL_SIZE=1 builds them as they are. */
static void test_random_build(const char *configs_dir, const char *name, size_t lat) {
  char path[4200];
  snprintf(path, sizeof path, "%s/%s/unet/config.json", configs_dir, name);
  sf_unet_config cfg;
  sf_diag d = {0};
  if (parse_config_file(path, &cfg, &d) != SF_OK) {
    CHECK_MSG(0, "%s: %s", name, d.msg);
    return;
  }
  const char *full = getenv("SF_TEST_FULL_SIZE");
  if (full == NULL || strcmp(full, "1") != 0) shrink_widths(&cfg, 10);
  double t0 = now_s();
  sf_wsrc *ws = sf_wsrc_random(1234, "unet");
  sf_unet *u = ws ? sf_unet_build(&cfg, ws, &d) : NULL;
  double t_build = now_s() - t0;
  CHECK_MSG(u != NULL, "%s: %s", name, d.msg);
  if (u != NULL) {
    size_t T = 77, D = cfg.cross_attention_dim, count = cfg.in_channels * lat * lat;
    float *x = malloc(count * sizeof *x), *text = malloc(T * D * sizeof *text), *out = malloc(count * sizeof *out);
    float t = 500.0f;
    for (size_t i = 0; x && i < count; i++) x[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    for (size_t i = 0; text && i < T * D; i++) text[i] = (float)((i * 40503u) % 997) / 498.5f - 1.0f;
    pthreadpool_t pool = NULL; /* a loaded 2-core machine makes pool barriers dominate tiny graphs */
    t0 = now_s();
    sf_status s =
        x && text && out ? sf_unet_run(u, TX(pool), TP(), x, 1, lat, lat, &t, NULL, text, T, out, &d) : SF_ERR_OUT_OF_MEMORY;
    double t_run = now_s() - t0;
    t0 = now_s(); /* planned now: the second run measures the graph alone */
    if (s == SF_OK) s = sf_unet_run(u, TX(pool), TP(), x, 1, lat, lat, &t, NULL, text, T, out, &d);
    double t_rerun = now_s() - t0;
    CHECK_MSG(s == SF_OK, "%s: %s", name, d.msg);
    int finite = s == SF_OK;
    double mag = 0;
    for (size_t i = 0; finite && i < count; i++) {
      finite = isfinite(out[i]);
      mag += fabs(out[i]);
    }
    CHECK_MSG(finite && mag > 0, "%s: output not finite or all zero", name);
    sf_graph_stats st;
    sf_graph_get_stats(sf_unet_graph(u), TP(), &st);
    printf(
        "random %-18s %zux%zu: %.1fM params, %.2f GMAC dense + %.3f attention, arena %.1f MiB, build %.1f s, "
        "plan+run %.2f s, run %.2f s: %s\n",
        name, lat, lat, sf_wsrc_param_count(ws) / 1e6, st.macs_dense / 1e9, st.macs_attention / 1e9,
        sf_plan_arena_bytes(TP()) / 1048576.0, t_build, t_run, t_rerun, finite ? "finite" : "NOT FINITE");
    free(x);
    free(text);
    free(out);
  }
  sf_unet_destroy(u);
  sf_wsrc_destroy(ws);
}

/* Options no fixture covers, on a random-weight toy: linear projections, heads that do not
 * divide the width, only_cross_attention, transformer depth 0, per-stage layers, a resnet-only
 * mid block, extra time activations, odd conv kernels, centred input, downsample_padding 0. */
#define VARIANT_CONFIG                                                                                             \
  "{\"block_out_channels\": [16, 32], \"norm_num_groups\": 8, \"cross_attention_dim\": 24, "                       \
  "\"attention_head_dim\": [3, 4], \"down_block_types\": [\"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\"], "   \
  "\"up_block_types\": [\"CrossAttnUpBlock2D\", \"UNetResCrossAttnUpBlock2D\"], \"use_linear_projection\": true, " \
  "\"only_cross_attention\": [true, false], \"mid_block_type\": \"UNetMidBlock2D\", "                              \
  "\"time_embedding_act_fn\": \"silu\", \"timestep_post_act\": \"silu\", \"time_embedding_dim\": 40, "             \
  "\"center_input_sample\": true, \"conv_in_kernel\": 5, \"conv_out_kernel\": 1, \"in_channels\": 9, "             \
  "\"out_channels\": 3, \"layers_per_block\": [1, 2], \"transformer_layers_per_block\": [2, 0], "                  \
  "\"freq_shift\": 1, \"flip_sin_to_cos\": false, \"mid_block_scale_factor\": 2.0, \"upcast_attention\": true, "   \
  "\"downsample_padding\": %d}"

static float *run_variant(int downsample_padding, size_t batch, const float *x, const float *t, const float *text,
                          size_t T) {
  char text_cfg[2048];
  snprintf(text_cfg, sizeof text_cfg, VARIANT_CONFIG, downsample_padding);
  sf_unet_config cfg;
  sf_diag d = {0};
  if (parse_config_text(text_cfg, &cfg, &d) != SF_OK) {
    CHECK_MSG(0, "variant config: %s", d.msg);
    return NULL;
  }
  CHECK_EQ_INT(cfg.up[1].layers, 2);
  CHECK_EQ_INT(cfg.mid_kind, SF_UNET_MID_RESNET);
  sf_wsrc *ws = sf_wsrc_random(7, "unet");
  sf_unet *u = ws ? sf_unet_build(&cfg, ws, &d) : NULL;
  CHECK_MSG(u != NULL, "variant build: %s", d.msg);
  size_t h = 8, w = 12, per = 3 * h * w;
  float *out = u ? malloc(batch * per * sizeof *out) : NULL;
  if (out) {
    sf_status s = sf_unet_run(u, TX(NULL), TP(), x, batch, h, w, t, NULL, text, T, out, &d);
    CHECK_MSG(s == SF_OK, "variant run: %s", d.msg);
    int finite = s == SF_OK;
    for (size_t i = 0; finite && i < batch * per; i++) finite = isfinite(out[i]);
    CHECK_MSG(finite, "variant output not finite");
    CHECK_MSG(sf_plan_check(sf_unet_graph(u), TP(), &d) == 0, "%s", d.msg);
    /* Each item of the batch alone gives the same result (per-sample t and text). */
    float *one = malloc(per * sizeof *one);
    for (size_t b = 0; one && b < batch; b++) {
      s = sf_unet_run(u, TX(NULL), TP(), x + b * 9 * h * w, 1, h, w, t + b, NULL, text + b * T * 24, T, one, &d);
      size_t nonfinite = 0;
      double rel = s == SF_OK ? max_rel_diff(one, out + b * per, per, &nonfinite) : INFINITY;
      CHECK_MSG(s == SF_OK && nonfinite == 0 && rel <= 1e-6, "variant item %zu alone differs (rel %g, %zu non-finite)",
                b, rel, nonfinite);
    }
    free(one);
  }
  sf_unet_destroy(u);
  sf_wsrc_destroy(ws);
  return out;
}

static void test_variants(void) {
  size_t batch = 2, T = 5, per_x = 9 * 8 * 12;
  float x[2 * 9 * 8 * 12], text[2 * 5 * 24], t[2] = {999.0f, 17.5f};
  for (size_t i = 0; i < batch * per_x; i++) x[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
  for (size_t i = 0; i < batch * T * 24; i++) text[i] = (float)((i * 40503u) % 997) / 498.5f - 1.0f;
  float *pad1 = run_variant(1, batch, x, t, text, T);
  float *pad0 = run_variant(0, batch, x, t, text, T);
  if (pad1 && pad0) CHECK_MSG(!bit_equal(pad0, pad1, batch * 3 * 8 * 12), "downsample_padding 0 had no effect");
  free(pad1);
  free(pad0);
}

/* ---- checkpoints that do not match the architecture ------------------------------------- */

typedef enum { DROP, EXTRA, RESHAPE } mutation;

/* Writes the F32 copy of w's tensors to path, with one mutation applied to `victim`. */
static int write_mutated(const sf_weights *w, const char *path, mutation mut, const char *victim) {
  size_t n = sf_weights_count(w);
  size_t cap = 256 + n * 256, len = 0;
  char *hdr = malloc(cap);
  if (hdr == NULL) return 0;
  uint64_t off = 0;
  len += (size_t)snprintf(hdr + len, cap - len, "{\"__metadata__\":{\"format\":\"pt\"}");
  for (size_t i = 0; i < n; i++) {
    const sf_st_tensor *t = sf_weights_at(w, i);
    int is_victim = strcmp(t->name, victim) == 0;
    if (is_victim && mut == DROP) continue;
    uint64_t bytes = t->numel * 4;
    len += (size_t)snprintf(hdr + len, cap - len, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[", t->name);
    if (is_victim && mut == RESHAPE) {
      len += (size_t)snprintf(hdr + len, cap - len, "%llu,1", (unsigned long long)t->numel);
    } else {
      for (int k = 0; k < t->ndim; k++)
        len += (size_t)snprintf(hdr + len, cap - len, "%s%lld", k ? "," : "", (long long)t->shape[k]);
    }
    len += (size_t)snprintf(hdr + len, cap - len, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                            (unsigned long long)(off + bytes));
    off += bytes;
  }
  if (mut == EXTRA) {
    len += (size_t)snprintf(hdr + len, cap - len,
                            ",\"extra.leftover.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[%llu,%llu]}",
                            (unsigned long long)off, (unsigned long long)(off + 8));
  }
  len += (size_t)snprintf(hdr + len, cap - len, "}");
  while (len % 8 != 0) hdr[len++] = ' ';
  FILE *f = fopen(path, "wb");
  int ok = f != NULL;
  uint64_t hl = len;
  unsigned char le[8];
  for (int k = 0; k < 8; k++) le[k] = (unsigned char)(hl >> (8 * k));
  if (ok) ok = fwrite(le, 1, 8, f) == 8 && fwrite(hdr, 1, len, f) == len;
  for (size_t i = 0; ok && i < n; i++) {
    const sf_st_tensor *t = sf_weights_at(w, i);
    if (strcmp(t->name, victim) == 0 && mut == DROP) continue;
    float *buf = malloc((t->numel ? t->numel : 1) * sizeof *buf);
    ok = buf != NULL;
    if (ok) {
      sf_st_to_f32(t, buf);
      ok = fwrite(buf, 4, t->numel, f) == t->numel;
    }
    free(buf);
  }
  if (ok && mut == EXTRA) {
    float two[2] = {1, 2};
    ok = fwrite(two, 4, 2, f) == 2;
  }
  if (f) ok = (fclose(f) == 0) && ok;
  free(hdr);
  return ok;
}

static void test_checkpoint_mismatch(const fx_manifest *fm) {
  char dir[4400];
  fx_path(fm, "tiny-pruned/bksdm_like_nomid", dir, sizeof dir);
  sf_diag d = {0};
  sf_component *comp = sf_component_open(dir, NULL, &d);
  CHECK_MSG(comp != NULL, "%s", d.msg);
  if (comp == NULL) return;
  sf_unet_config cfg;
  CHECK_MSG(sf_unet_config_parse(sf_component_config(comp), &cfg, &d) == SF_OK, "%s", d.msg);
  char tmpl[] = "/tmp/sf_test_unet_XXXXXX";
  char *tmp = mkdtemp(tmpl);
  CHECK(tmp != NULL);
  static const struct {
    mutation mut;
    const char *victim, *needle;
  } cases[] = {
      {DROP, "up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight",
       "up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight"},
      {DROP, "up_blocks.0.resnets.0.conv_shortcut.bias", "up_blocks.0.resnets.0.conv_shortcut.bias"},
      {EXTRA, "", "extra.leftover.weight"},
      {RESHAPE, "down_blocks.1.resnets.0.conv1.weight", "down_blocks.1.resnets.0.conv1.weight"},
  };
  for (size_t i = 0; tmp && i < sizeof cases / sizeof *cases; i++) {
    char path[4200];
    snprintf(path, sizeof path, "%s/mutated.safetensors", tmp);
    CHECK(write_mutated(comp->weights, path, cases[i].mut, cases[i].victim));
    sf_diag e = {0};
    sf_weights *w = sf_weights_open_file(path, &e);
    CHECK_MSG(w != NULL, "%s", e.msg);
    if (w == NULL) continue;
    sf_wsrc *ws = sf_wsrc_from_weights(w, "unet");
    sf_unet *u = sf_unet_build(&cfg, ws, &e);
    CHECK_MSG(u == NULL && e.status == SF_ERR_BAD_MODEL && strstr(e.msg, cases[i].needle) != NULL,
              "mutation %zu: status %d '%s'", i, (int)e.status, e.msg);
    printf("  mismatch %zu refused: %s\n", i, e.msg);
    sf_unet_destroy(u);
    sf_wsrc_destroy(ws);
    sf_weights_close(w);
    remove(path);
  }
  if (tmp) rmdir(tmp);
  sf_component_close(comp);
}

int main(void) {
  if (xnn_initialize(NULL) != xnn_status_success) {
    fprintf(stderr, "xnn_initialize failed\n");
    return 1;
  }
  test_config_refusals();
  test_variants();
  char configs[3000];
  snprintf(configs, sizeof configs, "%s/../shared/configs", SF_TEST_SOURCE_DIR);
  if (test_config_resolution(configs)) {
    test_random_build(configs, "bk-sdm-tiny", 16);
    test_random_build(configs, "snapfusion-style", 16);
  } else {
    printf("shared configs not found at %s: real-architecture checks skipped\n", configs);
  }

  const char *fx = sf_test_fixtures();
  if (fx == NULL) {
    if (sf_test_failed) TEST_MAIN_END();
    return TEST_SKIP_EXIT_CODE;
  }
  char root[2048]; /* bounded so the manifest helper's path formatting cannot truncate */
  size_t root_len = strlen(fx) < sizeof root ? strlen(fx) : sizeof root - 1;
  memcpy(root, fx, root_len);
  root[root_len] = '\0';
  fx_manifest fm;
  CHECK(fx_manifest_open(&fm, root));
  if (fm.doc != NULL) {
    run_fixture_cases(&fm);
    test_checkpoint_mismatch(&fm);
    fx_manifest_close(&fm);
  }
  TEST_MAIN_END();
}
