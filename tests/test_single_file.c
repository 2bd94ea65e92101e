/* Single-file checkpoints (the original LDM layout), through the public API:
 *  - SD-1.5's full layout (UNet, VAE, CLIP-L text encoder, position_ids buffer, the training
 *    scheduler's buffers), written as a safetensors header over a sparse file (no 2 GB on disk):
 *    loads with SF_PARAM_INSPECT_ONLY and no config, the architecture inferred from the shapes is
 *    SD-1.5's (channels, depth, attention levels, cross-attention width; parameter counts equal
 *    SD-1.5's published ones and those of ../shared/configs/sd-v1-5); with an EMA copy the EMA
 *    weights are taken and the INFO log says so;
 *  - .ckpt / pickle files are refused (SF_ERR_UNSUPPORTED, "convert ... .safetensors"), a config
 *    folder with a model folder is refused;
 *  - with the fixtures (models/single-file/tiny-sd-mini.safetensors and its config folder):
 *    a truncated file, a tensor of the wrong shape, an unknown key, a key with no place in the
 *    layout, a missing tensor, a left-over tensor: each an error naming it; a file holding only the
 *    VAE loads the VAE alone; the tiny model without a config folder asks for one; a set of files in
 *    memory holding the one file loads it (sf_pipeline_load_files). */
#define _XOPEN_SOURCE 700
#include <fcntl.h>
#include <snapfusion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/safetensors.h"
#include "test.h"

static sf_context *ctx;
static char info_log[8192];

static void on_log(void *user, sf_log_level level, const char *msg) {
  (void)user;
  if (level != SF_LOG_INFO) return;
  size_t n = strlen(info_log);
  snprintf(info_log + n, sizeof info_log - n, "%s\n", msg);
}

/* ---- writing safetensors files -------------------------------------------------------------- */

typedef struct wt {
  char name[200];
  sf_dtype dtype;
  int ndim;
  int64_t shape[4];
  const void *data; /* NULL: zeros (a sparse file when every tensor has none) */
} wt;

typedef struct wlist {
  wt *t;
  size_t n, cap;
} wlist;

static void add(wlist *l, sf_dtype dt, const char *name, int ndim, int64_t a, int64_t b, int64_t c, int64_t d) {
  if (l->n == l->cap) {
    l->cap = l->cap ? 2 * l->cap : 256;
    l->t = realloc(l->t, l->cap * sizeof *l->t);
    if (l->t == NULL) abort();
  }
  wt *t = &l->t[l->n++];
  memset(t, 0, sizeof *t);
  snprintf(t->name, sizeof t->name, "%s", name);
  t->dtype = dt;
  t->ndim = ndim;
  int64_t s[4] = {a, b, c, d};
  memcpy(t->shape, s, sizeof s);
}

static uint64_t nbytes(const wt *t) {
  uint64_t n = sf_dtype_size(t->dtype);
  for (int i = 0; i < t->ndim; i++) n *= (uint64_t)t->shape[i];
  return n;
}

/* 1 on success. truncate_by: bytes cut from the end. */
static int write_st(const char *path, const wlist *l, size_t truncate_by) {
  size_t cap = 256 + l->n * 300, len = 0;
  char *h = malloc(cap);
  if (h == NULL) return 0;
  uint64_t off = 0;
  len += (size_t)snprintf(h + len, cap - len, "{");
  for (size_t i = 0; i < l->n; i++) {
    const wt *t = &l->t[i];
    len += (size_t)snprintf(h + len, cap - len, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", i ? "," : "", t->name,
                            sf_dtype_name(t->dtype));
    for (int k = 0; k < t->ndim; k++) len += (size_t)snprintf(h + len, cap - len, "%s%lld", k ? "," : "", (long long)t->shape[k]);
    len += (size_t)snprintf(h + len, cap - len, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                            (unsigned long long)(off + nbytes(t)));
    off += nbytes(t);
  }
  len += (size_t)snprintf(h + len, cap - len, "}");
  while (len % 8) h[len++] = ' ';
  FILE *f = fopen(path, "wb");
  if (f == NULL) {
    free(h);
    return 0;
  }
  unsigned char hl[8];
  for (int i = 0; i < 8; i++) hl[i] = (unsigned char)((uint64_t)len >> (8 * i));
  int ok = fwrite(hl, 1, 8, f) == 8 && fwrite(h, 1, len, f) == len;
  int any_data = 0;
  for (size_t i = 0; i < l->n; i++) any_data |= l->t[i].data != NULL;
  if (any_data) {
    for (size_t i = 0; ok && i < l->n; i++) {
      uint64_t nb = nbytes(&l->t[i]);
      if (l->t[i].data) ok = fwrite(l->t[i].data, 1, nb, f) == nb;
      else
        for (uint64_t k = 0; ok && k < nb; k++) ok = fputc(0, f) != EOF;
    }
  }
  if (fclose(f) != 0) ok = 0;
  free(h);
  if (ok && (!any_data || truncate_by)) ok = truncate(path, (off_t)(8 + len + off - truncate_by)) == 0;
  return ok;
}

/* ---- SD-1.5's LDM layout ------------------------------------------------------------------------ */

/* pre + m + suffix into n (200 bytes; names here are far shorter) */
static void join3(char *n, const char *pre, const char *m, const char *suffix) {
  size_t a = strlen(pre), b = strlen(m), c = strlen(suffix);
  if (a + b + c + 1 > 200) abort();
  memcpy(n, pre, a);
  memcpy(n + a, m, b);
  memcpy(n + a + b, suffix, c + 1);
}

static void lin(wlist *l, sf_dtype dt, const char *pre, const char *m, int64_t out, int64_t in, int bias) {
  char n[200];
  join3(n, pre, m, ".weight");
  add(l, dt, n, 2, out, in, 0, 0);
  if (bias) {
    join3(n, pre, m, ".bias");
    add(l, dt, n, 1, out, 0, 0, 0);
  }
}
static void conv(wlist *l, sf_dtype dt, const char *pre, const char *m, int64_t out, int64_t in, int k) {
  char n[200];
  join3(n, pre, m, ".weight");
  add(l, dt, n, 4, out, in, k, k);
  join3(n, pre, m, ".bias");
  add(l, dt, n, 1, out, 0, 0, 0);
}
static void norm(wlist *l, sf_dtype dt, const char *pre, const char *m, int64_t c) {
  char n[200];
  join3(n, pre, m, ".weight");
  add(l, dt, n, 1, c, 0, 0, 0);
  join3(n, pre, m, ".bias");
  add(l, dt, n, 1, c, 0, 0, 0);
}

static void unet_res(wlist *l, sf_dtype dt, const char *pre, int64_t cin, int64_t cout) {
  norm(l, dt, pre, "in_layers.0", cin);
  conv(l, dt, pre, "in_layers.2", cout, cin, 3);
  lin(l, dt, pre, "emb_layers.1", cout, 1280, 1);
  norm(l, dt, pre, "out_layers.0", cout);
  conv(l, dt, pre, "out_layers.3", cout, cout, 3);
  if (cin != cout) conv(l, dt, pre, "skip_connection", cout, cin, 1);
}

static void unet_st(wlist *l, sf_dtype dt, const char *pre, int64_t c) {
  char p[200];
  norm(l, dt, pre, "norm", c);
  conv(l, dt, pre, "proj_in", c, c, 1);
  snprintf(p, sizeof p, "%stransformer_blocks.0.", pre);
  for (int a = 1; a <= 2; a++) {
    char m[64];
    int64_t ctx_dim = a == 1 ? c : 768;
    snprintf(m, sizeof m, "attn%d.to_q", a);
    lin(l, dt, p, m, c, c, 0);
    snprintf(m, sizeof m, "attn%d.to_k", a);
    lin(l, dt, p, m, c, ctx_dim, 0);
    snprintf(m, sizeof m, "attn%d.to_v", a);
    lin(l, dt, p, m, c, ctx_dim, 0);
    snprintf(m, sizeof m, "attn%d.to_out.0", a);
    lin(l, dt, p, m, c, c, 1);
  }
  lin(l, dt, p, "ff.net.0.proj", 8 * c, c, 1);
  lin(l, dt, p, "ff.net.2", c, 4 * c, 1);
  norm(l, dt, p, "norm1", c);
  norm(l, dt, p, "norm2", c);
  norm(l, dt, p, "norm3", c);
  conv(l, dt, pre, "proj_out", c, c, 1);
}

static void sd15_unet(wlist *l, sf_dtype dt, const char *P) {
  static const int mult[4] = {1, 2, 4, 4};
  char pre[200];
  snprintf(pre, sizeof pre, "%s", P);
  lin(l, dt, pre, "time_embed.0", 1280, 320, 1);
  lin(l, dt, pre, "time_embed.2", 1280, 1280, 1);
  conv(l, dt, pre, "input_blocks.0.0", 320, 4, 3);
  int64_t chans[16], ch = 320;
  int nch = 0, k = 1;
  chans[nch++] = ch;
  for (int i = 0; i < 4; i++) {
    for (int j = 0; j < 2; j++, k++) {
      snprintf(pre, sizeof pre, "%sinput_blocks.%d.0.", P, k);
      unet_res(l, dt, pre, ch, 320 * mult[i]);
      ch = 320 * mult[i];
      if (i < 3) {
        snprintf(pre, sizeof pre, "%sinput_blocks.%d.1.", P, k);
        unet_st(l, dt, pre, ch);
      }
      chans[nch++] = ch;
    }
    if (i < 3) {
      snprintf(pre, sizeof pre, "%sinput_blocks.%d.0.", P, k++);
      conv(l, dt, pre, "op", ch, ch, 3);
      chans[nch++] = ch;
    }
  }
  snprintf(pre, sizeof pre, "%smiddle_block.0.", P);
  unet_res(l, dt, pre, 1280, 1280);
  snprintf(pre, sizeof pre, "%smiddle_block.1.", P);
  unet_st(l, dt, pre, 1280);
  snprintf(pre, sizeof pre, "%smiddle_block.2.", P);
  unet_res(l, dt, pre, 1280, 1280);
  k = 0;
  for (int i = 3; i >= 0; i--) {
    for (int j = 0; j < 3; j++, k++) {
      int64_t skip = chans[--nch];
      snprintf(pre, sizeof pre, "%soutput_blocks.%d.0.", P, k);
      unet_res(l, dt, pre, ch + skip, 320 * mult[i]);
      ch = 320 * mult[i];
      if (i < 3) {
        snprintf(pre, sizeof pre, "%soutput_blocks.%d.1.", P, k);
        unet_st(l, dt, pre, ch);
      }
      if (i > 0 && j == 2) {
        snprintf(pre, sizeof pre, "%soutput_blocks.%d.%d.", P, k, i < 3 ? 2 : 1);
        conv(l, dt, pre, "conv", ch, ch, 3);
      }
    }
  }
  snprintf(pre, sizeof pre, "%s", P);
  norm(l, dt, pre, "out.0", 320);
  conv(l, dt, pre, "out.2", 4, 320, 3);
}

static void vae_res(wlist *l, sf_dtype dt, const char *pre, int64_t cin, int64_t cout) {
  norm(l, dt, pre, "norm1", cin);
  conv(l, dt, pre, "conv1", cout, cin, 3);
  norm(l, dt, pre, "norm2", cout);
  conv(l, dt, pre, "conv2", cout, cout, 3);
  if (cin != cout) conv(l, dt, pre, "nin_shortcut", cout, cin, 1);
}

static void vae_mid(wlist *l, sf_dtype dt, const char *side) {
  char pre[200];
  snprintf(pre, sizeof pre, "first_stage_model.%s.mid.block_1.", side);
  vae_res(l, dt, pre, 512, 512);
  snprintf(pre, sizeof pre, "first_stage_model.%s.mid.attn_1.", side);
  norm(l, dt, pre, "norm", 512);
  conv(l, dt, pre, "q", 512, 512, 1);
  conv(l, dt, pre, "k", 512, 512, 1);
  conv(l, dt, pre, "v", 512, 512, 1);
  conv(l, dt, pre, "proj_out", 512, 512, 1);
  snprintf(pre, sizeof pre, "first_stage_model.%s.mid.block_2.", side);
  vae_res(l, dt, pre, 512, 512);
}

static void sd15_vae(wlist *l, sf_dtype dt) {
  static const int mult[4] = {1, 2, 4, 4};
  char pre[200];
  conv(l, dt, "first_stage_model.encoder.", "conv_in", 128, 3, 3);
  int64_t ch = 128;
  for (int i = 0; i < 4; i++) {
    for (int j = 0; j < 2; j++) {
      snprintf(pre, sizeof pre, "first_stage_model.encoder.down.%d.block.%d.", i, j);
      vae_res(l, dt, pre, ch, 128 * mult[i]);
      ch = 128 * mult[i];
    }
    if (i < 3) {
      snprintf(pre, sizeof pre, "first_stage_model.encoder.down.%d.downsample.", i);
      conv(l, dt, pre, "conv", ch, ch, 3);
    }
  }
  vae_mid(l, dt, "encoder");
  norm(l, dt, "first_stage_model.encoder.", "norm_out", 512);
  conv(l, dt, "first_stage_model.encoder.", "conv_out", 8, 512, 3);
  conv(l, dt, "first_stage_model.", "quant_conv", 8, 8, 1);
  conv(l, dt, "first_stage_model.", "post_quant_conv", 4, 4, 1);
  conv(l, dt, "first_stage_model.decoder.", "conv_in", 512, 4, 3);
  vae_mid(l, dt, "decoder");
  ch = 512;
  for (int i = 3; i >= 0; i--) {
    for (int j = 0; j < 3; j++) {
      snprintf(pre, sizeof pre, "first_stage_model.decoder.up.%d.block.%d.", i, j);
      vae_res(l, dt, pre, ch, 128 * mult[i]);
      ch = 128 * mult[i];
    }
    if (i > 0) {
      snprintf(pre, sizeof pre, "first_stage_model.decoder.up.%d.upsample.", i);
      conv(l, dt, pre, "conv", ch, ch, 3);
    }
  }
  norm(l, dt, "first_stage_model.decoder.", "norm_out", 128);
  conv(l, dt, "first_stage_model.decoder.", "conv_out", 3, 128, 3);
}

static void sd15_text(wlist *l, sf_dtype dt) {
  const char *P = "cond_stage_model.transformer.text_model.";
  char pre[200];
  snprintf(pre, sizeof pre, "%sembeddings.", P);
  lin(l, dt, pre, "token_embedding", 49408, 768, 0);
  lin(l, dt, pre, "position_embedding", 77, 768, 0);
  snprintf(pre, sizeof pre, "%sembeddings.position_ids", P);
  add(l, SF_DTYPE_I64, pre, 2, 1, 77, 0, 0);
  for (int i = 0; i < 12; i++) {
    snprintf(pre, sizeof pre, "%sencoder.layers.%d.", P, i);
    lin(l, dt, pre, "self_attn.q_proj", 768, 768, 1);
    lin(l, dt, pre, "self_attn.k_proj", 768, 768, 1);
    lin(l, dt, pre, "self_attn.v_proj", 768, 768, 1);
    lin(l, dt, pre, "self_attn.out_proj", 768, 768, 1);
    norm(l, dt, pre, "layer_norm1", 768);
    norm(l, dt, pre, "layer_norm2", 768);
    lin(l, dt, pre, "mlp.fc1", 3072, 768, 1);
    lin(l, dt, pre, "mlp.fc2", 768, 3072, 1);
  }
  norm(l, dt, P, "final_layer_norm", 768);
}

/* ---- loading ----------------------------------------------------------------------------------- */

static sf_status load(const char *path, const char *config, int inspect, sf_pipeline **out) {
  sf_params *o = NULL;
  sf_params_create(&o);
  if (inspect) sf_params_set_int(o, SF_PARAM_INSPECT_ONLY, 1);
  if (config) sf_params_set_string(o, SF_PARAM_CONFIG_PATH, config);
  sf_pipeline *p = NULL;
  sf_status s = sf_pipeline_load(ctx, path, o, &p);
  sf_params_destroy(o);
  if (out) *out = p;
  else sf_pipeline_destroy(p);
  return s;
}

static int64_t params_of(sf_pipeline *p) {
  int64_t n = -1;
  sf_pipeline_get_int(p, SF_INFO_PARAMETERS, &n);
  return n;
}

static const char *tmp_path(const char *name) {
  static char buf[4][512];
  static int k;
  k = (k + 1) % 4;
  snprintf(buf[k], sizeof buf[k], "%s/sf_single_file_%d_%s", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
           (int)getpid(), name);
  return buf[k];
}

static void test_sd15_sparse(void) {
  wlist l = {0};
  sd15_unet(&l, SF_DTYPE_F16, "model.diffusion_model.");
  sd15_vae(&l, SF_DTYPE_F16);
  sd15_text(&l, SF_DTYPE_F16);
  const char *path = tmp_path("sd15.safetensors");
  CHECK(write_st(path, &l, 0));
  sf_pipeline *p = NULL;
  sf_status s = load(path, NULL, 1, &p);
  CHECK_MSG(s == SF_OK, "%s", sf_context_last_error(ctx));
  if (p) {
    /* SD-1.5's published parameter counts: UNet 859,520,964, VAE 83,653,863, CLIP-L text 123,060,480 */
    CHECK_EQ_INT(params_of(p), 859520964LL + 83653863LL + 123060480LL);
    char text[16384];
    CHECK(sf_pipeline_describe(p, SF_FORMAT_JSON, text, sizeof text, NULL) == SF_OK);
    CHECK(strstr(text, "\"block_out_channels\": [320, 640, 1280, 1280]") != NULL);
    CHECK(strstr(text, "\"block_out_channels\": [128, 256, 512, 512]") != NULL);
    CHECK(strstr(text, "\"down_block_types\": [\"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\", "
                       "\"CrossAttnDownBlock2D\", \"DownBlock2D\"]") != NULL);
    CHECK(strstr(text, "\"cross_attention_dim\": 768") != NULL);
    CHECK(strstr(text, "\"use_linear_projection\": false") != NULL);
    CHECK(strstr(text, "\"num_hidden_layers\": 12") != NULL);
    CHECK(strstr(text, "\"single_file\": true, \"config\": \"inferred\"") != NULL);
    int64_t w = 0;
    CHECK(sf_pipeline_get_int(p, SF_INFO_DEFAULT_WIDTH, &w) == SF_OK && w == 512);
    sf_pipeline_destroy(p);
  }
  /* the same count as SD-1.5's diffusers configs with random weights */
  char cfg[4200];
  snprintf(cfg, sizeof cfg, "%s/../shared/configs/sd-v1-5", SF_TEST_SOURCE_DIR);
  if (access(cfg, R_OK) == 0) {
    sf_params *o = NULL;
    sf_params_create(&o);
    sf_params_set_int(o, SF_PARAM_INSPECT_ONLY, 1);
    sf_params_set_int(o, SF_PARAM_RANDOM_WEIGHTS, 1);
    sf_params_set_string(o, SF_PARAM_TOKENIZER_PATH, "/nonexistent");
    sf_params_set_int(o, SF_PARAM_COMPONENTS, SF_NET_UNET | SF_NET_VAE_DECODER | SF_NET_VAE_ENCODER);
    sf_pipeline *q = NULL;
    if (sf_pipeline_load(ctx, cfg, o, &q) == SF_OK) {
      CHECK_EQ_INT(params_of(q), 859520964LL + 83653863LL);
      sf_pipeline_destroy(q);
    }
    sf_params_destroy(o);
  }

  /* with an EMA copy of the UNet (LitEma's flattened names) and the training buffers */
  size_t n = l.n;
  for (size_t i = 0; i < n; i++) {
    if (strncmp(l.t[i].name, "model.diffusion_model.", 22) != 0) continue;
    char ema[200] = "model_ema.diffusion_model";
    size_t e = strlen(ema);
    for (const char *c = l.t[i].name + 22; *c && e + 1 < sizeof ema; c++)
      if (*c != '.') ema[e++] = *c;
    ema[e] = '\0';
    add(&l, l.t[i].dtype, ema, l.t[i].ndim, l.t[i].shape[0], l.t[i].shape[1], l.t[i].shape[2], l.t[i].shape[3]);
  }
  add(&l, SF_DTYPE_F32, "model_ema.decay", 0, 0, 0, 0, 0);
  add(&l, SF_DTYPE_I32, "model_ema.num_updates", 0, 0, 0, 0, 0);
  add(&l, SF_DTYPE_F32, "alphas_cumprod", 1, 1000, 0, 0, 0);
  add(&l, SF_DTYPE_F32, "betas", 1, 1000, 0, 0, 0);
  CHECK(write_st(path, &l, 0));
  info_log[0] = '\0';
  s = load(path, NULL, 1, &p);
  CHECK_MSG(s == SF_OK, "%s", sf_context_last_error(ctx));
  if (p) {
    CHECK_EQ_INT(params_of(p), 859520964LL + 83653863LL + 123060480LL);
    sf_pipeline_destroy(p);
  }
  CHECK_MSG(strstr(info_log, "EMA weights (model_ema.*") != NULL, "log: %s", info_log);
  /* an EMA copy missing one tensor is an error naming it */
  l.t[n].name[0] = 'X';
  CHECK(write_st(path, &l, 0));
  s = load(path, NULL, 1, NULL);
  CHECK(s == SF_ERR_BAD_MODEL);
  CHECK_MSG(strstr(sf_context_last_error(ctx), "Xodel_ema") != NULL || strstr(sf_context_last_error(ctx), "model_ema.") != NULL,
            "%s", sf_context_last_error(ctx));
  unlink(path);
  free(l.t);
}

static void test_refusals(void) {
  const char *ckpt = tmp_path("model.ckpt");
  FILE *f = fopen(ckpt, "wb");
  if (f) {
    fputs("PK\003\004not really a zip", f);
    fclose(f);
  }
  sf_status s = load(ckpt, NULL, 0, NULL);
  CHECK(s == SF_ERR_UNSUPPORTED);
  CHECK_MSG(strstr(sf_context_last_error(ctx), ".safetensors") != NULL, "%s", sf_context_last_error(ctx));
  /* a pickle whatever its name */
  const char *pk = tmp_path("pickle.safetensors");
  f = fopen(pk, "wb");
  if (f) {
    fputs("\x80\x02}q\x00.", f);
    fclose(f);
  }
  CHECK(load(pk, NULL, 0, NULL) == SF_ERR_UNSUPPORTED);
  unlink(ckpt);
  unlink(pk);
  /* a config folder is for single files */
  CHECK(load("/tmp", "/tmp", 0, NULL) == SF_ERR_INVALID_ARGUMENT);
  CHECK(strstr(sf_context_last_error(ctx), "SF_PARAM_CONFIG_PATH") != NULL);
}

/* ---- malformed copies of the fixture's file ------------------------------------------------------ */

static sf_safetensors *fixture;
static char config_dir[4200];

static void from_fixture(wlist *l) {
  l->n = 0;
  for (size_t i = 0; i < sf_st_count(fixture); i++) {
    const sf_st_tensor *t = sf_st_tensor_at(fixture, i);
    add(l, t->dtype, t->name, t->ndim, t->ndim > 0 ? t->shape[0] : 0, t->ndim > 1 ? t->shape[1] : 0,
        t->ndim > 2 ? t->shape[2] : 0, t->ndim > 3 ? t->shape[3] : 0);
    l->t[l->n - 1].data = t->data;
  }
}

static wt *named(wlist *l, const char *name) {
  for (size_t i = 0; i < l->n; i++)
    if (strcmp(l->t[i].name, name) == 0) return &l->t[i];
  fprintf(stderr, "fixture has no %s\n", name);
  abort();
}

/* Loads the edited file with the config folder; expects status and every string in the message. */
static void expect(const wlist *l, size_t truncate_by, sf_status want, const char *a, const char *b) {
  const char *path = tmp_path("edited.safetensors");
  CHECK(write_st(path, l, truncate_by));
  sf_status s = load(path, config_dir, 0, NULL);
  const char *msg = sf_context_last_error(ctx);
  CHECK_MSG(s == want, "status %d, want %d: %s", (int)s, (int)want, msg);
  if (a) CHECK_MSG(strstr(msg, a) != NULL, "'%s' not in: %s", a, msg);
  if (b) CHECK_MSG(strstr(msg, b) != NULL, "'%s' not in: %s", b, msg);
  if (getenv("SF_TEST_SHOW")) printf("%s\n", msg);
  unlink(path);
}

static void test_malformed(const char *fixtures) {
  char path[4200];
  snprintf(path, sizeof path, "%s/models/single-file/tiny-sd-mini.safetensors", fixtures);
  snprintf(config_dir, sizeof config_dir, "%s/models/tiny-sd-mini", fixtures);
  sf_diag d = {0};
  fixture = sf_st_open(path, &d);
  if (fixture == NULL) {
    printf("SKIPPED: the malformed-file cases (%s)\n", d.msg);
    return;
  }
  /* sound: loads with the config folder, all three networks */
  sf_pipeline *p = NULL;
  CHECK_MSG(load(path, config_dir, 0, &p) == SF_OK, "%s", sf_context_last_error(ctx));
  int64_t nets = 0;
  if (p) sf_pipeline_get_int(p, SF_INFO_NETWORKS, &nets);
  CHECK(nets & SF_NET_UNET && nets & SF_NET_TEXT_ENCODER && nets & SF_NET_VAE_DECODER);
  sf_pipeline_destroy(p);
  /* the tiny model's shapes are not SD-1.x's: without a config the error says to give one */
  CHECK(load(path, NULL, 0, NULL) == SF_ERR_UNSUPPORTED);
  CHECK(strstr(sf_context_last_error(ctx), "SF_PARAM_CONFIG_PATH") != NULL);

  /* from memory (sf_files): a set holding the one file */
  FILE *f = fopen(path, "rb");
  unsigned char *bytes = NULL;
  long size = -1;
  if (f && fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0 &&
      (bytes = malloc((size_t)size)) != NULL && fread(bytes, 1, (size_t)size, f) != (size_t)size)
    size = -1;
  if (f) fclose(f);
  CHECK(size > 0 && bytes != NULL);
  sf_files *files = NULL;
  if (size > 0 && bytes && sf_files_create(&files) == SF_OK) {
    CHECK(sf_files_add(files, "tiny.safetensors", bytes, (size_t)size, 1) == SF_OK);
    sf_params *o = NULL;
    sf_params_create(&o);
    sf_params_set_string(o, SF_PARAM_CONFIG_PATH, config_dir);
    p = NULL;
    CHECK_MSG(sf_pipeline_load_files(ctx, files, o, &p) == SF_OK, "%s", sf_context_last_error(ctx));
    nets = 0;
    if (p) sf_pipeline_get_int(p, SF_INFO_NETWORKS, &nets);
    CHECK(nets & SF_NET_UNET && nets & SF_NET_TEXT_ENCODER && nets & SF_NET_VAE_DECODER);
    sf_pipeline_destroy(p);
    /* a second file: a folder, which SF_PARAM_CONFIG_PATH is not for */
    CHECK(sf_files_add(files, "model_index.json", "{}", 2, 1) == SF_OK);
    p = NULL;
    CHECK(sf_pipeline_load_files(ctx, files, o, &p) == SF_ERR_INVALID_ARGUMENT);
    sf_params_destroy(o);
    sf_files_destroy(files);
  }
  free(bytes);

  wlist l = {0};
  /* truncated: the data ends early */
  from_fixture(&l);
  expect(&l, 100, SF_ERR_BAD_MODEL, "edited.safetensors", NULL);
  /* a tensor of the wrong shape (same size, so the file itself is sound) */
  from_fixture(&l);
  wt *t = named(&l, "model.diffusion_model.input_blocks.1.0.in_layers.2.weight");
  t->shape[2] = t->shape[2] * t->shape[3];
  t->shape[3] = 1;
  expect(&l, 0, SF_ERR_BAD_MODEL, "down_blocks.0.resnets.0.conv1.weight",
         "model.diffusion_model.input_blocks.1.0.in_layers.2.weight");
  /* an unknown key */
  from_fixture(&l);
  snprintf(named(&l, "first_stage_model.quant_conv.bias")->name, 200, "some_other_model.bias");
  expect(&l, 0, SF_ERR_BAD_MODEL, "some_other_model.bias", NULL);
  /* a key of a known part with no place in its layout */
  from_fixture(&l);
  snprintf(named(&l, "model.diffusion_model.out.0.bias")->name, 200, "model.diffusion_model.out.1.bias");
  expect(&l, 0, SF_ERR_BAD_MODEL, "model.diffusion_model.out.1.bias", NULL);
  snprintf(named(&l, "model.diffusion_model.out.1.bias")->name, 200, "first_stage_model.decoder.mid.attn_2.q.bias");
  expect(&l, 0, SF_ERR_BAD_MODEL, "first_stage_model.decoder.mid.attn_2.q.bias", NULL);
  /* a missing tensor */
  from_fixture(&l);
  wt *gone = named(&l, "model.diffusion_model.out.0.weight");
  memmove(gone, gone + 1, (size_t)(&l.t[l.n - 1] - gone) * sizeof *gone);
  l.n--;
  expect(&l, 0, SF_ERR_BAD_MODEL, "conv_norm_out.weight", NULL);
  /* a left-over tensor: a second transformer block the config does not have */
  from_fixture(&l);
  t = named(&l, "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.norm1.bias");
  add(&l, t->dtype, "model.diffusion_model.input_blocks.1.1.transformer_blocks.1.norm1.bias", t->ndim, t->shape[0], 0, 0,
      0);
  l.t[l.n - 1].data = t->data;
  expect(&l, 0, SF_ERR_BAD_MODEL, "down_blocks.0.attentions.0.transformer_blocks.1.norm1.bias",
         "model.diffusion_model.input_blocks.1.1.transformer_blocks.1.norm1.bias");
  /* only the VAE: loads the VAE alone */
  from_fixture(&l);
  size_t k = 0;
  for (size_t i = 0; i < l.n; i++)
    if (strncmp(l.t[i].name, "first_stage_model.", 18) == 0) l.t[k++] = l.t[i];
  l.n = k;
  const char *vae_only = tmp_path("vae.safetensors");
  CHECK(write_st(vae_only, &l, 0));
  p = NULL;
  CHECK_MSG(load(vae_only, config_dir, 0, &p) == SF_OK, "%s", sf_context_last_error(ctx));
  nets = 0;
  if (p) sf_pipeline_get_int(p, SF_INFO_NETWORKS, &nets);
  CHECK_EQ_INT(nets, SF_NET_VAE_DECODER | SF_NET_VAE_ENCODER);
  sf_pipeline_destroy(p);
  unlink(vae_only);
  free(l.t);
  sf_st_close(fixture);
}

int main(void) {
  if (sf_context_create(&ctx) != SF_OK) return 1;
  sf_context_set_int(ctx, SF_PARAM_THREADS, 2);
  sf_context_set_int(ctx, SF_PARAM_LOG_LEVEL, SF_LOG_INFO);
  sf_context_set_log_callback(ctx, on_log, NULL);
  test_sd15_sparse();
  test_refusals();
  const char *fixtures = sf_test_fixtures();
  if (fixtures) test_malformed(fixtures);
  sf_context_destroy(ctx);
  printf("%d passed, %d failed\n", sf_test_passed, sf_test_failed);
  return sf_test_failed ? 1 : 0;
}
