#include "models/vae.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "graph/conv2d_asym.h"
#include "graph/ops/kernels.h"
#include "io/model_folder.h"

/* diffusers builds every VAE GroupNorm (resnets, mid attention, conv_norm_out) with 1e-6. */
#define VAE_EPS 1e-6f
#define MAX_CHANNELS 65536
#define MAX_LAYERS 64

typedef struct vae_graph {
  sf_graph *g;
  sf_vid in, out;
} vae_graph;

struct sf_vae {
  sf_vae_config cfg;
  int parts;
  vae_graph dec, enc;
};

/* ---- config ------------------------------------------------------------------------------- */

static sf_status get_size(const sf_json *cfg, const char *key, size_t dflt, size_t max, size_t *out, sf_diag *d) {
  const sf_json *v = sf_json_get(cfg, key);
  if (v == NULL) {
    *out = dflt;
    return SF_OK;
  }
  int64_t x;
  if (!sf_json_as_i64(v, &x) || x < 1 || (uint64_t)x > max)
    return sf_diag_set(d, SF_ERR_BAD_MODEL, "vae config: '%s' must be an integer in [1, %zu]", key, max);
  *out = (size_t)x;
  return SF_OK;
}

static sf_status get_bool(const sf_json *cfg, const char *key, int dflt, int *out, sf_diag *d) {
  const sf_json *v = sf_json_get(cfg, key);
  if (v == NULL) {
    *out = dflt;
    return SF_OK;
  }
  int b = sf_json_as_bool(v);
  if (b < 0) return sf_diag_set(d, SF_ERR_BAD_MODEL, "vae config: '%s' must be true or false", key);
  *out = b;
  return SF_OK;
}

static sf_status check_block_types(const sf_json *cfg, const char *key, const char *want, size_t n, sf_diag *d) {
  const sf_json *v = sf_json_get(cfg, key);
  if (v == NULL) return SF_OK; /* diffusers default: that type for every level */
  if (v->type != SF_JSON_ARRAY) return sf_diag_set(d, SF_ERR_BAD_MODEL, "vae config: '%s' must be an array", key);
  if (v->len != n)
    return sf_diag_set(d, SF_ERR_BAD_MODEL, "vae config: '%s' has %zu entries but block_out_channels has %zu", key,
                       v->len, n);
  for (size_t i = 0; i < n; i++) {
    const char *s = sf_json_as_string(sf_json_at(v, i));
    if (s == NULL) return sf_diag_set(d, SF_ERR_BAD_MODEL, "vae config: '%s[%zu]' must be a string", key, i);
    if (strcmp(s, want) != 0)
      return sf_diag_set(d, SF_ERR_UNSUPPORTED, "unsupported: %s[%zu]=%s (only %s)", key, i, s, want);
  }
  return SF_OK;
}

sf_status sf_vae_config_parse(const sf_json *cfg, sf_vae_config *out, sf_diag *d) {
  if (cfg == NULL || cfg->type != SF_JSON_OBJECT) return sf_diag_set(d, SF_ERR_BAD_MODEL, "vae config: not a JSON object");
  sf_vae_config c;
  memset(&c, 0, sizeof c);

  const sf_json *cls = sf_json_get(cfg, "_class_name");
  if (cls != NULL) {
    const char *s = sf_json_as_string(cls);
    if (s == NULL || strcmp(s, "AutoencoderKL") != 0)
      return sf_diag_set(d, SF_ERR_UNSUPPORTED, "unsupported: _class_name=%s (expected AutoencoderKL)",
                         s ? s : "<not a string>");
  }

  const sf_json *boc = sf_json_get(cfg, "block_out_channels");
  if (boc == NULL) return sf_diag_set(d, SF_ERR_BAD_MODEL, "vae config: missing required key 'block_out_channels'");
  if (boc->type != SF_JSON_ARRAY || boc->len == 0 || boc->len > SF_VAE_MAX_LEVELS)
    return sf_diag_set(d, SF_ERR_BAD_MODEL, "vae config: 'block_out_channels' must be an array of 1..%d integers",
                       SF_VAE_MAX_LEVELS);
  c.n_levels = boc->len;
  for (size_t i = 0; i < c.n_levels; i++) {
    int64_t x;
    if (!sf_json_as_i64(sf_json_at(boc, i), &x) || x < 1 || x > MAX_CHANNELS)
      return sf_diag_set(d, SF_ERR_BAD_MODEL, "vae config: 'block_out_channels[%zu]' must be an integer in [1, %d]",
                         i, MAX_CHANNELS);
    c.block_out_channels[i] = (size_t)x;
  }
  sf_status s;
  if ((s = check_block_types(cfg, "down_block_types", "DownEncoderBlock2D", c.n_levels, d)) != SF_OK) return s;
  if ((s = check_block_types(cfg, "up_block_types", "UpDecoderBlock2D", c.n_levels, d)) != SF_OK) return s;
  if ((s = get_size(cfg, "in_channels", 3, MAX_CHANNELS, &c.in_channels, d)) != SF_OK) return s;
  if ((s = get_size(cfg, "out_channels", 3, MAX_CHANNELS, &c.out_channels, d)) != SF_OK) return s;
  if ((s = get_size(cfg, "latent_channels", 4, MAX_CHANNELS, &c.latent_channels, d)) != SF_OK) return s;
  if ((s = get_size(cfg, "layers_per_block", 1, MAX_LAYERS, &c.layers_per_block, d)) != SF_OK) return s;
  if ((s = get_size(cfg, "norm_num_groups", 32, MAX_CHANNELS, &c.norm_num_groups, d)) != SF_OK) return s;
  if ((s = get_bool(cfg, "use_quant_conv", 1, &c.use_quant_conv, d)) != SF_OK) return s;
  if ((s = get_bool(cfg, "use_post_quant_conv", 1, &c.use_post_quant_conv, d)) != SF_OK) return s;
  if ((s = get_bool(cfg, "mid_block_add_attention", 1, &c.mid_block_add_attention, d)) != SF_OK) return s;

  const sf_json *act = sf_json_get(cfg, "act_fn");
  if (act != NULL) {
    const char *a = sf_json_as_string(act);
    if (a == NULL) return sf_diag_set(d, SF_ERR_BAD_MODEL, "vae config: 'act_fn' must be a string");
    if (strcmp(a, "silu") != 0 && strcmp(a, "swish") != 0)
      return sf_diag_set(d, SF_ERR_UNSUPPORTED, "unsupported: act_fn=%s (only silu)", a);
  }

  double sfac = 0.18215;
  const sf_json *sv = sf_json_get(cfg, "scaling_factor");
  if (sv != NULL && (!sf_json_as_double(sv, &sfac) || !(sfac > 0) || !isfinite(sfac)))
    return sf_diag_set(d, SF_ERR_BAD_MODEL, "vae config: 'scaling_factor' must be a positive number");
  c.scaling_factor = (float)sfac;

  /* Latent conventions of other pipelines (SD3/Flux shift, SDXL-style per-channel
   * statistics): honouring them needs the caller's cooperation, so refuse rather than
   * decode with the wrong normalisation. */
  const sf_json *shift = sf_json_get(cfg, "shift_factor");
  if (shift != NULL && !sf_json_is_null(shift)) {
    double x;
    if (!sf_json_as_double(shift, &x)) return sf_diag_set(d, SF_ERR_BAD_MODEL, "vae config: 'shift_factor' must be a number or null");
    if (x != 0) return sf_diag_set(d, SF_ERR_UNSUPPORTED, "unsupported: shift_factor=%g", x);
  }
  const char *stat_keys[2] = {"latents_mean", "latents_std"};
  for (int i = 0; i < 2; i++) {
    const sf_json *v = sf_json_get(cfg, stat_keys[i]);
    if (v != NULL && !sf_json_is_null(v))
      return sf_diag_set(d, SF_ERR_UNSUPPORTED, "unsupported: %s (per-channel latent statistics)", stat_keys[i]);
  }

  for (size_t i = 0; i < c.n_levels; i++)
    if (c.block_out_channels[i] % c.norm_num_groups != 0)
      return sf_diag_set(d, SF_ERR_BAD_MODEL, "vae config: block_out_channels[%zu]=%zu is not divisible by norm_num_groups=%zu",
                         i, c.block_out_channels[i], c.norm_num_groups);
  *out = c;
  return SF_OK;
}

/* ---- build -------------------------------------------------------------------------------- */

/* ResnetBlock2D without a time embedding: GN-SiLU-conv, GN-SiLU-conv, plus the input
 * (through a 1x1 conv when the width changes). The shortcut conv comes first: the input then
 * dies at norm1, which computes over it in place (graph/plan.c), one activation less at the
 * decoder's widest resolution. */
static sf_vid resnet(sf_graph *g, sf_wsrc *ws, const sf_vae_config *c, const char *prefix, sf_vid x, size_t out) {
  char p[256];
  size_t in = sf_graph_channels(g, x);
  sf_vid shortcut = x;
  if (in != out) {
    snprintf(p, sizeof p, "%s.conv_shortcut", prefix);
    shortcut = sf_g_conv2d(g, ws, p, x, out, 1, 1, 0, 1);
  }
  snprintf(p, sizeof p, "%s.norm1", prefix);
  sf_vid h = sf_g_groupnorm(g, ws, p, x, c->norm_num_groups, VAE_EPS, 1);
  snprintf(p, sizeof p, "%s.conv1", prefix);
  h = sf_g_conv2d(g, ws, p, h, out, 3, 1, 1, 1);
  snprintf(p, sizeof p, "%s.norm2", prefix);
  h = sf_g_groupnorm(g, ws, p, h, c->norm_num_groups, VAE_EPS, 1);
  snprintf(p, sizeof p, "%s.conv2", prefix);
  h = sf_g_conv2d(g, ws, p, h, out, 3, 1, 1, 1);
  return sf_g_add(g, shortcut, h);
}

/* The mid block's Attention: single head over all h*w positions, GroupNorm inside,
 * residual added after to_out (rescale_output_factor 1). */
static sf_vid attention(sf_graph *g, sf_wsrc *ws, const sf_vae_config *c, const char *prefix, sf_vid x) {
  char p[256], probe[300];
  size_t ch = sf_graph_channels(g, x);
  snprintf(probe, sizeof probe, "%s.to_q.weight", prefix);
  /* Checkpoints saved before diffusers 0.14 name the projections query/key/value/proj_attn;
   * diffusers renames them on load. */
  int legacy = !sf_wsrc_has(ws, probe, 1);
  if (legacy) {
    snprintf(probe, sizeof probe, "%s.query.weight", prefix);
    legacy = sf_wsrc_has(ws, probe, 0);
  }
  const char *nq = legacy ? "query" : "to_q", *nk = legacy ? "key" : "to_k", *nv = legacy ? "value" : "to_v",
             *no = legacy ? "proj_attn" : "to_out.0";
  snprintf(p, sizeof p, "%s.group_norm", prefix);
  sf_vid h = sf_g_groupnorm(g, ws, p, x, c->norm_num_groups, VAE_EPS, 0);
  snprintf(p, sizeof p, "%s.%s", prefix, nq);
  sf_vid q = sf_g_linear(g, ws, p, h, ch, 1);
  snprintf(p, sizeof p, "%s.%s", prefix, nk);
  sf_vid k = sf_g_linear(g, ws, p, h, ch, 1);
  snprintf(p, sizeof p, "%s.%s", prefix, nv);
  sf_vid v = sf_g_linear(g, ws, p, h, ch, 1);
  sf_vid kv = sf_g_concat(g, k, v);
  sf_vid a = sf_g_attention(g, q, 0, kv, 0, ch, 1, ch, 0);
  snprintf(p, sizeof p, "%s.%s", prefix, no);
  sf_vid o = sf_g_linear(g, ws, p, a, ch, 1);
  return sf_g_add(g, o, x);
}

static sf_vid mid_block(sf_graph *g, sf_wsrc *ws, const sf_vae_config *c, const char *prefix, sf_vid x) {
  char p[160];
  size_t ch = sf_graph_channels(g, x);
  snprintf(p, sizeof p, "%s.resnets.0", prefix);
  x = resnet(g, ws, c, p, x, ch);
  if (c->mid_block_add_attention) {
    snprintf(p, sizeof p, "%s.attentions.0", prefix);
    x = attention(g, ws, c, p, x);
  }
  snprintf(p, sizeof p, "%s.resnets.1", prefix);
  return resnet(g, ws, c, p, x, ch);
}

static void build_decoder(sf_graph *g, sf_wsrc *ws, const sf_vae_config *c, vae_graph *vg) {
  char p[128];
  size_t n = c->n_levels;
  sf_vid x = vg->in = sf_graph_input(g, "z", c->latent_channels);
  /* The convolutions next to the latents and the pixels are kept precise under q8. */
  sf_graph_set_sensitive(g, 1);
  if (c->use_post_quant_conv) x = sf_g_conv2d(g, ws, "post_quant_conv", x, c->latent_channels, 1, 1, 0, 1);
  x = sf_g_conv2d(g, ws, "decoder.conv_in", x, c->block_out_channels[n - 1], 3, 1, 1, 1);
  sf_graph_set_sensitive(g, 0);
  x = mid_block(g, ws, c, "decoder.mid_block", x);
  for (size_t i = 0; i < n; i++) {
    size_t out = c->block_out_channels[n - 1 - i];
    for (size_t j = 0; j < c->layers_per_block + 1; j++) {
      snprintf(p, sizeof p, "decoder.up_blocks.%zu.resnets.%zu", i, j);
      x = resnet(g, ws, c, p, x, out);
    }
    if (i + 1 < n) {
      x = sf_g_upsample2x(g, x);
      snprintf(p, sizeof p, "decoder.up_blocks.%zu.upsamplers.0.conv", i);
      x = sf_g_conv2d(g, ws, p, x, out, 3, 1, 1, 1);
    }
  }
  x = sf_g_groupnorm(g, ws, "decoder.conv_norm_out", x, c->norm_num_groups, VAE_EPS, 1);
  sf_graph_set_sensitive(g, 1);
  x = sf_g_conv2d(g, ws, "decoder.conv_out", x, c->out_channels, 3, 1, 1, 1);
  sf_graph_set_sensitive(g, 0);
  sf_graph_mark_output(g, x);
  vg->out = x;
}

static void build_encoder(sf_graph *g, sf_wsrc *ws, const sf_vae_config *c, vae_graph *vg) {
  char p[128];
  size_t n = c->n_levels;
  sf_vid x = vg->in = sf_graph_input(g, "image", c->in_channels);
  sf_graph_set_sensitive(g, 1);
  x = sf_g_conv2d(g, ws, "encoder.conv_in", x, c->block_out_channels[0], 3, 1, 1, 1);
  sf_graph_set_sensitive(g, 0);
  for (size_t i = 0; i < n; i++) {
    size_t out = c->block_out_channels[i];
    for (size_t j = 0; j < c->layers_per_block; j++) {
      snprintf(p, sizeof p, "encoder.down_blocks.%zu.resnets.%zu", i, j);
      x = resnet(g, ws, c, p, x, out);
    }
    if (i + 1 < n) {
      /* Downsample2D(padding=0) zero-pads right and bottom by one, then a 3x3 stride-2 conv. */
      snprintf(p, sizeof p, "encoder.down_blocks.%zu.downsamplers.0.conv", i);
      x = sf_g_conv2d_asym(g, ws, p, x, out, 3, 2, 0, 1, 1, 0, 1);
    }
  }
  x = mid_block(g, ws, c, "encoder.mid_block", x);
  x = sf_g_groupnorm(g, ws, "encoder.conv_norm_out", x, c->norm_num_groups, VAE_EPS, 1);
  sf_graph_set_sensitive(g, 1);
  x = sf_g_conv2d(g, ws, "encoder.conv_out", x, 2 * c->latent_channels, 3, 1, 1, 1);
  if (c->use_quant_conv) x = sf_g_conv2d(g, ws, "quant_conv", x, 2 * c->latent_channels, 1, 1, 0, 1);
  sf_graph_set_sensitive(g, 0);
  sf_graph_mark_output(g, x);
  vg->out = x;
}

static int is_encoder_tensor(const char *name) {
  return strncmp(name, "encoder.", 8) == 0 || strncmp(name, "quant_conv.", 11) == 0;
}
static int is_decoder_tensor(const char *name) {
  return strncmp(name, "decoder.", 8) == 0 || strncmp(name, "post_quant_conv.", 16) == 0;
}

void sf_vae_accept_unbuilt(struct sf_weights *w, int parts) {
  if (w == NULL) return;
  for (size_t i = 0; i < sf_weights_count(w); i++) {
    const sf_st_tensor *t = sf_weights_at(w, i);
    if ((!(parts & SF_VAE_ENCODER) && is_encoder_tensor(t->name)) ||
        (!(parts & SF_VAE_DECODER) && is_decoder_tensor(t->name)))
      sf_weights_mark_used(w, t);
  }
}

void sf_vae_destroy(sf_vae *v) {
  if (v == NULL) return;
  sf_graph_destroy(v->dec.g);
  sf_graph_destroy(v->enc.g);
  free(v);
}

sf_vae *sf_vae_build(const sf_vae_config *cfg, sf_wsrc *ws, int parts, sf_diag *d) {
  if (cfg == NULL || ws == NULL || (parts & SF_VAE_BOTH) == 0 || (parts & ~SF_VAE_BOTH) != 0) {
    sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "vae: NULL config/weights or bad parts %d", parts);
    return NULL;
  }
  if (cfg->n_levels == 0 || cfg->n_levels > SF_VAE_MAX_LEVELS || cfg->norm_num_groups == 0) {
    sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "vae: invalid config (%zu levels)", cfg->n_levels);
    return NULL;
  }
  if (sf_backend_init(d) != SF_OK) return NULL;
  sf_vae *v = calloc(1, sizeof *v);
  if (v == NULL) {
    sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "vae: out of memory");
    return NULL;
  }
  v->cfg = *cfg;
  v->parts = parts;
  if (parts & SF_VAE_DECODER) {
    v->dec.g = sf_graph_create("vae_decoder");
    if (v->dec.g == NULL) goto oom;
    build_decoder(v->dec.g, ws, cfg, &v->dec);
  }
  if (parts & SF_VAE_ENCODER) {
    v->enc.g = sf_graph_create("vae_encoder");
    if (v->enc.g == NULL) goto oom;
    build_encoder(v->enc.g, ws, cfg, &v->enc);
  }
  /* The weight source holds the first, most specific cause of a failed fetch. */
  if (sf_wsrc_status(ws, 0, d) != SF_OK || (v->dec.g && sf_graph_build_status(v->dec.g, d) != SF_OK) ||
      (v->enc.g && sf_graph_build_status(v->enc.g, d) != SF_OK) || sf_wsrc_status(ws, 1, d) != SF_OK) {
    sf_vae_destroy(v);
    return NULL;
  }
  return v;
oom:
  sf_vae_destroy(v);
  sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "vae: out of memory");
  return NULL;
}

sf_vae *sf_vae_open(const struct sf_component *comp, int parts, sf_diag *d) {
  if (comp == NULL) {
    sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "vae: NULL component");
    return NULL;
  }
  sf_vae_config cfg;
  if (sf_vae_config_parse(sf_component_config(comp), &cfg, d) != SF_OK) {
    if (comp->config_path) sf_diag_prefix(d, "%s: ", comp->config_path);
    return NULL;
  }
  if (comp->weights == NULL) {
    sf_diag_set(d, SF_ERR_BAD_MODEL, "vae: %s has no weights", comp->dir ? comp->dir : "component");
    return NULL;
  }
  sf_wsrc *ws = sf_wsrc_from_weights(comp->weights, "vae");
  if (ws == NULL) {
    sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "vae: out of memory");
    return NULL;
  }
  sf_weights_clear_used(comp->weights);
  sf_vae_accept_unbuilt(comp->weights, parts);
  sf_vae *v = sf_vae_build(&cfg, ws, parts, d);
  sf_wsrc_destroy(ws);
  return v;
}

/* ---- run ---------------------------------------------------------------------------------- */

/* Whether a float tensor of a*b*c*e values stays far below any address-space limit. */
static int sane_size(size_t a, size_t b, size_t c, size_t e) {
  return a && b && c && e && (double)a * (double)b * (double)c * (double)e * sizeof(float) < 0x1p46;
}

size_t sf_vae_scale_factor(const sf_vae *v) { return v ? (size_t)1 << (v->cfg.n_levels - 1) : 0; }

sf_status sf_vae_plan(const sf_vae *v, sf_plan *pl, int encoder, size_t b, size_t h, size_t w, size_t threads, sf_diag *d) {
  const sf_graph *g = encoder ? v->enc.g : v->dec.g;
  if (g == NULL) return sf_diag_set(d, SF_ERR_BAD_STATE, "vae: the %s was not built", encoder ? "encoder" : "decoder");
  sf_shape in = {b, h, w, encoder ? v->cfg.in_channels : v->cfg.latent_channels};
  return sf_graph_plan(g, pl, &in, 1, threads, d);
}

sf_status sf_vae_decode(sf_vae *v, const sf_exec *ex, sf_plan *pl, const float *z, size_t b, size_t h, size_t w,
                        int z_is_scaled, float *image, sf_diag *d) {
  if (v == NULL || ex == NULL || pl == NULL || z == NULL || image == NULL) return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "vae decode: NULL argument");
  if (v->dec.g == NULL) return sf_diag_set(d, SF_ERR_BAD_STATE, "vae decode: the decoder was not built");
  const sf_vae_config *c = &v->cfg;
  size_t f = sf_vae_scale_factor(v);
  if (!sane_size(b, c->block_out_channels[0], h * f, w * f) || h > ((size_t)1 << 24) || w > ((size_t)1 << 24))
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "vae decode: invalid latent shape [%zu, %zu, %zu, %zu]", b,
                       c->latent_channels, h, w);
  sf_shape in = {b, h, w, c->latent_channels};
  sf_status s = sf_graph_prepare(v->dec.g, pl, &in, 1, ex, d);
  if (s != SF_OK) return s;
  pthreadpool_t pool = ex->pool;
  float *x = sf_plan_data(pl, ex, v->dec.in);
  sf_nchw_to_nhwc_f32(pool, z, x, b, c->latent_channels, h, w);
  if (!z_is_scaled) {
    /* diffusers divides (latents / scaling_factor); a reciprocal multiply would round differently. */
    float sfac = c->scaling_factor;
    size_t n = b * h * w * c->latent_channels;
    for (size_t i = 0; i < n; i++) x[i] = x[i] / sfac;
  }
  s = sf_graph_execute(v->dec.g, pl, ex, d);
  if (s != SF_OK) return s;
  sf_shape o = sf_plan_shape(pl, v->dec.out);
  if (o.h != h * f || o.w != w * f || o.c != c->out_channels)
    return sf_diag_set(d, SF_ERR_INTERNAL, "vae decode: output %zux%zux%zu, expected %zux%zux%zu", o.h, o.w, o.c,
                       h * f, w * f, c->out_channels);
  sf_nhwc_to_nchw_f32(pool, sf_plan_data(pl, ex, v->dec.out), image, b, o.h, o.w, o.c);
  return SF_OK;
}

sf_status sf_vae_encode(sf_vae *v, const sf_exec *ex, sf_plan *pl, const float *image, size_t b, size_t H, size_t W,
                        float *mean, float *logvar, sf_diag *d) {
  if (v == NULL || ex == NULL || pl == NULL || image == NULL || mean == NULL)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "vae encode: NULL argument");
  if (v->enc.g == NULL) return sf_diag_set(d, SF_ERR_BAD_STATE, "vae encode: the encoder was not built");
  const sf_vae_config *c = &v->cfg;
  size_t f = sf_vae_scale_factor(v);
  /* Every stride-2 conv must see even sides: the graph plans its output as side/2. */
  if (!sane_size(b, c->block_out_channels[0], H, W) || H % f != 0 || W % f != 0)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT,
                       "vae encode: image [%zu, %zu, %zu, %zu]: sides must be positive multiples of %zu", b,
                       c->in_channels, H, W, f);
  sf_shape in = {b, H, W, c->in_channels};
  sf_status s = sf_graph_prepare(v->enc.g, pl, &in, 1, ex, d);
  if (s != SF_OK) return s;
  sf_nchw_to_nhwc_f32(ex->pool, image, sf_plan_data(pl, ex, v->enc.in), b, c->in_channels, H, W);
  s = sf_graph_execute(v->enc.g, pl, ex, d);
  if (s != SF_OK) return s;
  sf_shape o = sf_plan_shape(pl, v->enc.out);
  size_t L = c->latent_channels, h = H / f, w = W / f;
  if (o.h != h || o.w != w || o.c != 2 * L)
    return sf_diag_set(d, SF_ERR_INTERNAL, "vae encode: output %zux%zux%zu, expected %zux%zux%zu", o.h, o.w, o.c, h,
                       w, 2 * L);
  const float *m = sf_plan_data(pl, ex, v->enc.out);
  for (size_t n = 0; n < b; n++)
    for (size_t ch = 0; ch < L; ch++)
      for (size_t p = 0; p < h * w; p++) {
        const float *px = m + (n * h * w + p) * 2 * L;
        size_t dst = (n * L + ch) * h * w + p;
        mean[dst] = px[ch];
        if (logvar) logvar[dst] = fminf(fmaxf(px[L + ch], -30.0f), 20.0f);
      }
  return SF_OK;
}

void sf_vae_posterior_sample(const float *mean, const float *logvar, const float *noise, size_t n, float scale,
                             float *out) {
  for (size_t i = 0; i < n; i++) {
    float std = expf(0.5f * logvar[i]);
    float prod = std * noise[i];
    float x = mean[i] + prod;
    out[i] = scale * x;
  }
}

const sf_vae_config *sf_vae_get_config(const sf_vae *v) { return v ? &v->cfg : NULL; }
int sf_vae_parts(const sf_vae *v) { return v ? v->parts : 0; }
sf_graph *sf_vae_decoder_graph(const sf_vae *v) { return v ? v->dec.g : NULL; }
sf_graph *sf_vae_encoder_graph(const sf_vae *v) { return v ? v->enc.g : NULL; }
