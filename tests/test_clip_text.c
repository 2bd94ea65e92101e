/* CLIP text encoder: the fixture case text_encoder/rows (last_hidden_state, clip_skip_1,
 * pooler_output), batch and thread consistency, argument checks, checkpoint validation on
 * synthetic checkpoints (checked against a plain double-precision forward written here),
 * config refusals, and the real CLIP-L shape built from random weights. */
#include <math.h>
#include <pthreadpool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fixture_util.h"
#include "graph/wsrc.h"
#include "io/json.h"
#include "io/model_folder.h"
#include "models/clip_text.h"
#include "test.h"
#include "test_exec.h"

/* ---- a synthetic checkpoint -------------------------------------------------------------- */

typedef struct tensor {
  char name[96];
  const char *dtype; /* "F32" or "I64" */
  int ndim;
  int64_t shape[2];
  float *f;    /* F32 data */
  int64_t *i;  /* I64 data */
} tensor;

typedef struct ckpt {
  tensor t[128];
  size_t n;
} ckpt;

static uint64_t rng_state = 0x1234567ull;
static float frand(void) { /* uniform [-1, 1) */
  rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((rng_state >> 40) & 0xFFFFFF) / 8388608.0f - 1.0f;
}

static tensor *add_f32(ckpt *c, const char *name, int ndim, int64_t a, int64_t b, float scale, float offset) {
  tensor *t = &c->t[c->n++];
  memset(t, 0, sizeof *t);
  snprintf(t->name, sizeof t->name, "%s", name);
  t->dtype = "F32";
  t->ndim = ndim;
  t->shape[0] = a;
  t->shape[1] = b;
  size_t n = (size_t)a * (size_t)(ndim == 2 ? b : 1);
  t->f = malloc(n * sizeof *t->f);
  for (size_t k = 0; k < n; k++) t->f[k] = offset + scale * frand();
  return t;
}

typedef struct tiny_cfg {
  int64_t d, layers, heads, inter, vocab, pos;
  int gelu;
} tiny_cfg;

static void make_ckpt(ckpt *c, const tiny_cfg *k) {
  char n[96];
  c->n = 0;
  add_f32(c, "text_model.embeddings.token_embedding.weight", 2, k->vocab, k->d, 1.0f, 0);
  add_f32(c, "text_model.embeddings.position_embedding.weight", 2, k->pos, k->d, 0.5f, 0);
  float ws = 1.0f / sqrtf((float)k->d);
  for (int64_t l = 0; l < k->layers; l++) {
    const char *proj[4] = {"q_proj", "k_proj", "v_proj", "out_proj"};
    for (int p = 0; p < 4; p++) {
      snprintf(n, sizeof n, "text_model.encoder.layers.%lld.self_attn.%s.weight", (long long)l, proj[p]);
      add_f32(c, n, 2, k->d, k->d, p < 2 ? 2.5f * ws : ws, 0);
      snprintf(n, sizeof n, "text_model.encoder.layers.%lld.self_attn.%s.bias", (long long)l, proj[p]);
      add_f32(c, n, 1, k->d, 0, 0.1f, 0);
    }
    for (int p = 1; p <= 2; p++) {
      snprintf(n, sizeof n, "text_model.encoder.layers.%lld.layer_norm%d.weight", (long long)l, p);
      add_f32(c, n, 1, k->d, 0, 0.1f, 1.0f);
      snprintf(n, sizeof n, "text_model.encoder.layers.%lld.layer_norm%d.bias", (long long)l, p);
      add_f32(c, n, 1, k->d, 0, 0.1f, 0);
    }
    snprintf(n, sizeof n, "text_model.encoder.layers.%lld.mlp.fc1.weight", (long long)l);
    add_f32(c, n, 2, k->inter, k->d, ws, 0);
    snprintf(n, sizeof n, "text_model.encoder.layers.%lld.mlp.fc1.bias", (long long)l);
    add_f32(c, n, 1, k->inter, 0, 0.1f, 0);
    snprintf(n, sizeof n, "text_model.encoder.layers.%lld.mlp.fc2.weight", (long long)l);
    add_f32(c, n, 2, k->d, k->inter, 1.0f / sqrtf((float)k->inter), 0);
    snprintf(n, sizeof n, "text_model.encoder.layers.%lld.mlp.fc2.bias", (long long)l);
    add_f32(c, n, 1, k->d, 0, 0.1f, 0);
  }
  add_f32(c, "text_model.final_layer_norm.weight", 1, k->d, 0, 0.1f, 1.0f);
  add_f32(c, "text_model.final_layer_norm.bias", 1, k->d, 0, 0.1f, 0);
}

static void free_ckpt(ckpt *c) {
  for (size_t i = 0; i < c->n; i++) {
    free(c->t[i].f);
    free(c->t[i].i);
  }
  c->n = 0;
}

static tensor *find_t(ckpt *c, const char *name) {
  for (size_t i = 0; i < c->n; i++)
    if (strcmp(c->t[i].name, name) == 0) return &c->t[i];
  return NULL;
}

static size_t t_numel(const tensor *t) { return (size_t)t->shape[0] * (size_t)(t->ndim == 2 ? t->shape[1] : 1); }

/* Writes c as a safetensors file, leaving out tensor `skip` (may be NULL). */
static int write_ckpt(const ckpt *c, const char *path, const char *skip) {
  char *hdr = malloc(1 << 16);
  size_t hl = 0, off = 0;
  hl += (size_t)sprintf(hdr + hl, "{\"__metadata__\":{\"format\":\"pt\"}");
  for (size_t i = 0; i < c->n; i++) {
    const tensor *t = &c->t[i];
    if (skip && strcmp(skip, t->name) == 0) continue;
    size_t bytes = t_numel(t) * (t->f ? 4 : 8);
    hl += (size_t)sprintf(hdr + hl, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld", t->name, t->dtype,
                          (long long)t->shape[0]);
    if (t->ndim == 2) hl += (size_t)sprintf(hdr + hl, ",%lld", (long long)t->shape[1]);
    hl += (size_t)sprintf(hdr + hl, "],\"data_offsets\":[%zu,%zu]}", off, off + bytes);
    off += bytes;
  }
  hdr[hl++] = '}';
  while (hl % 8) hdr[hl++] = ' ';
  FILE *f = fopen(path, "wb");
  if (f == NULL) {
    free(hdr);
    return 0;
  }
  uint64_t n64 = hl;
  unsigned char le[8];
  for (int b = 0; b < 8; b++) le[b] = (unsigned char)(n64 >> (8 * b));
  fwrite(le, 1, 8, f);
  fwrite(hdr, 1, hl, f);
  for (size_t i = 0; i < c->n; i++) {
    const tensor *t = &c->t[i];
    if (skip && strcmp(skip, t->name) == 0) continue;
    if (t->f) fwrite(t->f, 4, t_numel(t), f);
    else fwrite(t->i, 8, t_numel(t), f);
  }
  free(hdr);
  return fclose(f) == 0;
}

/* ---- a plain double-precision forward over the synthetic checkpoint ------------------------ */

static void ref_layernorm(const double *x, double *y, size_t d, const float *g, const float *b) {
  double mean = 0, var = 0;
  for (size_t k = 0; k < d; k++) mean += x[k];
  mean /= (double)d;
  for (size_t k = 0; k < d; k++) var += (x[k] - mean) * (x[k] - mean);
  var /= (double)d;
  for (size_t k = 0; k < d; k++) y[k] = (x[k] - mean) / sqrt(var + 1e-5) * g[k] + b[k];
}

static void ref_linear(const double *x, double *y, size_t in, size_t out, const float *w, const float *b) {
  for (size_t o = 0; o < out; o++) {
    double s = b[o];
    for (size_t i = 0; i < in; i++) s += (double)w[o * in + i] * x[i];
    y[o] = s;
  }
}

static const float *W(ckpt *c, const char *fmt, long long l) {
  char n[96];
  snprintf(n, sizeof n, fmt, l);
  return find_t(c, n)->f;
}

/* out [batch, tokens, d] = final_ln(hidden state after layers - skip layers). */
static void ref_forward(ckpt *c, const tiny_cfg *k, const int32_t *ids, size_t batch, size_t tokens, int skip,
                        double *out) {
  size_t d = (size_t)k->d, inter = (size_t)k->inter, hd = d / (size_t)k->heads, rows = batch * tokens;
  double *x = calloc(rows * d, sizeof *x), *h = calloc(rows * d, sizeof *h);
  double *q = calloc(rows * d, sizeof *q), *kk = calloc(rows * d, sizeof *kk), *v = calloc(rows * d, sizeof *v);
  double *o = calloc(rows * d, sizeof *o), *t1 = calloc(inter + d, sizeof *t1), *p = calloc(tokens, sizeof *p);
  const float *tok = find_t(c, "text_model.embeddings.token_embedding.weight")->f;
  const float *pos = find_t(c, "text_model.embeddings.position_embedding.weight")->f;
  for (size_t r = 0; r < rows; r++)
    for (size_t j = 0; j < d; j++) x[r * d + j] = (double)tok[(size_t)ids[r] * d + j] + pos[(r % tokens) * d + j];
  for (long long l = 0; l < k->layers - skip; l++) {
    const char *pre = "text_model.encoder.layers.%lld.";
    char f[128];
#define LW(suffix) (snprintf(f, sizeof f, "%s%s", pre, suffix), W(c, f, l))
    for (size_t r = 0; r < rows; r++) {
      ref_layernorm(x + r * d, h + r * d, d, LW("layer_norm1.weight"), LW("layer_norm1.bias"));
      ref_linear(h + r * d, q + r * d, d, d, LW("self_attn.q_proj.weight"), LW("self_attn.q_proj.bias"));
      ref_linear(h + r * d, kk + r * d, d, d, LW("self_attn.k_proj.weight"), LW("self_attn.k_proj.bias"));
      ref_linear(h + r * d, v + r * d, d, d, LW("self_attn.v_proj.weight"), LW("self_attn.v_proj.bias"));
    }
    for (size_t b = 0; b < batch; b++)
      for (size_t hh = 0; hh < (size_t)k->heads; hh++)
        for (size_t i = 0; i < tokens; i++) {
          const double *qi = q + (b * tokens + i) * d + hh * hd;
          double mx = -INFINITY, sum = 0;
          for (size_t j = 0; j <= i; j++) {
            const double *kj = kk + (b * tokens + j) * d + hh * hd;
            double s = 0;
            for (size_t e = 0; e < hd; e++) s += qi[e] * kj[e];
            p[j] = s / sqrt((double)hd);
            if (p[j] > mx) mx = p[j];
          }
          for (size_t j = 0; j <= i; j++) sum += (p[j] = exp(p[j] - mx));
          double *oi = o + (b * tokens + i) * d + hh * hd;
          for (size_t e = 0; e < hd; e++) {
            double s = 0;
            for (size_t j = 0; j <= i; j++) s += p[j] * v[(b * tokens + j) * d + hh * hd + e];
            oi[e] = s / sum;
          }
        }
    for (size_t r = 0; r < rows; r++) {
      ref_linear(o + r * d, h + r * d, d, d, LW("self_attn.out_proj.weight"), LW("self_attn.out_proj.bias"));
      for (size_t j = 0; j < d; j++) x[r * d + j] += h[r * d + j];
      ref_layernorm(x + r * d, h + r * d, d, LW("layer_norm2.weight"), LW("layer_norm2.bias"));
      ref_linear(h + r * d, t1, d, inter, LW("mlp.fc1.weight"), LW("mlp.fc1.bias"));
      for (size_t j = 0; j < inter; j++) {
        double a = t1[j];
        t1[j] = k->gelu ? 0.5 * a * (1.0 + erf(a / sqrt(2.0))) : a / (1.0 + exp(-1.702 * a));
      }
      ref_linear(t1, t1 + inter, inter, d, LW("mlp.fc2.weight"), LW("mlp.fc2.bias"));
      for (size_t j = 0; j < d; j++) x[r * d + j] += t1[inter + j];
    }
#undef LW
  }
  for (size_t r = 0; r < rows; r++)
    ref_layernorm(x + r * d, out + r * d, d, find_t(c, "text_model.final_layer_norm.weight")->f,
                  find_t(c, "text_model.final_layer_norm.bias")->f);
  free(x), free(h), free(q), free(kk), free(v), free(o), free(t1), free(p);
}

/* ---- helpers ------------------------------------------------------------------------------ */

static sf_clip_text *build_from_file(const char *path, const sf_clip_text_config *cfg, int accept_buffers,
                                     sf_weights **w_out, sf_diag *d) {
  sf_weights *w = sf_weights_open_file(path, d);
  if (w == NULL) return NULL;
  if (accept_buffers) sf_clip_text_accept_buffers(w);
  sf_wsrc *ws = sf_wsrc_from_weights(w, "text_encoder");
  sf_clip_text *m = sf_clip_text_build(cfg, ws, d);
  sf_wsrc_destroy(ws);
  if (w_out) *w_out = w;
  else sf_weights_close(w);
  return m;
}

/* max |a - b| over the pairs where both are finite; the others are added to *nonfinite (a NaN
 * must not hide behind a max). */
static double max_abs_diff(const float *a, const float *b, size_t n, size_t *nonfinite) {
  double m = 0;
  for (size_t i = 0; i < n; i++) {
    double e = fabs((double)a[i] - (double)b[i]);
    if (!isfinite(a[i]) || !isfinite(b[i])) ++*nonfinite;
    else if (e > m) m = e;
  }
  return m;
}

static sf_status parse_text(const char *json, sf_clip_text_config *cfg, sf_diag *d) {
  sf_json_doc *doc = sf_json_parse(json, strlen(json), d);
  if (doc == NULL) return d->status;
  sf_status s = sf_clip_text_config_parse(sf_json_root(doc), cfg, d);
  sf_json_free(doc);
  return s;
}

/* ---- synthetic checkpoints: semantics vs the reference, validation ------------------------ */

static void test_synthetic(const char *dir, int gelu) {
  tiny_cfg k = {16, 2, 4, 24, 50, 12, gelu};
  char cfg_json[512];
  snprintf(cfg_json, sizeof cfg_json,
           "{\"architectures\":[\"CLIPTextModel\"],\"model_type\":\"clip_text_model\",\"hidden_size\":%lld,"
           "\"num_hidden_layers\":%lld,\"num_attention_heads\":%lld,\"intermediate_size\":%lld,"
           "\"vocab_size\":%lld,\"max_position_embeddings\":%lld,\"hidden_act\":\"%s\",\"layer_norm_eps\":1e-05,"
           "\"projection_dim\":8,\"eos_token_id\":49}",
           (long long)k.d, (long long)k.layers, (long long)k.heads, (long long)k.inter, (long long)k.vocab,
           (long long)k.pos, gelu ? "gelu" : "quick_gelu");
  sf_clip_text_config cfg;
  sf_diag d = {0};
  CHECK_EQ_INT(parse_text(cfg_json, &cfg, &d), SF_OK);
  CHECK_EQ_INT(cfg.act, gelu ? SF_ACT_GELU : SF_ACT_QUICK_GELU);

  ckpt *c = calloc(1, sizeof *c);
  make_ckpt(c, &k);
  char path[512];
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  CHECK(write_ckpt(c, path, NULL));
  sf_clip_text *m = build_from_file(path, &cfg, 0, NULL, &d);
  CHECK_MSG(m != NULL, "%s", d.msg);
  if (m != NULL) {
    /* a short sequence (tokens < max_positions) and every clip_skip incl. the embeddings */
    enum { B = 3, T = 7 };
    int32_t ids[B * T];
    for (int i = 0; i < B * T; i++) ids[i] = (int32_t)((i * 37 + 11) % k.vocab);
    ids[T + 4] = 49; /* the eos id, to exercise the pooled rule */
    float out[B * T * 16];
    double ref[B * T * 16];
    for (int skip = 0; skip <= 2; skip++) {
      sf_diag_clear(&d);
      CHECK_EQ_INT(sf_clip_text_run(m, TX(NULL), TP(), ids, B, T, skip, out, &d), SF_OK);
      ref_forward(c, &k, ids, B, T, skip, ref);
      /* An explicit comparison, not fmax (which skips NaN, and whose loop here crashes the
       * aarch64 gcc 12.2 vectoriser); non-finite values are counted and fail. */
      double e = 0;
      size_t nonfinite = 0;
      for (size_t i = 0; i < sizeof ref / sizeof ref[0]; i++) {
        double diff = fabs((double)out[i] - ref[i]);
        if (!isfinite(out[i]) || !isfinite(ref[i])) nonfinite++;
        else if (diff > e) e = diff;
      }
      printf("synthetic %s clip_skip %d: max |C - double| = %.3g\n", gelu ? "gelu" : "quick_gelu", skip, e);
      CHECK_MSG(nonfinite == 0, "clip_skip %d: %zu non-finite values", skip, nonfinite);
      CHECK_MSG(e < 2e-5, "clip_skip %d: %.3g", skip, e);
    }
    /* pooled with a non-legacy eos id: first occurrence, else row 0 */
    CHECK_EQ_INT(sf_clip_text_run(m, TX(NULL), TP(), ids, B, T, 0, out, &d), SF_OK);
    float pooled[B * 16];
    CHECK_EQ_INT(sf_clip_text_pooled(m, ids, B, T, out, pooled, &d), SF_OK);
    CHECK(memcmp(pooled + 16, out + (T + 4) * 16, 16 * sizeof(float)) == 0);
    CHECK(memcmp(pooled, out, 16 * sizeof(float)) == 0);
    /* argument checks */
    int32_t bad[T];
    memcpy(bad, ids, sizeof bad);
    bad[3] = (int32_t)k.vocab;
    sf_diag_clear(&d);
    CHECK_EQ_INT(sf_clip_text_run(m, TX(NULL), TP(), bad, 1, T, 0, out, &d), SF_ERR_INVALID_ARGUMENT);
    bad[3] = -1;
    sf_diag_clear(&d);
    CHECK_EQ_INT(sf_clip_text_run(m, TX(NULL), TP(), bad, 1, T, 0, out, &d), SF_ERR_INVALID_ARGUMENT);
    sf_diag_clear(&d);
    CHECK_EQ_INT(sf_clip_text_run(m, TX(NULL), TP(), ids, 1, (size_t)k.pos + 1, 0, out, &d), SF_ERR_INVALID_ARGUMENT);
    sf_diag_clear(&d);
    CHECK_EQ_INT(sf_clip_text_run(m, TX(NULL), TP(), ids, 1, T, 3, out, &d), SF_ERR_INVALID_ARGUMENT);
    sf_diag_clear(&d);
    CHECK_EQ_INT(sf_clip_text_run(m, TX(NULL), TP(), ids, 0, T, 0, out, &d), SF_ERR_INVALID_ARGUMENT);
    /* still usable after refused calls */
    sf_diag_clear(&d);
    CHECK_EQ_INT(sf_clip_text_run(m, TX(NULL), TP(), ids, B, T, 0, out, &d), SF_OK);
    sf_clip_text_destroy(m);
  }

  if (!gelu) {
    /* a missing tensor */
    const char *gone = "text_model.encoder.layers.1.mlp.fc2.bias";
    CHECK(write_ckpt(c, path, gone));
    sf_diag_clear(&d);
    m = build_from_file(path, &cfg, 0, NULL, &d);
    CHECK(m == NULL);
    CHECK_EQ_INT(d.status, SF_ERR_BAD_MODEL);
    CHECK_MSG(strstr(d.msg, gone) != NULL, "%s", d.msg);
    printf("missing tensor: %s\n", d.msg);
    sf_clip_text_destroy(m);

    /* a misshaped tensor */
    tensor *t = find_t(c, "text_model.encoder.layers.0.layer_norm2.weight");
    t->shape[0] = k.d + 1;
    free(t->f);
    t->f = calloc((size_t)k.d + 1, sizeof *t->f);
    CHECK(write_ckpt(c, path, NULL));
    sf_diag_clear(&d);
    m = build_from_file(path, &cfg, 0, NULL, &d);
    CHECK(m == NULL);
    CHECK_EQ_INT(d.status, SF_ERR_BAD_MODEL);
    CHECK_MSG(strstr(d.msg, "text_model.encoder.layers.0.layer_norm2.weight") != NULL, "%s", d.msg);
    printf("wrong shape: %s\n", d.msg);
    sf_clip_text_destroy(m);
    t->shape[0] = k.d;

    /* transformers' position_ids buffer: unused unless accepted explicitly */
    tensor *pid = &c->t[c->n++];
    memset(pid, 0, sizeof *pid);
    snprintf(pid->name, sizeof pid->name, "text_model.embeddings.position_ids");
    pid->dtype = "I64";
    pid->ndim = 2;
    pid->shape[0] = 1;
    pid->shape[1] = k.pos;
    pid->i = malloc((size_t)k.pos * sizeof *pid->i);
    for (int64_t i = 0; i < k.pos; i++) pid->i[i] = i;
    CHECK(write_ckpt(c, path, NULL));
    sf_diag_clear(&d);
    m = build_from_file(path, &cfg, 0, NULL, &d);
    CHECK(m == NULL);
    CHECK_EQ_INT(d.status, SF_ERR_BAD_MODEL);
    CHECK_MSG(strstr(d.msg, "position_ids") != NULL, "%s", d.msg);
    sf_clip_text_destroy(m);
    sf_diag_clear(&d);
    m = build_from_file(path, &cfg, 1, NULL, &d);
    CHECK_MSG(m != NULL, "%s", d.msg);
    sf_clip_text_destroy(m);

    /* an unknown extra tensor */
    add_f32(c, "text_model.encoder.layers.2.layer_norm1.weight", 1, k.d, 0, 1, 0);
    CHECK(write_ckpt(c, path, NULL));
    sf_diag_clear(&d);
    m = build_from_file(path, &cfg, 1, NULL, &d);
    CHECK(m == NULL);
    CHECK_EQ_INT(d.status, SF_ERR_BAD_MODEL);
    CHECK_MSG(strstr(d.msg, "text_model.encoder.layers.2.layer_norm1.weight") != NULL, "%s", d.msg);
    sf_clip_text_destroy(m);
    free(c->t[--c->n].f);

    /* CLIPTextModelWithProjection's head is refused, not silently dropped */
    add_f32(c, "text_projection.weight", 2, 8, k.d, 1, 0);
    CHECK(write_ckpt(c, path, NULL));
    sf_diag_clear(&d);
    m = build_from_file(path, &cfg, 1, NULL, &d);
    CHECK(m == NULL);
    CHECK_EQ_INT(d.status, SF_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(d.msg, "text_projection") != NULL, "%s", d.msg);
    sf_clip_text_destroy(m);
  }
  unlink(path);
  free_ckpt(c);
  free(c);
}

static void test_config_refusals(void) {
  sf_clip_text_config cfg;
  sf_diag d = {0};
  const char *base = "\"hidden_size\":8,\"num_hidden_layers\":1,\"num_attention_heads\":2,\"intermediate_size\":4";
  char buf[512];

  snprintf(buf, sizeof buf, "{%s,\"hidden_act\":\"gelu_new\"}", base);
  CHECK_EQ_INT(parse_text(buf, &cfg, &d), SF_ERR_UNSUPPORTED);
  CHECK_MSG(strstr(d.msg, "hidden_act=gelu_new") != NULL, "%s", d.msg);

  sf_diag_clear(&d);
  snprintf(buf, sizeof buf, "{%s,\"architectures\":[\"CLIPTextModelWithProjection\"]}", base);
  CHECK_EQ_INT(parse_text(buf, &cfg, &d), SF_ERR_UNSUPPORTED);
  CHECK_MSG(strstr(d.msg, "CLIPTextModelWithProjection") != NULL, "%s", d.msg);

  sf_diag_clear(&d);
  snprintf(buf, sizeof buf, "{%s,\"model_type\":\"clip\"}", base);
  CHECK_EQ_INT(parse_text(buf, &cfg, &d), SF_ERR_UNSUPPORTED);

  sf_diag_clear(&d);
  CHECK_EQ_INT(parse_text("{\"hidden_size\":8,\"num_hidden_layers\":1,\"intermediate_size\":4}", &cfg, &d),
               SF_ERR_BAD_MODEL);
  CHECK_MSG(strstr(d.msg, "num_attention_heads") != NULL, "%s", d.msg);

  sf_diag_clear(&d);
  CHECK_EQ_INT(parse_text("{\"hidden_size\":10,\"num_hidden_layers\":1,\"num_attention_heads\":4,"
                          "\"intermediate_size\":4}", &cfg, &d),
               SF_ERR_BAD_MODEL);

  sf_diag_clear(&d);
  snprintf(buf, sizeof buf, "{%s,\"layer_norm_eps\":\"x\"}", base);
  CHECK_EQ_INT(parse_text(buf, &cfg, &d), SF_ERR_BAD_MODEL);

  /* transformers' defaults for the keys SD configs may leave out */
  sf_diag_clear(&d);
  snprintf(buf, sizeof buf, "{%s}", base);
  CHECK_EQ_INT(parse_text(buf, &cfg, &d), SF_OK);
  CHECK_EQ_INT(cfg.vocab, 49408);
  CHECK_EQ_INT(cfg.max_positions, 77);
  CHECK_EQ_INT(cfg.act, SF_ACT_QUICK_GELU);
  CHECK(cfg.ln_eps == 1e-5f);
  CHECK_EQ_INT(cfg.eos_token_id, 49407);
}

/* ---- the fixture case ---------------------------------------------------------------------- */

static void test_fixture(const char *fx) {
  fx_manifest man;
  if (!fx_manifest_open(&man, fx)) {
    CHECK(0);
    return;
  }
  const sf_json *cs = fx_case(&man, "text_encoder/rows");
  CHECK(cs != NULL);
  const char *model = sf_json_as_string(sf_json_get(cs, "model"));
  char dir[4200];
  fx_path(&man, model ? model : "tiny-sd/text_encoder", dir, sizeof dir);
  sf_diag d = {0};
  sf_component *comp = sf_component_open(dir, NULL, &d);
  CHECK_MSG(comp != NULL, "%s", d.msg);
  sf_safetensors *st = cs ? fx_case_open(&man, cs) : NULL;
  CHECK(st != NULL);
  if (comp == NULL || st == NULL || cs == NULL) {
    sf_component_close(comp);
    sf_st_close(st);
    fx_manifest_close(&man);
    return;
  }

  sf_clip_text_config cfg;
  CHECK_EQ_INT(sf_clip_text_config_parse(sf_component_config(comp), &cfg, &d), SF_OK);
  sf_clip_text_accept_buffers(comp->weights);
  sf_wsrc *ws = sf_wsrc_from_weights(comp->weights, "text_encoder");
  sf_clip_text *m = sf_clip_text_build(&cfg, ws, &d);
  sf_wsrc_destroy(ws);
  CHECK_MSG(m != NULL, "%s", d.msg);

  const sf_st_tensor *tid = sf_st_find(st, "in.input_ids");
  CHECK(tid != NULL && tid->ndim == 2);
  if (m != NULL && tid != NULL && tid->ndim == 2) {
    size_t B = (size_t)tid->shape[0], T = (size_t)tid->shape[1], D = sf_clip_text_hidden(m);
    int64_t *ids64 = malloc(B * T * sizeof *ids64);
    int32_t *ids = malloc(B * T * sizeof *ids);
    CHECK(sf_st_to_i64(tid, ids64) == 0);
    for (size_t i = 0; i < B * T; i++) ids[i] = (int32_t)ids64[i];
    size_t n = B * T * D, nref = 0;
    float *out = malloc(n * sizeof *out), *out2 = malloc(n * sizeof *out2), *one = malloc(T * D * sizeof *one);

    static const struct { const char *name; int skip; } outs[] = {{"last_hidden_state", 0}, {"clip_skip_1", 1}};
    for (size_t o = 0; o < 2; o++) {
      char key[64];
      snprintf(key, sizeof key, "out.%s", outs[o].name);
      float *ref = fx_f32(st, key, &nref);
      CHECK(ref != NULL && nref == n);
      sf_diag_clear(&d);
      CHECK_EQ_INT(sf_clip_text_run(m, TX(NULL), TP(), ids, B, T, outs[o].skip, out, &d), SF_OK);
      fx_result r;
      int ok = ref && nref == n && fx_compare(cs, outs[o].name, out, ref, n, &r);
      if (ref && nref == n)
        printf("text_encoder/rows %s: max err %.3g, worst ratio %.3f, %zu bad\n", outs[o].name, r.max_abs,
               r.worst_ratio, r.n_bad);
      CHECK_MSG(ok, "%s out of tolerance", outs[o].name);

      if (o == 0) {
        float *pref = fx_f32(st, "out.pooler_output", &nref);
        float *pooled = malloc(B * D * sizeof *pooled);
        CHECK_EQ_INT(sf_clip_text_pooled(m, ids, B, T, out, pooled, &d), SF_OK);
        ok = pref && nref == B * D && fx_compare(cs, "pooler_output", pooled, pref, B * D, &r);
        if (pref && nref == B * D)
          printf("text_encoder/rows pooler_output: max err %.3g, worst ratio %.3f\n", r.max_abs, r.worst_ratio);
        CHECK_MSG(ok, "pooler_output out of tolerance");
        free(pref);
        free(pooled);

        /* batch 1 per row vs the batch of 5 */
        double worst = 0;
        size_t nonfinite = 0;
        for (size_t b = 0; b < B; b++) {
          sf_diag_clear(&d);
          CHECK_EQ_INT(sf_clip_text_run(m, TX(NULL), TP(), ids + b * T, 1, T, 0, one, &d), SF_OK);
          double diff = max_abs_diff(one, out + b * T * D, T * D, &nonfinite);
          if (diff > worst) worst = diff;
        }
        CHECK_MSG(nonfinite == 0, "batch 1 vs batch %zu: %zu non-finite values", B, nonfinite);
        printf("batch 1 vs batch %zu: max diff %.3g\n", B, worst);
        CHECK_MSG(worst <= 1e-6, "batch 1 vs batch %zu differ by %.3g", B, worst);

        /* threads 1 vs 2: bit-identical */
        pthreadpool_t pool = pthreadpool_create(2);
        CHECK(pool != NULL);
        sf_diag_clear(&d);
        CHECK_EQ_INT(sf_clip_text_run(m, TX(pool), TP(), ids, B, T, 0, out2, &d), SF_OK);
        size_t nf_threads = 0; /* (the bit comparison decides; this is for the message) */
        CHECK_MSG(memcmp(out, out2, n * sizeof *out) == 0, "2 threads differ by %.3g",
                  max_abs_diff(out, out2, n, &nf_threads));
        /* and back to the calling thread (re-plan for the thread count) */
        sf_diag_clear(&d);
        CHECK_EQ_INT(sf_clip_text_run(m, TX(NULL), TP(), ids, B, T, 0, out2, &d), SF_OK);
        CHECK(memcmp(out, out2, n * sizeof *out) == 0);
        pthreadpool_destroy(pool);

        sf_diag plan = {0};
        CHECK_MSG(sf_plan_check(sf_clip_text_graph(m), TP(), &plan) == 0, "%s", plan.msg);

        /* an id past the vocabulary */
        int32_t saved = ids[5];
        ids[5] = (int32_t)cfg.vocab;
        sf_diag_clear(&d);
        CHECK_EQ_INT(sf_clip_text_run(m, TX(NULL), TP(), ids, B, T, 0, out2, &d), SF_ERR_INVALID_ARGUMENT);
        CHECK_MSG(strstr(d.msg, "vocabulary") != NULL, "%s", d.msg);
        ids[5] = saved;
      }
      free(ref);
    }
    free(out);
    free(out2);
    free(one);
    free(ids);
    free(ids64);
  }
  sf_clip_text_destroy(m);
  sf_st_close(st);
  sf_component_close(comp);
  fx_manifest_close(&man);
}

/* ---- the real CLIP-L tower with random weights --------------------------------------------- */

static double now_s(void) { /* informational timings only */
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void test_clip_l_random(void) {
  char path[4200];
  snprintf(path, sizeof path, "%s/../shared/configs/sd-v1-5/text_encoder/config.json", SF_TEST_SOURCE_DIR);
  sf_diag d = {0};
  sf_json_doc *doc = sf_json_parse_file(path, 1 << 20, &d);
  if (doc == NULL) {
    printf("CLIP-L random: config not found (%s), skipped\n", d.msg);
    return;
  }
  sf_clip_text_config cfg;
  CHECK_EQ_INT(sf_clip_text_config_parse(sf_json_root(doc), &cfg, &d), SF_OK);
  sf_json_free(doc);
  sf_wsrc *ws = sf_wsrc_random(7, "text_encoder");
  double t0 = now_s();
  sf_clip_text *m = sf_clip_text_build(&cfg, ws, &d);
  printf("CLIP-L random: built in %.2f s\n", now_s() - t0);
  CHECK_MSG(m != NULL, "%s", d.msg);
  uint64_t D = cfg.hidden, I = cfg.intermediate;
  uint64_t expect = cfg.vocab * D + cfg.max_positions * D + 2 * D +
                    cfg.layers * (4 * (D * D + D) + (I * D + I) + (D * I + D) + 4 * D);
  printf("CLIP-L random: %llu parameters\n", (unsigned long long)sf_wsrc_param_count(ws));
  CHECK_EQ_INT(sf_wsrc_param_count(ws), expect);
  sf_wsrc_destroy(ws);
  if (m != NULL) {
    size_t T = cfg.max_positions;
    int32_t *ids = malloc(2 * T * sizeof *ids);
    for (size_t i = 0; i < 2 * T; i++) ids[i] = 49407;
    ids[0] = ids[T] = 49406;
    ids[1] = 320;
    ids[2] = 1125;
    float *out = malloc(2 * T * cfg.hidden * sizeof *out);
    pthreadpool_t pool = pthreadpool_create(2);
    t0 = now_s();
    CHECK_EQ_INT(sf_clip_text_run(m, TX(pool), TP(), ids, 2, T, 0, out, &d), SF_OK);
    printf("CLIP-L random: batch 2 x %zu tokens on 2 threads in %.2f s (incl. planning)\n", T, now_s() - t0);
    size_t bad = 0;
    double rms = 0;
    for (size_t i = 0; i < 2 * T * cfg.hidden; i++) {
      if (!isfinite(out[i])) bad++;
      rms += (double)out[i] * out[i];
    }
    rms = sqrt(rms / (double)(2 * T * cfg.hidden));
    printf("CLIP-L random: output rms %.3f, %zu non-finite\n", rms, bad);
    CHECK_EQ_INT(bad, 0);
    CHECK(rms > 0.1 && rms < 10); /* final LN with unit gamma: ~1 */
    CHECK_EQ_INT(sf_clip_text_run(m, TX(pool), TP(), ids, 2, T, 1, out, &d), SF_OK);
    pthreadpool_destroy(pool);
    free(out);
    free(ids);
    sf_clip_text_destroy(m);
  }
}

int main(void) {
  char dir[] = "/tmp/test_clip_text_XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  test_synthetic(dir, 0);
  test_synthetic(dir, 1);
  rmdir(dir);
  test_config_refusals();
  if (!sf_test_skip_full_size("SD-1.5's CLIP ViT-L/14 text encoder with random weights")) test_clip_l_random();

  const char *fx = sf_test_fixtures();
  if (fx == NULL) {
    if (sf_test_failed) TEST_MAIN_END();
    printf("%d passed, fixture checks skipped\n", sf_test_passed);
    return TEST_SKIP_EXIT_CODE;
  }
  test_fixture(fx);
  TEST_MAIN_END();
}
