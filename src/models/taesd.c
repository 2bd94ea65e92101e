#include "models/taesd.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "graph/ops/kernels.h"
#include "io/model_folder.h"

#define MAX_CHANNELS 65536
#define MAX_BLOCKS 64
/* DecoderTiny's hard-wired latent clamp: tanh(x / 3) * 3. */
#define CLAMP_MAGNITUDE 3.0f

typedef struct taesd_graph {
  sf_graph *g;
  sf_vid in, out;
} taesd_graph;

struct sf_taesd {
  sf_taesd_config cfg;
  int parts;
  taesd_graph dec, enc;
};

/* ---- config ------------------------------------------------------------------------------- */

void sf_taesd_config_default(sf_taesd_config *c, size_t latent_channels) {
  static const size_t enc_blocks[4] = {1, 3, 3, 3}, dec_blocks[4] = {3, 3, 3, 1};
  memset(c, 0, sizeof *c);
  c->in_channels = 3;
  c->out_channels = 3;
  c->latent_channels = latent_channels;
  c->n_enc = c->n_dec = 4;
  for (size_t i = 0; i < 4; i++) {
    c->enc_channels[i] = c->dec_channels[i] = 64;
    c->enc_blocks[i] = enc_blocks[i];
    c->dec_blocks[i] = dec_blocks[i];
  }
  c->scaling_factor = 1.0f;
}

static sf_status get_size(const sf_json *cfg, const char *key, size_t dflt, size_t max, size_t *out, sf_diag *d) {
  const sf_json *v = sf_json_get(cfg, key);
  if (v == NULL) {
    *out = dflt;
    return SF_OK;
  }
  int64_t x;
  if (!sf_json_as_i64(v, &x) || x < 1 || (uint64_t)x > max)
    return sf_diag_set(d, SF_ERR_BAD_MODEL, "taesd config: '%s' must be an integer in [1, %zu]", key, max);
  *out = (size_t)x;
  return SF_OK;
}

/* An array of positive integers; absent keeps *n and out as they are (the defaults). */
static sf_status get_sizes(const sf_json *cfg, const char *key, size_t min, size_t max, size_t *out, size_t *n,
                           sf_diag *d) {
  const sf_json *v = sf_json_get(cfg, key);
  if (v == NULL) return SF_OK;
  if (v->type != SF_JSON_ARRAY || v->len == 0 || v->len > SF_TAESD_MAX_STAGES)
    return sf_diag_set(d, SF_ERR_BAD_MODEL, "taesd config: '%s' must be an array of 1..%d integers", key,
                       SF_TAESD_MAX_STAGES);
  for (size_t i = 0; i < v->len; i++) {
    int64_t x;
    if (!sf_json_as_i64(sf_json_at(v, i), &x) || x < (int64_t)min || (uint64_t)x > max)
      return sf_diag_set(d, SF_ERR_BAD_MODEL, "taesd config: '%s[%zu]' must be an integer in [%zu, %zu]", key, i,
                         min, max);
    out[i] = (size_t)x;
  }
  *n = v->len;
  return SF_OK;
}

static sf_status expect_string(const sf_json *cfg, const char *key, const char *want, sf_diag *d) {
  const sf_json *v = sf_json_get(cfg, key);
  if (v == NULL) return SF_OK;
  const char *s = sf_json_as_string(v);
  if (s == NULL) return sf_diag_set(d, SF_ERR_BAD_MODEL, "taesd config: '%s' must be a string", key);
  if (strcmp(s, want) != 0) return sf_diag_set(d, SF_ERR_UNSUPPORTED, "unsupported: %s=%s (only %s)", key, s, want);
  return SF_OK;
}

sf_status sf_taesd_config_parse(const sf_json *cfg, sf_taesd_config *out, sf_diag *d) {
  if (cfg == NULL || cfg->type != SF_JSON_OBJECT)
    return sf_diag_set(d, SF_ERR_BAD_MODEL, "taesd config: not a JSON object");
  sf_taesd_config c;
  sf_taesd_config_default(&c, 4);
  sf_status s;
  if ((s = expect_string(cfg, "_class_name", "AutoencoderTiny", d)) != SF_OK) return s;
  if ((s = expect_string(cfg, "act_fn", "relu", d)) != SF_OK) return s;
  if ((s = expect_string(cfg, "upsample_fn", "nearest", d)) != SF_OK) return s;
  if ((s = get_size(cfg, "in_channels", 3, MAX_CHANNELS, &c.in_channels, d)) != SF_OK) return s;
  if ((s = get_size(cfg, "out_channels", 3, MAX_CHANNELS, &c.out_channels, d)) != SF_OK) return s;
  if ((s = get_size(cfg, "latent_channels", 4, MAX_CHANNELS, &c.latent_channels, d)) != SF_OK) return s;
  size_t up = 2;
  if ((s = get_size(cfg, "upsampling_scaling_factor", 2, 64, &up, d)) != SF_OK) return s;
  if (up != 2) return sf_diag_set(d, SF_ERR_UNSUPPORTED, "unsupported: upsampling_scaling_factor=%zu (only 2)", up);

  size_t n_ch = c.n_enc, n_bl = c.n_enc;
  if ((s = get_sizes(cfg, "encoder_block_out_channels", 1, MAX_CHANNELS, c.enc_channels, &n_ch, d)) != SF_OK) return s;
  if ((s = get_sizes(cfg, "num_encoder_blocks", 0, MAX_BLOCKS, c.enc_blocks, &n_bl, d)) != SF_OK) return s;
  if (n_ch != n_bl)
    return sf_diag_set(d, SF_ERR_BAD_MODEL,
                       "taesd config: encoder_block_out_channels has %zu entries, num_encoder_blocks %zu", n_ch, n_bl);
  c.n_enc = n_ch;
  n_ch = n_bl = c.n_dec;
  if ((s = get_sizes(cfg, "decoder_block_out_channels", 1, MAX_CHANNELS, c.dec_channels, &n_ch, d)) != SF_OK) return s;
  if ((s = get_sizes(cfg, "num_decoder_blocks", 0, MAX_BLOCKS, c.dec_blocks, &n_bl, d)) != SF_OK) return s;
  if (n_ch != n_bl)
    return sf_diag_set(d, SF_ERR_BAD_MODEL,
                       "taesd config: decoder_block_out_channels has %zu entries, num_decoder_blocks %zu", n_ch, n_bl);
  c.n_dec = n_ch;

  double sfac = 1.0;
  const sf_json *sv = sf_json_get(cfg, "scaling_factor");
  if (sv != NULL && (!sf_json_as_double(sv, &sfac) || !(sfac > 0) || !isfinite(sfac)))
    return sf_diag_set(d, SF_ERR_BAD_MODEL, "taesd config: 'scaling_factor' must be a positive number");
  c.scaling_factor = (float)sfac;
  const sf_json *shift = sf_json_get(cfg, "shift_factor");
  if (shift != NULL && !sf_json_is_null(shift)) {
    double x;
    if (!sf_json_as_double(shift, &x))
      return sf_diag_set(d, SF_ERR_BAD_MODEL, "taesd config: 'shift_factor' must be a number or null");
    if (x != 0) return sf_diag_set(d, SF_ERR_UNSUPPORTED, "unsupported: shift_factor=%g", x);
  }
  /* latent_magnitude / latent_shift only serve AutoencoderTiny.scale_latents (uint8 latent
   * storage); encode and decode do not use them. */
  *out = c;
  return SF_OK;
}

/* ---- build -------------------------------------------------------------------------------- */

typedef struct namer {
  const char *prefix; /* "decoder.layers." or "" */
  size_t idx;         /* nn.Sequential index of the next layer */
} namer;

static void layer_name(char *buf, size_t cap, const namer *nm, size_t idx, const char *suffix) {
  snprintf(buf, cap, "%s%zu%s", nm->prefix, idx, suffix);
}

/* AutoencoderTinyBlock / taesd.py Block: relu(conv(relu(conv(relu(conv(x))))) + skip(x)). */
static sf_vid block(sf_graph *g, sf_wsrc *ws, const namer *nm, size_t idx, sf_vid x, size_t out) {
  char p[256];
  size_t in = sf_graph_channels(g, x);
  sf_vid h = x;
  for (int k = 0; k < 3; k++) {
    char suffix[16];
    snprintf(suffix, sizeof suffix, ".conv.%d", 2 * k);
    layer_name(p, sizeof p, nm, idx, suffix);
    h = sf_g_conv2d(g, ws, p, h, out, 3, 1, 1, 1);
    if (k < 2) h = sf_g_act(g, h, SF_ACT_RELU);
  }
  sf_vid skip = x;
  if (in != out) {
    layer_name(p, sizeof p, nm, idx, ".skip");
    skip = sf_g_conv2d(g, ws, p, x, out, 1, 1, 0, 0);
  }
  return sf_g_act(g, sf_g_add(g, h, skip), SF_ACT_RELU);
}

static void build_decoder(sf_graph *g, sf_wsrc *ws, const sf_taesd_config *c, sf_taesd_naming naming, taesd_graph *tg) {
  char p[256];
  /* taesd.py's Sequential starts with the Clamp module (index 0); diffusers applies the
   * clamp in forward() and starts its layers with the first conv. */
  namer nm = {naming == SF_TAESD_NAMES_DIFFUSERS ? "decoder.layers." : "", naming == SF_TAESD_NAMES_DIFFUSERS ? 0 : 1};
  sf_vid x = tg->in = sf_graph_input(g, "latents", c->latent_channels);
  x = sf_g_tanh_scale(g, x, CLAMP_MAGNITUDE);
  layer_name(p, sizeof p, &nm, nm.idx++, "");
  sf_graph_set_sensitive(g, 1); /* the first and last convolutions stay precise under q8 */
  x = sf_g_conv2d(g, ws, p, x, c->dec_channels[0], 3, 1, 1, 1);
  sf_graph_set_sensitive(g, 0);
  x = sf_g_act(g, x, SF_ACT_RELU);
  nm.idx++;
  for (size_t i = 0; i < c->n_dec; i++) {
    int final = i + 1 == c->n_dec;
    size_t ch = c->dec_channels[i];
    for (size_t j = 0; j < c->dec_blocks[i]; j++) x = block(g, ws, &nm, nm.idx++, x, ch);
    if (!final) {
      x = sf_g_upsample2x(g, x);
      nm.idx++;
    }
    layer_name(p, sizeof p, &nm, nm.idx++, "");
    sf_graph_set_sensitive(g, final);
    x = sf_g_conv2d(g, ws, p, x, final ? c->out_channels : ch, 3, 1, 1, final);
    sf_graph_set_sensitive(g, 0);
  }
  sf_graph_mark_output(g, x);
  tg->out = x;
}

static void build_encoder(sf_graph *g, sf_wsrc *ws, const sf_taesd_config *c, sf_taesd_naming naming, taesd_graph *tg) {
  char p[256];
  namer nm = {naming == SF_TAESD_NAMES_DIFFUSERS ? "encoder.layers." : "", 0};
  sf_vid x = tg->in = sf_graph_input(g, "image", c->in_channels);
  for (size_t i = 0; i < c->n_enc; i++) {
    size_t ch = c->enc_channels[i];
    layer_name(p, sizeof p, &nm, nm.idx++, "");
    sf_graph_set_sensitive(g, i == 0);
    if (i == 0) x = sf_g_conv2d(g, ws, p, x, ch, 3, 1, 1, 1);
    else x = sf_g_conv2d(g, ws, p, x, ch, 3, 2, 1, 0);
    sf_graph_set_sensitive(g, 0);
    for (size_t j = 0; j < c->enc_blocks[i]; j++) x = block(g, ws, &nm, nm.idx++, x, ch);
  }
  layer_name(p, sizeof p, &nm, nm.idx++, "");
  sf_graph_set_sensitive(g, 1);
  x = sf_g_conv2d(g, ws, p, x, c->latent_channels, 3, 1, 1, 1);
  sf_graph_set_sensitive(g, 0);
  sf_graph_mark_output(g, x);
  tg->out = x;
}

void sf_taesd_accept_unbuilt(struct sf_weights *w, int parts) {
  if (w == NULL) return;
  for (size_t i = 0; i < sf_weights_count(w); i++) {
    const sf_st_tensor *t = sf_weights_at(w, i);
    if ((!(parts & SF_TAESD_ENCODER) && strncmp(t->name, "encoder.", 8) == 0) ||
        (!(parts & SF_TAESD_DECODER) && strncmp(t->name, "decoder.", 8) == 0))
      sf_weights_mark_used(w, t);
  }
}

void sf_taesd_destroy(sf_taesd *t) {
  if (t == NULL) return;
  sf_graph_destroy(t->dec.g);
  sf_graph_destroy(t->enc.g);
  free(t);
}

static int config_valid(const sf_taesd_config *c) {
  if (c->n_enc == 0 || c->n_enc > SF_TAESD_MAX_STAGES || c->n_dec == 0 || c->n_dec > SF_TAESD_MAX_STAGES) return 0;
  return c->in_channels && c->out_channels && c->latent_channels;
}

sf_taesd *sf_taesd_build(const sf_taesd_config *cfg, sf_taesd_naming naming, sf_wsrc *dec_ws, sf_wsrc *enc_ws,
                         sf_diag *d) {
  if (cfg == NULL || (dec_ws == NULL && enc_ws == NULL) || !config_valid(cfg) ||
      (naming != SF_TAESD_NAMES_DIFFUSERS && naming != SF_TAESD_NAMES_TAESD_PY)) {
    sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "taesd: invalid config, naming or no weight source");
    return NULL;
  }
  if (sf_backend_init(d) != SF_OK) return NULL;
  sf_taesd *t = calloc(1, sizeof *t);
  if (t == NULL) {
    sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "taesd: out of memory");
    return NULL;
  }
  t->cfg = *cfg;
  t->parts = (dec_ws ? SF_TAESD_DECODER : 0) | (enc_ws ? SF_TAESD_ENCODER : 0);
  if (dec_ws) {
    t->dec.g = sf_graph_create("taesd_decoder");
    if (t->dec.g == NULL) goto oom;
    build_decoder(t->dec.g, dec_ws, cfg, naming, &t->dec);
  }
  if (enc_ws) {
    t->enc.g = sf_graph_create("taesd_encoder");
    if (t->enc.g == NULL) goto oom;
    build_encoder(t->enc.g, enc_ws, cfg, naming, &t->enc);
  }
  /* Fetch failures first (the most specific cause), then graph errors, then tensors of a
   * checkpoint that nothing used. */
  if ((dec_ws && sf_wsrc_status(dec_ws, 0, d) != SF_OK) || (enc_ws && sf_wsrc_status(enc_ws, 0, d) != SF_OK) ||
      (t->dec.g && sf_graph_build_status(t->dec.g, d) != SF_OK) ||
      (t->enc.g && sf_graph_build_status(t->enc.g, d) != SF_OK) || (dec_ws && sf_wsrc_status(dec_ws, 1, d) != SF_OK) ||
      (enc_ws && enc_ws != dec_ws && sf_wsrc_status(enc_ws, 1, d) != SF_OK)) {
    sf_taesd_destroy(t);
    return NULL;
  }
  return t;
oom:
  sf_taesd_destroy(t);
  sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "taesd: out of memory");
  return NULL;
}

sf_taesd *sf_taesd_open_dir(const char *dir, int parts, sf_diag *d) {
  return sf_taesd_open_dir_vfs(sf_vfs_os(), dir, parts, d);
}

sf_taesd *sf_taesd_open_dir_vfs(const sf_vfs *fs, const char *dir, int parts, sf_diag *d) {
  if (dir == NULL || (parts & SF_TAESD_BOTH) == 0 || (parts & ~SF_TAESD_BOTH) != 0) {
    sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "taesd: NULL folder or bad parts %d", parts);
    return NULL;
  }
  sf_component *comp = sf_component_open_vfs(fs, dir, NULL, d);
  if (comp == NULL) return NULL;
  sf_taesd *t = NULL;
  sf_taesd_config cfg;
  if (sf_taesd_config_parse(sf_component_config(comp), &cfg, d) != SF_OK) {
    sf_diag_prefix(d, "%s%s: ", sf_vfs_label(fs), comp->config_path ? comp->config_path : dir);
  } else if (comp->weights == NULL) {
    sf_diag_set(d, SF_ERR_BAD_MODEL, "taesd: %s%s has a config but no weights", sf_vfs_label(fs), dir);
  } else {
    sf_wsrc *ws = sf_wsrc_from_weights(comp->weights, "taesd");
    if (ws == NULL) {
      sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "taesd: out of memory");
    } else {
      sf_weights_clear_used(comp->weights);
      sf_taesd_accept_unbuilt(comp->weights, parts);
      t = sf_taesd_build(&cfg, SF_TAESD_NAMES_DIFFUSERS, (parts & SF_TAESD_DECODER) ? ws : NULL,
                         (parts & SF_TAESD_ENCODER) ? ws : NULL, d);
      sf_wsrc_destroy(ws);
    }
  }
  sf_component_close(comp);
  return t;
}

/* The latent width of a raw taesd.py file: input of the decoder's first conv (index 1) or
 * output of the encoder's last conv; 0 if the tensor is not there (the build then names it). */
static size_t raw_latent_channels(const sf_weights *w, int decoder) {
  char name[64];
  if (decoder) {
    snprintf(name, sizeof name, "1.weight");
  } else {
    sf_taesd_config def;
    sf_taesd_config_default(&def, 4);
    size_t last = 0;
    for (size_t i = 0; i < def.n_enc; i++) last += 1 + def.enc_blocks[i];
    snprintf(name, sizeof name, "%zu.weight", last);
  }
  const sf_st_tensor *t = sf_weights_find(w, name);
  if (t == NULL || t->ndim != 4 || t->shape[decoder ? 1 : 0] < 1) return 0;
  return (size_t)t->shape[decoder ? 1 : 0];
}

sf_taesd *sf_taesd_open_files(const char *decoder_path, const char *encoder_path, sf_diag *d) {
  return sf_taesd_open_files_vfs(sf_vfs_os(), decoder_path, encoder_path, d);
}

sf_taesd *sf_taesd_open_files_vfs(const sf_vfs *fs, const char *decoder_path, const char *encoder_path,
                                  sf_diag *d) {
  if (decoder_path == NULL && encoder_path == NULL) {
    sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "taesd: no decoder or encoder file");
    return NULL;
  }
  sf_weights *wd = NULL, *we = NULL;
  sf_wsrc *wsd = NULL, *wse = NULL;
  sf_taesd *t = NULL;
  sf_taesd_config cfg;
  size_t ld = 0, le = 0;
  const char *label = sf_vfs_label(fs); /* messages name memory files "memory:PATH" */
  if (decoder_path && (wd = sf_weights_open_file_vfs(fs, decoder_path, d)) == NULL) goto done;
  if (encoder_path && (we = sf_weights_open_file_vfs(fs, encoder_path, d)) == NULL) goto done;
  ld = wd ? raw_latent_channels(wd, 1) : 0;
  le = we ? raw_latent_channels(we, 0) : 0;
  if (ld && le && ld != le) {
    sf_diag_set(d, SF_ERR_BAD_MODEL, "taesd: %s%s takes %zu latent channels but %s%s makes %zu", label,
                decoder_path, ld, label, encoder_path, le);
    goto done;
  }
  sf_taesd_config_default(&cfg, ld ? ld : le ? le : 4);
  if ((wd && (wsd = sf_wsrc_from_weights(wd, "taesd_decoder")) == NULL) ||
      (we && (wse = sf_wsrc_from_weights(we, "taesd_encoder")) == NULL)) {
    sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "taesd: out of memory");
    goto done;
  }
  t = sf_taesd_build(&cfg, SF_TAESD_NAMES_TAESD_PY, wsd, wse, d);
  if (t == NULL) {
    /* Name the file whose tensors did not fit (the weight source only knows its role). */
    sf_diag dd = {0}, de = {0};
    if (wsd && sf_wsrc_status(wsd, 1, &dd) != SF_OK) sf_diag_prefix(d, "%s%s: ", label, decoder_path);
    else if (wse && sf_wsrc_status(wse, 1, &de) != SF_OK) sf_diag_prefix(d, "%s%s: ", label, encoder_path);
  }
done:
  sf_wsrc_destroy(wsd);
  sf_wsrc_destroy(wse);
  sf_weights_close(wd);
  sf_weights_close(we);
  return t;
}

/* ---- run ---------------------------------------------------------------------------------- */

static int sane_size(size_t a, size_t b, size_t c, size_t e) {
  return a && b && c && e && (double)a * (double)b * (double)c * (double)e * sizeof(float) < 0x1p46;
}

size_t sf_taesd_scale_factor(const sf_taesd *t, int encoder) {
  if (t == NULL) return 0;
  return (size_t)1 << ((encoder ? t->cfg.n_enc : t->cfg.n_dec) - 1);
}

sf_status sf_taesd_plan(const sf_taesd *t, sf_plan *pl, int encoder, size_t b, size_t h, size_t w, size_t threads, sf_diag *d) {
  const sf_graph *g = encoder ? t->enc.g : t->dec.g;
  if (g == NULL) return sf_diag_set(d, SF_ERR_BAD_STATE, "taesd: the %s was not built", encoder ? "encoder" : "decoder");
  sf_shape in = {b, h, w, encoder ? t->cfg.in_channels : t->cfg.latent_channels};
  return sf_graph_plan(g, pl, &in, 1, threads, d);
}

sf_status sf_taesd_decode(sf_taesd *t, const sf_exec *ex, sf_plan *pl, const float *latents, size_t b, size_t h,
                          size_t w, unsigned flags, float *image, sf_diag *d) {
  if (t == NULL || ex == NULL || pl == NULL || latents == NULL || image == NULL)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "taesd decode: NULL argument");
  if (t->dec.g == NULL) return sf_diag_set(d, SF_ERR_BAD_STATE, "taesd decode: the decoder was not built");
  const sf_taesd_config *c = &t->cfg;
  size_t f = sf_taesd_scale_factor(t, 0);
  if (h > ((size_t)1 << 24) || w > ((size_t)1 << 24) || !sane_size(b, c->dec_channels[c->n_dec - 1], h * f, w * f))
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "taesd decode: invalid latent shape [%zu, %zu, %zu, %zu]", b,
                       c->latent_channels, h, w);
  sf_shape in = {b, h, w, c->latent_channels};
  sf_status s = sf_graph_prepare(t->dec.g, pl, &in, 1, ex, d);
  if (s != SF_OK) return s;
  pthreadpool_t pool = ex->pool;
  float *x = sf_plan_data(pl, ex, t->dec.in);
  sf_nchw_to_nhwc_f32(pool, latents, x, b, c->latent_channels, h, w);
  if (!(flags & SF_TAESD_LATENTS_UNSCALED)) {
    float sfac = c->scaling_factor;
    size_t n = b * h * w * c->latent_channels;
    for (size_t i = 0; i < n; i++) x[i] = x[i] / sfac;
  }
  s = sf_graph_execute(t->dec.g, pl, ex, d);
  if (s != SF_OK) return s;
  sf_shape o = sf_plan_shape(pl, t->dec.out);
  if (o.h != h * f || o.w != w * f || o.c != c->out_channels)
    return sf_diag_set(d, SF_ERR_INTERNAL, "taesd decode: output %zux%zux%zu, expected %zux%zux%zu", o.h, o.w, o.c,
                       h * f, w * f, c->out_channels);
  sf_nhwc_to_nchw_f32(pool, sf_plan_data(pl, ex, t->dec.out), image, b, o.h, o.w, o.c);
  if (!(flags & SF_TAESD_IMAGE_RAW)) {
    /* AutoencoderTiny.decode: [0, 1] -> [-1, 1] as x.mul(2).sub(1). */
    size_t n = b * o.h * o.w * o.c;
    for (size_t i = 0; i < n; i++) image[i] = image[i] * 2.0f - 1.0f;
  }
  return SF_OK;
}

sf_status sf_taesd_encode(sf_taesd *t, const sf_exec *ex, sf_plan *pl, const float *image, size_t b, size_t H,
                          size_t W, unsigned flags, float *latents, sf_diag *d) {
  if (t == NULL || ex == NULL || pl == NULL || image == NULL || latents == NULL)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "taesd encode: NULL argument");
  if (t->enc.g == NULL) return sf_diag_set(d, SF_ERR_BAD_STATE, "taesd encode: the encoder was not built");
  const sf_taesd_config *c = &t->cfg;
  size_t f = sf_taesd_scale_factor(t, 1);
  if (!sane_size(b, c->enc_channels[0], H, W) || H % f != 0 || W % f != 0)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT,
                       "taesd encode: image [%zu, %zu, %zu, %zu]: sides must be positive multiples of %zu", b,
                       c->in_channels, H, W, f);
  sf_shape in = {b, H, W, c->in_channels};
  sf_status s = sf_graph_prepare(t->enc.g, pl, &in, 1, ex, d);
  if (s != SF_OK) return s;
  pthreadpool_t pool = ex->pool;
  float *x = sf_plan_data(pl, ex, t->enc.in);
  sf_nchw_to_nhwc_f32(pool, image, x, b, c->in_channels, H, W);
  if (!(flags & SF_TAESD_IMAGE_RAW)) {
    /* EncoderTiny.forward: [-1, 1] -> [0, 1] as x.add(1).div(2). */
    size_t n = b * H * W * c->in_channels;
    for (size_t i = 0; i < n; i++) x[i] = (x[i] + 1.0f) / 2.0f;
  }
  s = sf_graph_execute(t->enc.g, pl, ex, d);
  if (s != SF_OK) return s;
  sf_shape o = sf_plan_shape(pl, t->enc.out);
  if (o.h != H / f || o.w != W / f || o.c != c->latent_channels)
    return sf_diag_set(d, SF_ERR_INTERNAL, "taesd encode: output %zux%zux%zu, expected %zux%zux%zu", o.h, o.w, o.c,
                       H / f, W / f, c->latent_channels);
  sf_nhwc_to_nchw_f32(pool, sf_plan_data(pl, ex, t->enc.out), latents, b, o.h, o.w, o.c);
  if (!(flags & SF_TAESD_LATENTS_UNSCALED)) {
    float sfac = c->scaling_factor;
    size_t n = b * o.h * o.w * o.c;
    for (size_t i = 0; i < n; i++) latents[i] = sfac * latents[i];
  }
  return SF_OK;
}

const sf_taesd_config *sf_taesd_get_config(const sf_taesd *t) { return t ? &t->cfg : NULL; }
int sf_taesd_parts(const sf_taesd *t) { return t ? t->parts : 0; }
sf_graph *sf_taesd_decoder_graph(const sf_taesd *t) { return t ? t->dec.g : NULL; }
sf_graph *sf_taesd_encoder_graph(const sf_taesd *t) { return t ? t->enc.g : NULL; }
