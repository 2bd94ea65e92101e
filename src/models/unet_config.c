/* UNet2DConditionModel config.json -> sf_unet_config, resolving every per-stage value the
 * way diffusers' __init__ does (ints broadcast to tuples, lists reversed for the up path,
 * the mid block taking the last entry, SD-1's attention_head_dim meaning the head count). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "models/unet.h"

#define PREFIX "unet config: "

/* ---- small JSON helpers ------------------------------------------------------------------ */

/* Short printable form of a value for messages. */
static const char *repr(const sf_json *v, char *buf, size_t cap) {
  if (v == NULL) return "(missing)";
  switch (v->type) {
    case SF_JSON_NULL:
      return "null";
    case SF_JSON_BOOL:
      return v->u.boolean ? "true" : "false";
    case SF_JSON_NUMBER:
      snprintf(buf, cap, "%.*s", (int)v->u.num.text_len, v->u.num.text);
      return buf;
    case SF_JSON_STRING:
      snprintf(buf, cap, "\"%s\"", v->u.str);
      return buf;
    case SF_JSON_ARRAY: {
      size_t off = (size_t)snprintf(buf, cap, "[");
      for (size_t i = 0; i < v->len && off + 8 < cap; i++) {
        char inner[64];
        off += (size_t)snprintf(buf + off, cap - off, "%s%s", i ? ", " : "", repr(&v->u.items[i], inner, sizeof inner));
      }
      if (off < cap) snprintf(buf + off, cap - off, "]");
      return buf;
    }
    case SF_JSON_OBJECT:
      return "{...}";
  }
  return "?";
}

static sf_status bad_key(sf_diag *d, const char *key, const char *expected, const sf_json *v) {
  char buf[160];
  return sf_diag_set(d, SF_ERR_BAD_MODEL, PREFIX "%s: expected %s, got %s", key, expected, repr(v, buf, sizeof buf));
}

static sf_status unsupported(sf_diag *d, const char *key, const sf_json *v) {
  char buf[160];
  return sf_diag_set(d, SF_ERR_UNSUPPORTED, PREFIX "unsupported: %s=%s", key, repr(v, buf, sizeof buf));
}

static int is_missing_or_null(const sf_json *v) { return v == NULL || v->type == SF_JSON_NULL; }

static sf_status get_size(const sf_json *cfg, const char *key, size_t dflt, size_t min, size_t *out, sf_diag *d) {
  const sf_json *v = sf_json_get(cfg, key);
  if (v == NULL) {
    *out = dflt;
    return SF_OK;
  }
  int64_t x;
  if (!sf_json_as_i64(v, &x) || x < (int64_t)min || x > (1 << 20)) return bad_key(d, key, "a positive integer", v);
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
  if (b < 0) return bad_key(d, key, "a boolean", v);
  *out = b;
  return SF_OK;
}

static sf_status get_float(const sf_json *cfg, const char *key, double dflt, float *out, sf_diag *d) {
  const sf_json *v = sf_json_get(cfg, key);
  double x = dflt;
  if (v != NULL && (!sf_json_as_double(v, &x) || !isfinite(x))) return bad_key(d, key, "a number", v);
  *out = (float)x;
  return SF_OK;
}

/* Accepts a missing key or null: the feature is off. Anything else is refused. */
static sf_status require_null(const sf_json *cfg, const char *key, sf_diag *d) {
  const sf_json *v = sf_json_get(cfg, key);
  return is_missing_or_null(v) ? SF_OK : unsupported(d, key, v);
}

static sf_status require_string(const sf_json *cfg, const char *key, const char *dflt, const char *want, sf_diag *d) {
  const sf_json *v = sf_json_get(cfg, key);
  const char *s = v ? sf_json_as_string(v) : dflt;
  if (s == NULL) return bad_key(d, key, "a string", v);
  return strcmp(s, want) == 0 ? SF_OK : unsupported(d, key, v);
}

/* An optional SiLU: null/missing = off, "silu"/"swish" = on, anything else refused. */
static sf_status get_optional_silu(const sf_json *cfg, const char *key, int *on, sf_diag *d) {
  const sf_json *v = sf_json_get(cfg, key);
  *on = 0;
  if (is_missing_or_null(v)) return SF_OK;
  const char *s = sf_json_as_string(v);
  if (s == NULL) return bad_key(d, key, "null or an activation name", v);
  if (strcmp(s, "silu") != 0 && strcmp(s, "swish") != 0) return unsupported(d, key, v);
  *on = 1;
  return SF_OK;
}

/* int -> broadcast to n stages; list -> exactly n entries. */
static sf_status get_stage_sizes(const sf_json *cfg, const char *key, size_t n, size_t dflt, size_t min, size_t *out,
                                 sf_diag *d) {
  const sf_json *v = sf_json_get(cfg, key);
  int64_t x;
  if (v == NULL || v->type == SF_JSON_NUMBER) {
    if (v != NULL && (!sf_json_as_i64(v, &x) || x < (int64_t)min || x > (1 << 20)))
      return bad_key(d, key, "a positive integer or a list of them", v);
    for (size_t i = 0; i < n; i++) out[i] = v ? (size_t)x : dflt;
    return SF_OK;
  }
  if (v->type != SF_JSON_ARRAY) return bad_key(d, key, "an integer or a list of integers", v);
  if (v->len != n) {
    return sf_diag_set(d, SF_ERR_BAD_MODEL, PREFIX "%s has %zu entries for %zu down blocks", key, v->len, n);
  }
  for (size_t i = 0; i < n; i++) {
    if (!sf_json_as_i64(&v->u.items[i], &x) || x < (int64_t)min || x > (1 << 20))
      return bad_key(d, key, "a list of positive integers", v);
    out[i] = (size_t)x;
  }
  return SF_OK;
}

/* One stage's transformer depth: an int for every resnet, or a per-resnet list (at least
 * `layers` entries, like diffusers' indexing requires). */
static sf_status stage_depths(const sf_json *e, const char *key, size_t stage, size_t layers, size_t *out, sf_diag *d) {
  int64_t x;
  char what[96];
  snprintf(what, sizeof what, "%s[%zu]", key, stage);
  if (e->type == SF_JSON_NUMBER) {
    if (!sf_json_as_i64(e, &x) || x < 0 || x > 1024) return bad_key(d, what, "a non-negative integer", e);
    for (size_t l = 0; l < layers; l++) out[l] = (size_t)x;
    return SF_OK;
  }
  if (e->type != SF_JSON_ARRAY) return bad_key(d, what, "an integer or a list of integers", e);
  if (e->len < layers)
    return sf_diag_set(d, SF_ERR_BAD_MODEL, PREFIX "%s has %zu entries for a block of %zu resnets", what, e->len,
                       layers);
  for (size_t l = 0; l < layers; l++) {
    if (!sf_json_as_i64(&e->u.items[l], &x) || x < 0 || x > 1024)
      return bad_key(d, what, "a list of non-negative integers", e);
    out[l] = (size_t)x;
  }
  return SF_OK;
}

/* ---- block types ------------------------------------------------------------------------- */

static sf_status block_kind(const sf_json *types, size_t i, const char *key, int down, sf_unet_block_kind *kind,
                            sf_diag *d) {
  const sf_json *e = sf_json_at(types, i);
  const char *s = sf_json_as_string(e);
  if (s == NULL) return bad_key(d, key, "a list of block type names", types);
  /* diffusers' get_down_block/get_up_block strip this legacy prefix. */
  if (strncmp(s, "UNetRes", 7) == 0) s += 7;
  const char *plain = down ? "DownBlock2D" : "UpBlock2D";
  const char *cross = down ? "CrossAttnDownBlock2D" : "CrossAttnUpBlock2D";
  if (strcmp(s, plain) == 0) {
    *kind = SF_UNET_BLOCK_PLAIN;
    return SF_OK;
  }
  if (strcmp(s, cross) == 0) {
    *kind = SF_UNET_BLOCK_CROSS_ATTN;
    return SF_OK;
  }
  char field[64];
  snprintf(field, sizeof field, "%s[%zu]", key, i);
  return unsupported(d, field, e);
}

/* ---- keys -------------------------------------------------------------------------------- */

/* Every UNet2DConditionModel.__init__ argument of diffusers 0.30, plus what EMA training
 * scripts save next to them. A key outside this list may change the architecture in a way
 * this code does not know, so it is refused rather than ignored. */
static const char *const known_keys[] = {
    "sample_size", "in_channels", "out_channels", "center_input_sample", "flip_sin_to_cos", "freq_shift",
    "down_block_types", "mid_block_type", "up_block_types", "only_cross_attention", "block_out_channels",
    "layers_per_block", "downsample_padding", "mid_block_scale_factor", "dropout", "act_fn", "norm_num_groups",
    "norm_eps", "cross_attention_dim", "transformer_layers_per_block", "reverse_transformer_layers_per_block",
    "encoder_hid_dim", "encoder_hid_dim_type", "attention_head_dim", "num_attention_heads", "dual_cross_attention",
    "use_linear_projection", "class_embed_type", "addition_embed_type", "addition_time_embed_dim", "num_class_embeds",
    "upcast_attention", "resnet_time_scale_shift", "resnet_skip_time_act", "resnet_out_scale_factor",
    "time_embedding_type", "time_embedding_dim", "time_embedding_act_fn", "timestep_post_act", "time_cond_proj_dim",
    "conv_in_kernel", "conv_out_kernel", "projection_class_embeddings_input_dim", "attention_type",
    "class_embeddings_concat", "mid_block_only_cross_attention", "cross_attention_norm",
    "addition_embed_type_num_heads",
    /* EMA bookkeeping (diffusers EMAModel.save_pretrained) */
    "decay", "inv_gamma", "min_decay", "optimization_step", "power", "update_after_step", "use_ema_warmup"};

static sf_status check_keys(const sf_json *cfg, sf_diag *d) {
  for (size_t i = 0; i < cfg->len; i++) {
    const char *k = cfg->u.obj.keys[i];
    if (k[0] == '_') continue; /* _class_name, _diffusers_version, _name_or_path */
    int known = 0;
    for (size_t j = 0; j < sizeof known_keys / sizeof *known_keys && !known; j++) known = strcmp(k, known_keys[j]) == 0;
    if (!known) return unsupported(d, k, &cfg->u.obj.values[i]);
  }
  const sf_json *cls = sf_json_get(cfg, "_class_name");
  if (cls != NULL) {
    const char *s = sf_json_as_string(cls);
    if (s == NULL || strcmp(s, "UNet2DConditionModel") != 0) return unsupported(d, "_class_name", cls);
  }
  return SF_OK;
}

/* Features whose presence changes the network and that are not implemented. */
static sf_status check_unsupported(const sf_json *cfg, sf_diag *d) {
  static const char *const must_be_null[] = {"class_embed_type",   "num_class_embeds", "addition_embed_type",
                                             "encoder_hid_dim",  "encoder_hid_dim_type", "num_attention_heads"};
  for (size_t i = 0; i < sizeof must_be_null / sizeof *must_be_null; i++) {
    sf_status s = require_null(cfg, must_be_null[i], d);
    if (s != SF_OK) return s;
  }
  static const char *const must_be_false[] = {"dual_cross_attention", "class_embeddings_concat"};
  for (size_t i = 0; i < sizeof must_be_false / sizeof *must_be_false; i++) {
    int b = 0;
    sf_status s = get_bool(cfg, must_be_false[i], 0, &b, d);
    if (s != SF_OK) return s;
    if (b) return unsupported(d, must_be_false[i], sf_json_get(cfg, must_be_false[i]));
  }
  sf_status s;
  if ((s = require_string(cfg, "time_embedding_type", "positional", "positional", d)) != SF_OK) return s;
  if ((s = require_string(cfg, "resnet_time_scale_shift", "default", "default", d)) != SF_OK) return s;
  if ((s = require_string(cfg, "attention_type", "default", "default", d)) != SF_OK) return s;
  const sf_json *act = sf_json_get(cfg, "act_fn");
  if (act != NULL) {
    const char *a = sf_json_as_string(act);
    if (a == NULL) return bad_key(d, "act_fn", "a string", act);
    if (strcmp(a, "silu") != 0 && strcmp(a, "swish") != 0) return unsupported(d, "act_fn", act);
  }
  /* upcast_attention only changes the precision of fp16 attention; everything here is fp32. */
  int b = 0;
  if ((s = get_bool(cfg, "upcast_attention", 0, &b, d)) != SF_OK) return s;
  /* resnet_skip_time_act, resnet_out_scale_factor, cross_attention_norm,
   * mid_block_only_cross_attention and attention_head_dim-as-width are only read by block
   * types this code refuses (SimpleCrossAttn*, ResnetDownsample*...); diffusers does not pass
   * them to the supported blocks, so any value has no effect here. */
  return SF_OK;
}

/* ---- the config ------------------------------------------------------------------------- */

sf_status sf_unet_config_parse(const sf_json *cfg, sf_unet_config *c, sf_diag *d) {
  if (cfg == NULL || cfg->type != SF_JSON_OBJECT)
    return sf_diag_set(d, SF_ERR_BAD_MODEL, PREFIX "the config is not a JSON object");
  memset(c, 0, sizeof *c);
  sf_status s;
  if ((s = check_keys(cfg, d)) != SF_OK) return s;
  if ((s = check_unsupported(cfg, d)) != SF_OK) return s;

  const sf_json *boc = sf_json_get(cfg, "block_out_channels");
  const sf_json *down_types = sf_json_get(cfg, "down_block_types");
  const sf_json *up_types = sf_json_get(cfg, "up_block_types");
  if (boc == NULL) return sf_diag_set(d, SF_ERR_BAD_MODEL, PREFIX "missing key block_out_channels");
  if (down_types == NULL) return sf_diag_set(d, SF_ERR_BAD_MODEL, PREFIX "missing key down_block_types");
  if (up_types == NULL) return sf_diag_set(d, SF_ERR_BAD_MODEL, PREFIX "missing key up_block_types");
  if (boc->type != SF_JSON_ARRAY || boc->len == 0) return bad_key(d, "block_out_channels", "a non-empty list", boc);
  if (down_types->type != SF_JSON_ARRAY) return bad_key(d, "down_block_types", "a list", down_types);
  if (up_types->type != SF_JSON_ARRAY) return bad_key(d, "up_block_types", "a list", up_types);
  size_t n = boc->len;
  if (n > SF_UNET_MAX_BLOCKS) return unsupported(d, "block_out_channels", boc);
  if (down_types->len != n || up_types->len != n)
    return sf_diag_set(d, SF_ERR_BAD_MODEL,
                       PREFIX "block_out_channels, down_block_types and up_block_types have %zu, %zu and %zu entries",
                       n, down_types->len, up_types->len);
  c->n_blocks = n;
  for (size_t i = 0; i < n; i++) {
    int64_t x;
    if (!sf_json_as_i64(&boc->u.items[i], &x) || x < 1 || x > (1 << 20))
      return bad_key(d, "block_out_channels", "a list of positive integers", boc);
    c->block_out_channels[i] = (size_t)x;
  }

  if ((s = get_size(cfg, "in_channels", 4, 1, &c->in_channels, d)) != SF_OK) return s;
  if ((s = get_size(cfg, "out_channels", 4, 1, &c->out_channels, d)) != SF_OK) return s;
  if ((s = get_bool(cfg, "center_input_sample", 0, &c->center_input_sample, d)) != SF_OK) return s;
  if ((s = get_bool(cfg, "flip_sin_to_cos", 1, &c->flip_sin_to_cos, d)) != SF_OK) return s;
  if ((s = get_float(cfg, "freq_shift", 0.0, &c->freq_shift, d)) != SF_OK) return s;
  if ((s = get_float(cfg, "mid_block_scale_factor", 1.0, &c->mid_block_scale_factor, d)) != SF_OK) return s;
  if (c->mid_block_scale_factor == 0.0f)
    return bad_key(d, "mid_block_scale_factor", "a non-zero number", sf_json_get(cfg, "mid_block_scale_factor"));
  if ((s = get_float(cfg, "norm_eps", 1e-5, &c->norm_eps, d)) != SF_OK) return s;
  if (!(c->norm_eps > 0.0f)) return bad_key(d, "norm_eps", "a positive number", sf_json_get(cfg, "norm_eps"));
  if ((s = get_bool(cfg, "use_linear_projection", 0, &c->use_linear_projection, d)) != SF_OK) return s;
  float dropout;
  if ((s = get_float(cfg, "dropout", 0.0, &dropout, d)) != SF_OK) return s; /* inference: no effect */

  const sf_json *groups = sf_json_get(cfg, "norm_num_groups");
  if (groups != NULL && groups->type == SF_JSON_NULL) return unsupported(d, "norm_num_groups", groups);
  if ((s = get_size(cfg, "norm_num_groups", 32, 1, &c->norm_num_groups, d)) != SF_OK) return s;

  /* conv_in/conv_out pad by (k-1)/2: only odd kernels keep the size. */
  if ((s = get_size(cfg, "conv_in_kernel", 3, 1, &c->conv_in_kernel, d)) != SF_OK) return s;
  if (c->conv_in_kernel % 2 == 0) return unsupported(d, "conv_in_kernel", sf_json_get(cfg, "conv_in_kernel"));
  if ((s = get_size(cfg, "conv_out_kernel", 3, 1, &c->conv_out_kernel, d)) != SF_OK) return s;
  if (c->conv_out_kernel % 2 == 0) return unsupported(d, "conv_out_kernel", sf_json_get(cfg, "conv_out_kernel"));
  /* 0 is diffusers' F.pad(0,1,0,1) before an unpadded conv; larger values change the
   * downsampled size so the skips no longer line up. */
  if ((s = get_size(cfg, "downsample_padding", 1, 0, &c->downsample_padding, d)) != SF_OK) return s;
  if (c->downsample_padding > 1) return unsupported(d, "downsample_padding", sf_json_get(cfg, "downsample_padding"));

  /* Time embedding: Timesteps(block_out_channels[0]) -> TimestepEmbedding. */
  c->time_proj_dim = c->block_out_channels[0];
  const sf_json *ted = sf_json_get(cfg, "time_embedding_dim");
  if (is_missing_or_null(ted)) {
    c->time_embed_dim = 4 * c->block_out_channels[0];
  } else if ((s = get_size(cfg, "time_embedding_dim", 0, 1, &c->time_embed_dim, d)) != SF_OK) {
    return s;
  }
  /* LCM-distilled UNets: the guidance-scale embedding's width (time_embedding.cond_proj's
   * input); null/missing = no such conditioning. The sinusoid divides by (width/2 - 1). */
  if (!is_missing_or_null(sf_json_get(cfg, "time_cond_proj_dim"))) {
    if ((s = get_size(cfg, "time_cond_proj_dim", 0, 1, &c->time_cond_proj_dim, d)) != SF_OK) return s;
    if (c->time_cond_proj_dim < 4) return unsupported(d, "time_cond_proj_dim", sf_json_get(cfg, "time_cond_proj_dim"));
  }
  if ((s = get_optional_silu(cfg, "timestep_post_act", &c->timestep_post_act, d)) != SF_OK) return s;
  if ((s = get_optional_silu(cfg, "time_embedding_act_fn", &c->time_embed_act, d)) != SF_OK) return s;

  /* Per-stage values (down order). */
  size_t layers[SF_UNET_MAX_BLOCKS], heads[SF_UNET_MAX_BLOCKS], cross[SF_UNET_MAX_BLOCKS];
  int only_cross[SF_UNET_MAX_BLOCKS];
  if ((s = get_stage_sizes(cfg, "layers_per_block", n, 2, 0, layers, d)) != SF_OK) return s;
  if ((s = get_stage_sizes(cfg, "attention_head_dim", n, 8, 1, heads, d)) != SF_OK) return s;
  if ((s = get_stage_sizes(cfg, "cross_attention_dim", n, 1280, 1, cross, d)) != SF_OK) return s;
  const sf_json *oca = sf_json_get(cfg, "only_cross_attention");
  if (oca == NULL || oca->type == SF_JSON_BOOL) {
    for (size_t i = 0; i < n; i++) only_cross[i] = oca ? oca->u.boolean : 0;
  } else if (oca->type == SF_JSON_ARRAY && oca->len == n) {
    for (size_t i = 0; i < n; i++) {
      only_cross[i] = sf_json_as_bool(&oca->u.items[i]);
      if (only_cross[i] < 0) return bad_key(d, "only_cross_attention", "a boolean or a list of booleans", oca);
    }
  } else {
    return bad_key(d, "only_cross_attention", "a boolean or a list of one boolean per down block", oca);
  }
  for (size_t i = 0; i < n; i++)
    if (layers[i] + 1 > SF_UNET_MAX_LAYERS)
      return unsupported(d, "layers_per_block", sf_json_get(cfg, "layers_per_block"));

  const sf_json *tlpb = sf_json_get(cfg, "transformer_layers_per_block");
  const sf_json *rtlpb = sf_json_get(cfg, "reverse_transformer_layers_per_block");
  int tlpb_nested = 0;
  if (tlpb != NULL && tlpb->type == SF_JSON_ARRAY) {
    if (tlpb->len != n)
      return sf_diag_set(d, SF_ERR_BAD_MODEL, PREFIX "transformer_layers_per_block has %zu entries for %zu down blocks",
                         tlpb->len, n);
    for (size_t i = 0; i < n; i++) tlpb_nested |= tlpb->u.items[i].type == SF_JSON_ARRAY;
  } else if (tlpb != NULL && tlpb->type != SF_JSON_NUMBER) {
    return bad_key(d, "transformer_layers_per_block", "an integer or a list", tlpb);
  }
  if (!is_missing_or_null(rtlpb) && (rtlpb->type != SF_JSON_ARRAY || rtlpb->len != n))
    return bad_key(d, "reverse_transformer_layers_per_block", "null or a list with one entry per up block", rtlpb);
  if (tlpb_nested && is_missing_or_null(rtlpb))
    return sf_diag_set(d, SF_ERR_BAD_MODEL,
                       PREFIX
                       "transformer_layers_per_block has per-layer lists but reverse_transformer_layers_per_block "
                       "is null (diffusers requires it for asymmetrical UNets)");
  sf_json one = {0};
  one.type = SF_JSON_NUMBER;
  one.u.num.value = 1;
  one.u.num.text = "1";
  one.u.num.text_len = 1;
  const sf_json *tl_default = &one;

  /* Down path. */
  for (size_t i = 0; i < n; i++) {
    sf_unet_block *b = &c->down[i];
    if ((s = block_kind(down_types, i, "down_block_types", 1, &b->kind, d)) != SF_OK) return s;
    b->in_channels = i == 0 ? c->block_out_channels[0] : c->block_out_channels[i - 1];
    b->out_channels = c->block_out_channels[i];
    b->layers = layers[i];
    b->heads = heads[i];
    b->cross_attention_dim = cross[i];
    b->only_cross_attention = only_cross[i];
    b->resample = i + 1 < n;
    /* Only CrossAttn blocks read their transformer depth (diffusers ignores it elsewhere). */
    if (b->kind != SF_UNET_BLOCK_CROSS_ATTN) continue;
    const sf_json *e = tlpb ? (tlpb->type == SF_JSON_ARRAY ? &tlpb->u.items[i] : tlpb) : tl_default;
    if ((s = stage_depths(e, "transformer_layers_per_block", i, b->layers, b->transformer_layers, d)) != SF_OK)
      return s;
  }
  c->n_downsamplers = n - 1;

  /* Mid block: the last stage's heads, cross dim and transformer depth. */
  const sf_json *mt = sf_json_get(cfg, "mid_block_type");
  const char *mid = mt == NULL ? "UNetMidBlock2DCrossAttn" : sf_json_as_string(mt);
  if (mt != NULL && mt->type == SF_JSON_NULL) {
    c->mid_kind = SF_UNET_MID_NONE;
  } else if (mid == NULL) {
    return bad_key(d, "mid_block_type", "a string or null", mt);
  } else if (strcmp(mid, "UNetMidBlock2DCrossAttn") == 0) {
    c->mid_kind = SF_UNET_MID_CROSS_ATTN;
  } else if (strcmp(mid, "UNetMidBlock2D") == 0) {
    c->mid_kind = SF_UNET_MID_RESNET;
  } else {
    return unsupported(d, "mid_block_type", mt);
  }
  if (c->mid_kind != SF_UNET_MID_NONE) {
    sf_unet_block *b = &c->mid;
    b->kind = c->mid_kind == SF_UNET_MID_CROSS_ATTN ? SF_UNET_BLOCK_CROSS_ATTN : SF_UNET_BLOCK_PLAIN;
    b->in_channels = b->out_channels = c->block_out_channels[n - 1];
    b->layers = c->mid_kind == SF_UNET_MID_CROSS_ATTN ? 1 : 0; /* (attention, resnet) pairs after resnets.0 */
    b->heads = heads[n - 1];
    b->cross_attention_dim = cross[n - 1];
    if (b->layers) {
      const sf_json *e = tlpb ? (tlpb->type == SF_JSON_ARRAY ? &tlpb->u.items[n - 1] : tlpb) : tl_default;
      if ((s = stage_depths(e, "transformer_layers_per_block", n - 1, 1, b->transformer_layers, d)) != SF_OK) return s;
    }
  }

  /* Up path: reversed stage values, one extra resnet per block for the extra skip. */
  for (size_t i = 0; i < n; i++) {
    size_t r = n - 1 - i;
    sf_unet_block *b = &c->up[i];
    if ((s = block_kind(up_types, i, "up_block_types", 0, &b->kind, d)) != SF_OK) return s;
    b->in_channels = i == 0 ? c->block_out_channels[n - 1] : c->block_out_channels[r + 1]; /* prev_output_channel */
    b->out_channels = c->block_out_channels[r];
    b->skip_in_channels = c->block_out_channels[r == 0 ? 0 : r - 1];
    b->layers = layers[r] + 1;
    b->heads = heads[r];
    b->cross_attention_dim = cross[r];
    b->only_cross_attention = only_cross[r];
    b->resample = i + 1 < n;
    if (b->kind != SF_UNET_BLOCK_CROSS_ATTN) continue;
    const sf_json *e;
    const char *key = "transformer_layers_per_block";
    size_t idx = r;
    if (!is_missing_or_null(rtlpb)) {
      e = &rtlpb->u.items[i];
      key = "reverse_transformer_layers_per_block";
      idx = i;
    } else {
      e = tlpb ? (tlpb->type == SF_JSON_ARRAY ? &tlpb->u.items[r] : tlpb) : tl_default;
    }
    if ((s = stage_depths(e, key, idx, b->layers, b->transformer_layers, d)) != SF_OK) return s;
  }

  /* The text embeddings feed every attending block: their widths must agree. */
  const sf_unet_block *attending[2 * SF_UNET_MAX_BLOCKS + 1];
  size_t na = 0;
  for (size_t i = 0; i < n; i++) {
    if (c->down[i].kind == SF_UNET_BLOCK_CROSS_ATTN) attending[na++] = &c->down[i];
    if (c->up[i].kind == SF_UNET_BLOCK_CROSS_ATTN) attending[na++] = &c->up[i];
  }
  if (c->mid_kind == SF_UNET_MID_CROSS_ATTN) attending[na++] = &c->mid;
  c->cross_attention_dim = na ? attending[0]->cross_attention_dim : cross[0];
  for (size_t i = 0; i < na; i++) {
    if (attending[i]->cross_attention_dim != c->cross_attention_dim)
      return unsupported(d, "cross_attention_dim", sf_json_get(cfg, "cross_attention_dim"));
    if (attending[i]->out_channels / attending[i]->heads == 0)
      return sf_diag_set(d, SF_ERR_BAD_MODEL, PREFIX "%zu attention heads over %zu channels leave no head dimension",
                         attending[i]->heads, attending[i]->out_channels);
  }
  return SF_OK;
}
