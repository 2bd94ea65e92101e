#define _POSIX_C_SOURCE 200809L /* strdup */
#include "core/str.h"
#include "io/ldm_keys.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BLOCKS 256 /* input/output/middle blocks, VAE levels: far beyond any real model */

static const char *const UNET_PREFIX = "model.diffusion_model.";
static const char *const VAE_PREFIX = "first_stage_model.";
static const char *const TEXT_PREFIX = "cond_stage_model.transformer.";
static const char *const EMA_PREFIX = "model_ema.";

/* Buffers of ldm's DDPM/LatentDiffusion (the training schedule) and LitEma's counters. */
static const char *const IGNORED[] = {"betas",
                                      "alphas_cumprod",
                                      "alphas_cumprod_prev",
                                      "sqrt_alphas_cumprod",
                                      "sqrt_one_minus_alphas_cumprod",
                                      "log_one_minus_alphas_cumprod",
                                      "sqrt_recip_alphas_cumprod",
                                      "sqrt_recipm1_alphas_cumprod",
                                      "posterior_variance",
                                      "posterior_log_variance_clipped",
                                      "posterior_mean_coef1",
                                      "posterior_mean_coef2",
                                      "logvar",
                                      "model_ema.decay",
                                      "model_ema.num_updates",
                                      NULL};

static int starts(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

sf_ldm_part sf_ldm_classify(const char *key) {
  for (size_t i = 0; IGNORED[i]; i++)
    if (strcmp(key, IGNORED[i]) == 0) return SF_LDM_IGNORED;
  if (starts(key, UNET_PREFIX)) return SF_LDM_UNET;
  if (starts(key, VAE_PREFIX)) return SF_LDM_VAE;
  if (starts(key, TEXT_PREFIX)) return SF_LDM_TEXT;
  if (starts(key, EMA_PREFIX)) return SF_LDM_EMA;
  return SF_LDM_UNKNOWN;
}

const char *sf_ldm_prefix(sf_ldm_part part) {
  switch (part) {
    case SF_LDM_UNET: return UNET_PREFIX;
    case SF_LDM_VAE: return VAE_PREFIX;
    case SF_LDM_TEXT: return TEXT_PREFIX;
    case SF_LDM_EMA: return EMA_PREFIX;
    default: return "";
  }
}

char *sf_ldm_ema_key(const char *unet_key) {
  /* LitEma: "model_ema." + the key after "model." with its dots removed */
  const char *rest = unet_key + strlen("model.");
  char *out = malloc(strlen(EMA_PREFIX) + strlen(rest) + 1);
  if (out == NULL) return NULL;
  char *o = out + strlen(EMA_PREFIX);
  memcpy(out, EMA_PREFIX, strlen(EMA_PREFIX));
  for (const char *s = rest; *s; s++)
    if (*s != '.') *o++ = *s;
  *o = '\0';
  return out;
}

void sf_ldm_names_free(sf_ldm_name *names, size_t n) {
  for (size_t i = 0; names && i < n; i++) {
    free(names[i].name);
    names[i].name = NULL;
  }
}


/* "12.rest" -> 12, *p at "rest"; -1 without a number and a dot (or past MAX_BLOCKS). */
static int take_index(const char **p) {
  const char *s = *p;
  int v = 0, digits = 0;
  while (*s >= '0' && *s <= '9' && digits < 4) v = v * 10 + (*s++ - '0'), digits++;
  if (digits == 0 || *s != '.' || v >= MAX_BLOCKS || (digits > 1 && **p == '0')) return -1;
  *p = s + 1;
  return v;
}

/* ---- UNet ------------------------------------------------------------------------------------ */

typedef enum { SUB_NONE = 0, SUB_RES, SUB_ATTN, SUB_OP, SUB_CONV, SUB_OTHER } sub_kind;

/* What a module of a block is, from the rest of a key below it. */
static sub_kind kind_of(const char *rest) {
  if (starts(rest, "in_layers.") || starts(rest, "out_layers.") || starts(rest, "emb_layers.") ||
      starts(rest, "skip_connection."))
    return SUB_RES;
  if (starts(rest, "norm.") || starts(rest, "proj_in.") || starts(rest, "proj_out.") ||
      starts(rest, "transformer_blocks."))
    return SUB_ATTN;
  if (starts(rest, "op.")) return SUB_OP;
  if (starts(rest, "conv.")) return SUB_CONV;
  return SUB_OTHER;
}

/* A ResBlock's module names. NULL if rest is not one. */
static char *res_name(const char *pre, const char *rest) {
  static const char *const map[][2] = {{"in_layers.0.", "norm1."},      {"in_layers.2.", "conv1."},
                                       {"emb_layers.1.", "time_emb_proj."}, {"out_layers.0.", "norm2."},
                                       {"out_layers.3.", "conv2."},     {"skip_connection.", "conv_shortcut."}};
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
    if (starts(rest, map[i][0]) && rest[strlen(map[i][0])] != '\0')
      return sf_str_printf("%s%s%s", pre, map[i][1], rest + strlen(map[i][0]));
  return NULL;
}

typedef struct unet_shape {
  /* input blocks: downsampler or (level, j); output blocks: (level, j) and the upsampler's index */
  int in_used[MAX_BLOCKS], in_down[MAX_BLOCKS], in_level[MAX_BLOCKS], in_j[MAX_BLOCKS];
  int out_used[MAX_BLOCKS], out_up[MAX_BLOCKS], out_level[MAX_BLOCKS], out_j[MAX_BLOCKS];
  int mid_kind[MAX_BLOCKS], mid_index[MAX_BLOCKS];
  int n_in, n_out, n_mid;
} unet_shape;

static sf_status unknown_key(const char *key, sf_diag *d) {
  return sf_diag_set(d, SF_ERR_BAD_MODEL, "tensor \"%s\" has no place in the LDM UNet layout", key);
}

/* Block numbering from every key (first pass). */
static sf_status unet_scan(const char *const *keys, size_t n, unet_shape *u, sf_diag *d) {
  memset(u, 0, sizeof *u);
  for (int i = 0; i < MAX_BLOCKS; i++) u->out_up[i] = -1;
  for (size_t i = 0; i < n; i++) {
    const char *p = keys[i] + strlen(UNET_PREFIX);
    int k, m;
    if (starts(p, "input_blocks.")) {
      p += strlen("input_blocks.");
      if ((k = take_index(&p)) < 0 || (m = take_index(&p)) < 0) return unknown_key(keys[i], d);
      u->in_used[k] = 1;
      if (k >= u->n_in) u->n_in = k + 1;
      if (k > 0 && m == 0 && kind_of(p) == SUB_OP) u->in_down[k] = 1;
    } else if (starts(p, "output_blocks.")) {
      p += strlen("output_blocks.");
      if ((k = take_index(&p)) < 0 || (m = take_index(&p)) < 0) return unknown_key(keys[i], d);
      u->out_used[k] = 1;
      if (k >= u->n_out) u->n_out = k + 1;
      if (m > 0 && kind_of(p) == SUB_CONV) {
        if (u->out_up[k] >= 0 && u->out_up[k] != m) return unknown_key(keys[i], d);
        u->out_up[k] = m;
      }
    } else if (starts(p, "middle_block.")) {
      p += strlen("middle_block.");
      if ((m = take_index(&p)) < 0) return unknown_key(keys[i], d);
      sub_kind kind = kind_of(p);
      if (kind != SUB_RES && kind != SUB_ATTN) return unknown_key(keys[i], d);
      if (u->mid_kind[m] != SUB_NONE && u->mid_kind[m] != (int)kind)
        return sf_diag_set(d, SF_ERR_BAD_MODEL, "tensor \"%s\": middle_block.%d mixes a resnet and an attention block",
                           keys[i], m);
      u->mid_kind[m] = kind;
      if (m >= u->n_mid) u->n_mid = m + 1;
    }
  }
  /* input blocks: a downsampler ends a level */
  int level = 0, j = 0;
  for (int k = 1; k < u->n_in; k++) {
    if (!u->in_used[k])
      return sf_diag_set(d, SF_ERR_BAD_MODEL, "%sinput_blocks.%d is missing (input_blocks.%d exists)", UNET_PREFIX, k,
                         u->n_in - 1);
    u->in_level[k] = level;
    u->in_j[k] = j;
    if (u->in_down[k]) level++, j = 0;
    else j++;
  }
  /* output blocks: an upsampler ends a level */
  level = 0, j = 0;
  for (int k = 0; k < u->n_out; k++) {
    if (!u->out_used[k])
      return sf_diag_set(d, SF_ERR_BAD_MODEL, "%soutput_blocks.%d is missing (output_blocks.%d exists)", UNET_PREFIX,
                         k, u->n_out - 1);
    u->out_level[k] = level;
    u->out_j[k] = j;
    if (u->out_up[k] >= 0) level++, j = 0;
    else j++;
  }
  int r = 0, a = 0;
  for (int m = 0; m < u->n_mid; m++) {
    if (u->mid_kind[m] == SUB_NONE)
      return sf_diag_set(d, SF_ERR_BAD_MODEL, "%smiddle_block.%d is missing (middle_block.%d exists)", UNET_PREFIX, m,
                         u->n_mid - 1);
    u->mid_index[m] = u->mid_kind[m] == SUB_RES ? r++ : a++;
  }
  return SF_OK;
}

/* NULL with *bad set when the key has no place; NULL without when out of memory. */
static char *unet_name(const unet_shape *u, const char *key, int *bad) {
  const char *p = key + strlen(UNET_PREFIX);
  *bad = 0;
  static const char *const fixed[][2] = {{"time_embed.0.", "time_embedding.linear_1."},
                                         {"time_embed.2.", "time_embedding.linear_2."},
                                         {"input_blocks.0.0.", "conv_in."},
                                         {"out.0.", "conv_norm_out."},
                                         {"out.2.", "conv_out."}};
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
    if (starts(p, fixed[i][0]) && strchr(p + strlen(fixed[i][0]), '.') == NULL && p[strlen(fixed[i][0])])
      return sf_str_printf("%s%s", fixed[i][1], p + strlen(fixed[i][0]));
  int k, m;
  char pre[96];
  if (starts(p, "input_blocks.")) {
    p += strlen("input_blocks.");
    k = take_index(&p);
    m = take_index(&p);
    if (k >= 1 && u->in_down[k] && m == 0 && starts(p, "op.") && strchr(p + 3, '.') == NULL && p[3])
      return sf_str_printf("down_blocks.%d.downsamplers.0.conv.%s", u->in_level[k], p + 3);
    if (k >= 1 && !u->in_down[k] && m == 0 && kind_of(p) == SUB_RES) {
      snprintf(pre, sizeof pre, "down_blocks.%d.resnets.%d.", u->in_level[k], u->in_j[k]);
      char *s = res_name(pre, p);
      if (s == NULL) *bad = 1;
      return s;
    }
    if (k >= 1 && !u->in_down[k] && m == 1 && kind_of(p) == SUB_ATTN)
      return sf_str_printf("down_blocks.%d.attentions.%d.%s", u->in_level[k], u->in_j[k], p);
  } else if (starts(p, "output_blocks.")) {
    p += strlen("output_blocks.");
    k = take_index(&p);
    m = take_index(&p);
    if (k >= 0 && m == 0 && kind_of(p) == SUB_RES) {
      snprintf(pre, sizeof pre, "up_blocks.%d.resnets.%d.", u->out_level[k], u->out_j[k]);
      char *s = res_name(pre, p);
      if (s == NULL) *bad = 1;
      return s;
    }
    if (k >= 0 && m == 1 && kind_of(p) == SUB_ATTN)
      return sf_str_printf("up_blocks.%d.attentions.%d.%s", u->out_level[k], u->out_j[k], p);
    if (k >= 0 && m > 0 && m == u->out_up[k] && starts(p, "conv.") && strchr(p + 5, '.') == NULL && p[5])
      return sf_str_printf("up_blocks.%d.upsamplers.0.conv.%s", u->out_level[k], p + 5);
  } else if (starts(p, "middle_block.")) {
    p += strlen("middle_block.");
    m = take_index(&p);
    if (m >= 0 && u->mid_kind[m] == SUB_RES) {
      snprintf(pre, sizeof pre, "mid_block.resnets.%d.", u->mid_index[m]);
      char *s = res_name(pre, p);
      if (s == NULL) *bad = 1;
      return s;
    }
    if (m >= 0 && u->mid_kind[m] == SUB_ATTN) return sf_str_printf("mid_block.attentions.%d.%s", u->mid_index[m], p);
  }
  *bad = 1;
  return NULL;
}

/* ---- VAE ------------------------------------------------------------------------------------ */

/* A VAE resnet's module names (norm1, conv1, norm2, conv2 as they are; nin_shortcut). */
static char *vae_res_name(const char *pre, const char *rest) {
  static const char *const map[][2] = {{"norm1.", "norm1."}, {"conv1.", "conv1."}, {"norm2.", "norm2."},
                                       {"conv2.", "conv2."}, {"nin_shortcut.", "conv_shortcut."}};
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
    if (starts(rest, map[i][0]) && rest[strlen(map[i][0])] && strchr(rest + strlen(map[i][0]), '.') == NULL)
      return sf_str_printf("%s%s%s", pre, map[i][1], rest + strlen(map[i][0]));
  return NULL;
}

/* The name of encoder./decoder. key rest p (after "encoder." or "decoder."), side the prefix.
 * levels: the decoder's level count (its up.I numbering runs the other way). */
static char *vae_name(const char *key, int levels, int *squeeze, int *bad) {
  const char *p = key + strlen(VAE_PREFIX);
  *bad = 0;
  *squeeze = 0;
  if ((starts(p, "quant_conv.") || starts(p, "post_quant_conv.")) && strchr(strchr(p, '.') + 1, '.') == NULL)
    return strdup(p);
  const char *side = starts(p, "encoder.") ? "encoder" : starts(p, "decoder.") ? "decoder" : NULL;
  if (side == NULL) {
    *bad = 1;
    return NULL;
  }
  p += strlen(side) + 1;
  const int enc = side[0] == 'e';
  char pre[96];
  int i, j;
  if ((starts(p, "conv_in.") || starts(p, "conv_out.")) && strchr(strchr(p, '.') + 1, '.') == NULL)
    return sf_str_printf("%s.%s", side, p);
  if (starts(p, "norm_out.") && strchr(p + 9, '.') == NULL && p[9]) return sf_str_printf("%s.conv_norm_out.%s", side, p + 9);
  if (starts(p, enc ? "down." : "up.")) {
    p += enc ? 5 : 3;
    if ((i = take_index(&p)) < 0) goto bad;
    const int level = enc ? i : levels - 1 - i;
    if (starts(p, "block.")) {
      p += 6;
      if ((j = take_index(&p)) < 0) goto bad;
      snprintf(pre, sizeof pre, "%s.%s_blocks.%d.resnets.%d.", side, enc ? "down" : "up", level, j);
      char *s = vae_res_name(pre, p);
      if (s == NULL) goto bad;
      return s;
    }
    const char *sampler = enc ? "downsample.conv." : "upsample.conv.";
    if (starts(p, sampler) && p[strlen(sampler)] && strchr(p + strlen(sampler), '.') == NULL)
      return sf_str_printf("%s.%s_blocks.%d.%s.0.conv.%s", side, enc ? "down" : "up", level,
                        enc ? "downsamplers" : "upsamplers", p + strlen(sampler));
    goto bad;
  }
  if (starts(p, "mid.block_1.") || starts(p, "mid.block_2.")) {
    snprintf(pre, sizeof pre, "%s.mid_block.resnets.%d.", side, p[10] - '1');
    char *s = vae_res_name(pre, p + 12);
    if (s == NULL) goto bad;
    return s;
  }
  if (starts(p, "mid.attn_1.")) {
    p += 11;
    static const char *const map[][2] = {
        {"norm.", "group_norm."}, {"q.", "to_q."}, {"k.", "to_k."}, {"v.", "to_v."}, {"proj_out.", "to_out.0."}};
    for (size_t m = 0; m < sizeof map / sizeof map[0]; m++)
      if (starts(p, map[m][0]) && p[strlen(map[m][0])] && strchr(p + strlen(map[m][0]), '.') == NULL) {
        *squeeze = m > 0 && strcmp(p + strlen(map[m][0]), "weight") == 0;
        return sf_str_printf("%s.mid_block.attentions.0.%s%s", side, map[m][1], p + strlen(map[m][0]));
      }
  }
bad:
  *bad = 1;
  return NULL;
}

/* ---- all three ------------------------------------------------------------------------------- */

sf_status sf_ldm_map(sf_ldm_part part, const char *const *keys, size_t n, sf_ldm_name *out, sf_diag *d) {
  for (size_t i = 0; i < n; i++) out[i].name = NULL, out[i].squeeze = 0;
  unet_shape *u = NULL;
  int vae_levels = 0;
  if (part == SF_LDM_UNET) {
    u = malloc(sizeof *u);
    if (u == NULL) return sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "out of memory");
    sf_status s = unet_scan(keys, n, u, d);
    if (s != SF_OK) {
      free(u);
      return s;
    }
  } else if (part == SF_LDM_VAE) {
    for (size_t i = 0; i < n; i++) {
      const char *p = keys[i] + strlen(VAE_PREFIX);
      if (!starts(p, "decoder.up.")) continue;
      p += strlen("decoder.up.");
      int lv = take_index(&p);
      if (lv < 0) return sf_diag_set(d, SF_ERR_BAD_MODEL, "tensor \"%s\" has no place in the LDM VAE layout", keys[i]);
      if (lv + 1 > vae_levels) vae_levels = lv + 1;
    }
  } else if (part != SF_LDM_TEXT) {
    return sf_diag_set(d, SF_ERR_INTERNAL, "sf_ldm_map: part %d is not a component", (int)part);
  }
  sf_status s = SF_OK;
  for (size_t i = 0; i < n && s == SF_OK; i++) {
    int bad = 0;
    if (part == SF_LDM_UNET) {
      out[i].name = unet_name(u, keys[i], &bad);
      if (bad) s = unknown_key(keys[i], d);
    } else if (part == SF_LDM_VAE) {
      out[i].name = vae_name(keys[i], vae_levels, &out[i].squeeze, &bad);
      if (bad) s = sf_diag_set(d, SF_ERR_BAD_MODEL, "tensor \"%s\" has no place in the LDM VAE layout", keys[i]);
    } else {
      const char *p = keys[i] + strlen(TEXT_PREFIX);
      if (*p == '\0') bad = 1, s = sf_diag_set(d, SF_ERR_BAD_MODEL, "tensor \"%s\" names no module", keys[i]);
      else out[i].name = starts(p, "text_model.") ? strdup(p) : sf_str_printf("text_model.%s", p);
    }
    if (s == SF_OK && out[i].name == NULL) s = sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "out of memory");
  }
  free(u);
  if (s != SF_OK) sf_ldm_names_free(out, n);
  return s;
}
