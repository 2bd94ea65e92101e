/* snapfusion bench unet|vae|text: whole networks through the public API, built from a
 * config folder with seeded random weights; MACs come from the graph the call ran
 * (SF_INFO_LAST_MACS), memory from the planned arena and the process's peak RSS. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench.h"
#include "core/context.h"
#include "graph/wsrc.h"
#include "io/json.h"
#include "models/clip_text.h"
#include "models/taesd.h"
#include "models/unet.h"
#include "models/vae.h"
#include "pipeline/pipeline.h"
#include "pipeline/run.h"
#include "text/tokenizer.h"

typedef sf_status (*net_call)(void *arg);

/* Warm-up + repeat timed calls of fn; 0 and a message on failure. */
static int time_calls(net_call fn, void *arg, long long repeat, bench_row *row, const char *what,
                      const sf_context *ctx) {
  double *t = malloc((size_t)repeat * sizeof *t);
  if (t == NULL) return 0;
  for (long long r = -1; r < repeat; r++) {
    double t0 = bench_now();
    sf_status s = fn(arg);
    if (s != SF_OK) {
      free(t);
      cli_fail(what, s, ctx);
      return 0;
    }
    if (r >= 0) t[r] = bench_now() - t0;
  }
  bench_stats(t, (size_t)repeat, &row->median_s, &row->min_s);
  free(t);
  return 1;
}

/* The weight type the networks are loaded with (--weights). */
static int bench_weights;

/* tokenizer: a tokenizer folder for config folders that list one they do not ship (needed
 * when the text encoder is among the networks), or NULL. */
static sf_pipeline *load_random(sf_context *ctx, const char *dir, unsigned networks, const char *tokenizer,
                                double *load_s) {
  sf_params *opts = NULL;
  sf_pipeline *p = NULL;
  sf_status s = sf_params_create(&opts);
  if (s == SF_OK) s = sf_params_set_int(opts, SF_PARAM_RANDOM_WEIGHTS, 1);
  if (s == SF_OK) s = sf_params_set_int(opts, SF_PARAM_COMPONENTS, networks);
  if (s == SF_OK && tokenizer) s = sf_params_set_string(opts, SF_PARAM_TOKENIZER_PATH, tokenizer);
  if (s == SF_OK && bench_weights != SF_WEIGHT_DEFAULT) s = sf_params_set_int(opts, SF_PARAM_WEIGHT_TYPE, bench_weights);
  double t0 = bench_now();
  if (s == SF_OK) s = sf_pipeline_load(ctx, dir, opts, &p);
  *load_s = bench_now() - t0;
  sf_params_destroy(opts);
  if (s != SF_OK) {
    cli_fail(dir, s, ctx);
    return NULL;
  }
  int64_t built = 0;
  sf_pipeline_get_int(p, SF_INFO_NETWORKS, &built);
  if (((unsigned)built & networks) != networks) {
    fprintf(stderr, "snapfusion bench: %s: the folder has no such network (networks built: %lld)\n", dir,
            (long long)built);
    sf_pipeline_destroy(p);
    return NULL;
  }
  return p;
}

static void net_row_finish(bench_row *row, sf_pipeline *p, const char *name, double load_s) {
  snprintf(row->name, sizeof row->name, "%s", name);
  row->network = 1;
  sf_pipeline_get_float(p, SF_INFO_LAST_MACS, &row->macs);
  sf_pipeline_get_float(p, SF_INFO_LAST_ATTENTION_MACS, &row->attention_macs);
  row->flops = 2.0 * row->macs;
  int64_t wbytes = 0;
  sf_pipeline_get_int(p, SF_INFO_WEIGHT_BYTES, &wbytes);
  row->weights_bytes = (double)wbytes;
  row->peak_rss_bytes = bench_peak_rss_bytes();
  row->load_s = load_s;
}

/* ---- unet ---- */

typedef struct unet_args {
  sf_pipeline *p;
  const float *latents, *t, *text;
  float *out;
  size_t batch, c, h, w, tokens, ctx_dim;
} unet_args;

static sf_status unet_call(void *arg) {
  unet_args *a = arg;
  size_t n = a->batch * a->c * a->h * a->w;
  return sf_unet_predict_v2(a->p, a->latents, n, a->batch, a->h, a->w, a->t, a->batch, a->text,
                            a->batch * a->tokens * a->ctx_dim, a->tokens, a->out, n);
}

int bench_unet(const bench_opts *o, sf_context *ctx, bench_refs *refs, bench_row *rows, size_t *n_rows) {
  (void)refs;
  bench_weights = o->weights;
  double load_s = 0;
  sf_pipeline *p = load_random(ctx, o->config, SF_NET_UNET, NULL, &load_s);
  if (p == NULL) return CLI_EXIT_FAIL;
  int64_t lc = 4;
  sf_pipeline_get_int(p, SF_INFO_LATENT_CHANNELS, &lc);
  size_t batch = (size_t)o->batch, side = (size_t)o->size / 8, tokens = 77;
  size_t ctx_dim = sf_unet_get_config(p->unet)->cross_attention_dim;
  if (ctx_dim == 0) ctx_dim = 768;
  size_t n_lat = batch * (size_t)lc * side * side;
  unet_args a = {.p = p, .batch = batch, .c = (size_t)lc, .h = side, .w = side, .tokens = tokens, .ctx_dim = ctx_dim};
  float *lat = malloc(n_lat * sizeof *lat), *out = malloc(n_lat * sizeof *out);
  float *text = malloc(batch * tokens * ctx_dim * sizeof *text), *t = malloc(batch * sizeof *t);
  int rc = CLI_EXIT_FAIL;
  if (lat && out && text && t) {
    bench_fill_random(lat, n_lat, 1, 1.0f);
    bench_fill_random(text, batch * tokens * ctx_dim, 2, 1.0f);
    for (size_t i = 0; i < batch; i++) t[i] = 500.0f;
    a.latents = lat;
    a.text = text;
    a.t = t;
    a.out = out;
    bench_row *row = &rows[0];
    if (time_calls(unet_call, &a, o->repeat, row, "unet", ctx)) {
      char name[48];
      snprintf(name, sizeof name, "unet %s", bench_base_name(o->config));
      net_row_finish(row, p, name, load_s);
      snprintf(row->shape, sizeof row->shape, "%lldx%lld, batch %zu", o->size, o->size, batch);
      row->arena_bytes = bench_plan_bytes(p, SF_SLOT_UNET);
      row->rss_budget_bytes = row->weights_bytes + 1073741824.0;
      row->goal = 0.50;
      *n_rows = 1;
      if (o->profile) bench_profile_pipeline(stderr, p, SF_SLOT_UNET, sf_unet_graph(p->unet), 2);
      rc = 0;
    }
  } else {
    fprintf(stderr, "snapfusion bench unet: out of memory\n");
  }
  free(lat);
  free(out);
  free(text);
  free(t);
  sf_pipeline_destroy(p);
  return rc;
}

/* ---- vae ---- */

typedef struct vae_args {
  sf_pipeline *p;
  sf_taesd *taesd;
  sf_context *ctx;
  sf_plan *plan; /* TAESD's own run state: a plan and a workspace */
  sf_workspace ws;
  sf_diag d;
  const float *z;
  float *img;
  size_t batch, h, w;
} vae_args;

static sf_status vae_call(void *arg) {
  vae_args *a = arg;
  size_t f = 8;
  return sf_decode_latents_v2(a->p, SF_NET_VAE_DECODER, a->z, a->batch * 4 * a->h * a->w, a->batch, a->h, a->w, 0,
                              a->img, a->batch * 3 * a->h * f * a->w * f);
}

/* TAESD is not loadable with random weights through a pipeline: built here from its
 * config on the library's internals, timed the same way. */
static sf_status taesd_call(void *arg) {
  vae_args *a = arg;
  a->d = (sf_diag){0};
  sf_exec ex = {.pool = sf_ctx_pool_acquire(a->ctx), .cancel = NULL, .ws = &a->ws};
  sf_status s = sf_taesd_decode(a->taesd, &ex, a->plan, a->z, a->batch, a->h, a->w, 0, a->img, &a->d);
  sf_ctx_pool_release(a->ctx);
  return s == SF_OK ? s : sf_ctx_take_diag(a->ctx, &a->d);
}

static sf_taesd *taesd_random(const char *path, double *params, sf_diag *d) {
  char file[4096];
  struct stat st;
  int n = stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? snprintf(file, sizeof file, "%.4000s/config.json", path)
                                                      : snprintf(file, sizeof file, "%s", path);
  if (n < 0 || (size_t)n >= sizeof file) {
    sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "path too long");
    return NULL;
  }
  sf_json_doc *doc = sf_json_parse_file(file, 1 << 20, d);
  if (doc == NULL) return NULL;
  sf_taesd_config cfg;
  sf_taesd *t = NULL;
  if (sf_taesd_config_parse(sf_json_root(doc), &cfg, d) == SF_OK) {
    sf_wsrc *ws = sf_wsrc_random(0, "taesd");
    if (ws == NULL) sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "out of memory");
    else t = sf_taesd_build(&cfg, SF_TAESD_NAMES_DIFFUSERS, ws, NULL, d);
    if (ws) *params = (double)sf_wsrc_param_count(ws);
    sf_wsrc_destroy(ws);
  }
  sf_json_free(doc);
  return t;
}

int bench_vae(const bench_opts *o, sf_context *ctx, bench_refs *refs, bench_row *rows, size_t *n_rows) {
  (void)refs;
  bench_weights = o->weights;
  size_t side = (size_t)o->size / 8, batch = (size_t)o->batch, n = 0;
  size_t n_lat = batch * 4 * side * side, n_img = batch * 3 * (size_t)o->size * (size_t)o->size;
  float *z = malloc(n_lat * sizeof *z), *img = malloc(n_img * sizeof *img);
  if (z == NULL || img == NULL) {
    free(z);
    free(img);
    fprintf(stderr, "snapfusion bench vae: out of memory\n");
    return CLI_EXIT_FAIL;
  }
  bench_fill_random(z, n_lat, 3, 1.0f);
  vae_args a = {.ctx = ctx, .z = z, .img = img, .batch = batch, .h = side, .w = side};
  int rc = 0;
  if (o->config) {
    double load_s = 0;
    a.p = load_random(ctx, o->config, SF_NET_VAE_DECODER, NULL, &load_s);
    if (a.p == NULL || !time_calls(vae_call, &a, o->repeat, &rows[n], "vae decode", ctx)) {
      rc = CLI_EXIT_FAIL;
    } else {
      char name[48];
      snprintf(name, sizeof name, "vae-dec %s", bench_base_name(o->config));
      net_row_finish(&rows[n], a.p, name, load_s);
      snprintf(rows[n].shape, sizeof rows[n].shape, "%lldx%lld, batch %zu", o->size, o->size, batch);
      rows[n].arena_bytes = bench_plan_bytes(a.p, SF_SLOT_VAE_DECODER);
      rows[n].goal = 0.50;
      if (o->profile) bench_profile_pipeline(stderr, a.p, SF_SLOT_VAE_DECODER, sf_vae_decoder_graph(a.p->vae), 1);
      n++;
    }
    sf_pipeline_destroy(a.p);
  }
  char taesd_dir[4096];
  const char *taesd = o->taesd;
  struct stat st;
  if (taesd == NULL && o->config) {
    snprintf(taesd_dir, sizeof taesd_dir, "%.4000s/../taesd/config.json", o->config);
    if (stat(taesd_dir, &st) == 0) taesd = taesd_dir;
  }
  if (rc == 0 && taesd) {
    sf_diag d = {0};
    double params = 0, t0 = bench_now();
    a.taesd = taesd_random(taesd, &params, &d);
    double load_s = bench_now() - t0;
    a.plan = sf_plan_create();
    if (a.taesd == NULL || a.plan == NULL) {
      fprintf(stderr, "snapfusion bench vae: %s: %s\n", taesd, d.msg);
      rc = CLI_EXIT_FAIL;
    } else if (!time_calls(taesd_call, &a, o->repeat, &rows[n], "taesd decode", ctx)) {
      rc = CLI_EXIT_FAIL;
    } else {
      bench_row *r = &rows[n++];
      sf_graph_stats gs;
      sf_graph_get_stats(sf_taesd_decoder_graph(a.taesd), a.plan, &gs);
      snprintf(r->name, sizeof r->name, "taesd-dec");
      snprintf(r->shape, sizeof r->shape, "%lldx%lld, batch %zu", o->size, o->size, batch);
      r->network = 1;
      r->macs = gs.macs_dense + gs.macs_attention;
      r->attention_macs = gs.macs_attention;
      r->flops = 2.0 * r->macs;
      r->weights_bytes = 4.0 * params;
      r->arena_bytes = (double)sf_plan_arena_bytes(a.plan);
      r->peak_rss_bytes = bench_peak_rss_bytes();
      r->load_s = load_s;
    }
    sf_taesd_destroy(a.taesd);
    sf_plan_destroy(a.plan);
    sf_workspace_release(&a.ws);
  }
  free(z);
  free(img);
  *n_rows = n;
  return rc;
}

/* ---- text ---- */

typedef struct text_args {
  sf_pipeline *p;
  const int32_t *ids;
  float *out;
  size_t out_count;
} text_args;

static sf_status text_call(void *arg) {
  text_args *a = arg;
  return sf_encode_ids(a->p, a->ids, 1, 77, 0, a->out, a->out_count);
}

/* A long prompt with the variety the BPE sees in practice: words, punctuation, numbers,
 * accents, CJK and emoji. */
static char *long_prompt(size_t target, size_t *len) {
  static const char *parts[] = {
      "a photograph of an astronaut riding a horse on mars, highly detailed, 8k, trending on artstation, ",
      "portrait of a beautiful woman, by Greg Rutkowski and Alphonse Mucha; intricate (ornate:1.2) ",
      "caf\xc3\xa9 na\xc3\xafve r\xc3\xa9sum\xc3\xa9 \xe5\xaf\xbf\xe5\x8f\xb8 \xf0\x9f\x90\xb1 Tokyo-2049 #cyberpunk ",
      "isn't it wonderful? don't stop! 3.14159 x 1024px, f/1.8, ISO-100 <|endoftext|> ",
      "ultra-realistic, cinematic lighting, volumetric fog, unreal engine 5, octane render, bokeh. "};
  char *s = malloc(target + 256);
  if (s == NULL) return NULL;
  size_t n = 0;
  for (size_t i = 0; n < target; i++) {
    size_t l = strlen(parts[i % 5]);
    memcpy(s + n, parts[i % 5], l);
    n += l;
  }
  s[n] = '\0';
  *len = n;
  return s;
}

int bench_text(const bench_opts *o, sf_context *ctx, bench_refs *refs, bench_row *rows, size_t *n_rows) {
  (void)refs;
  bench_weights = o->weights;
  double load_s = 0;
  char dirbuf[4096];
  const char *dir = o->tokenizer ? o->tokenizer : bench_default_tokenizer(dirbuf, sizeof dirbuf);
  sf_pipeline *p = load_random(ctx, o->config, SF_NET_TEXT_ENCODER, dir, &load_s);
  if (p == NULL) return CLI_EXIT_FAIL;
  int64_t hidden = 768;
  sf_pipeline_get_int(p, SF_INFO_TEXT_HIDDEN, &hidden);
  int32_t ids[77];
  /* BOS, 75 ordinary ids spread over the vocabulary, EOS: the full-length case. */
  ids[0] = 49406;
  for (int i = 1; i < 76; i++) ids[i] = (int32_t)((i * 7919) % 49000 + 256);
  ids[76] = 49407;
  size_t out_count = 77 * (size_t)hidden;
  float *out = malloc(out_count * sizeof *out);
  text_args a = {.p = p, .ids = ids, .out = out, .out_count = out_count};
  int rc = CLI_EXIT_FAIL;
  size_t n = 0;
  if (out && time_calls(text_call, &a, o->repeat, &rows[0], "text encoder", ctx)) {
    char name[48];
    snprintf(name, sizeof name, "clip-text %s", bench_base_name(o->config));
    net_row_finish(&rows[0], p, name, load_s);
    snprintf(rows[0].shape, sizeof rows[0].shape, "77 tokens, batch 1");
    rows[0].arena_bytes = bench_plan_bytes(p, SF_SLOT_TEXT);
    rows[0].goal = 0.40;
    n = 1;
    rc = 0;
  }
  free(out);
  sf_pipeline_destroy(p);
  if (rc != 0) return rc;

  /* Tokenizer throughput on a long prompt, every token kept (no truncation). */
  sf_diag d = {0};
  sf_tokenizer *tok = sf_tokenizer_load_dir(dir, &d);
  if (tok == NULL) {
    fprintf(stderr, "snapfusion bench text: tokenizer %s: %s (skipping the tokenizer row; pass --tokenizer DIR)\n", dir,
                    d.msg);
    *n_rows = n;
    return 0;
  }
  size_t len = 0;
  char *text = long_prompt(64 * 1024, &len);
  size_t cap = len + 2;
  int32_t *tids = malloc(cap * sizeof *tids);
  double *t = malloc((size_t)o->repeat * sizeof *t);
  size_t count = 0;
  if (text && tids && t) {
    for (long long r = -1; r < o->repeat; r++) {
      double t0 = bench_now();
      if (sf_tokenizer_encode(tok, text, len, sf_tokenizer_eos(tok), tids, cap, &count, &d) != SF_OK) {
        fprintf(stderr, "snapfusion bench text: tokenizer: %s\n", d.msg);
        rc = CLI_EXIT_FAIL;
        break;
      }
      if (r >= 0) t[r] = bench_now() - t0;
    }
    if (rc == 0) {
      bench_row *r = &rows[n++];
      bench_stats(t, (size_t)o->repeat, &r->median_s, &r->min_s);
      snprintf(r->name, sizeof r->name, "tokenizer");
      snprintf(r->shape, sizeof r->shape, "%zu KB -> %zu tokens", len / 1024, count);
      r->bytes = (double)len;
      r->tokens = (double)count;
    }
  }
  free(text);
  free(tids);
  free(t);
  sf_tokenizer_free(tok);
  *n_rows = n;
  return rc;
}
