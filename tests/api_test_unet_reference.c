/* The UNet's config options against an independent float64 reference, through the public API.
 *
 * For each toy config below the test writes a diffusers component folder (config.json +
 * diffusion_pytorch_model.safetensors, every tensor F32 with deterministic pseudo-random values,
 * named and shaped as diffusers' UNet2DConditionModel.state_dict() has them), loads it with
 * sf_pipeline_load(SF_NET_UNET), runs sf_unet_predict on a batch of two (different timesteps,
 * texts and latents per item, a non-square latent, 5 tokens), and compares with the same forward
 * pass computed here in plain double-precision scalar C, written from diffusers' definitions:
 *
 *   UNet2DConditionModel.forward      unet_forward()
 *   Timesteps / get_timestep_embedding timestep_sinusoid()
 *   TimestepEmbedding                 time_embedding()
 *   ResnetBlock2D                     resnet()
 *   Transformer2DModel                transformer2d()
 *   BasicTransformerBlock             basic_block()
 *   Attention + AttnProcessor         attention()
 *   FeedForward(GEGLU)                feed_forward()
 *   Downsample2D / Upsample2D         downsample() / upsample()
 *   get_down_block / get_mid_block /  unet_forward() (the block loops)
 *   get_up_block
 *
 * The tensor list is written by a separate walk over diffusers' __init__ structure
 * (state_dict()), which sizes every resnet from the config the way diffusers does; the
 * reference sizes its weight reads from the activations it actually has, and checks each read
 * against the file. The library itself refuses missing, extra or mis-shaped tensors, so loading
 * also validates the naming.
 *
 * Each option is also shown to matter: the reference recomputed with that one option changed
 * (same weights) must land far outside the tolerance from the library's output
 * (check_detects), and configs that differ in one option must give different library outputs
 * (check_differ). Options that change tensor shapes are covered by the load itself.
 *
 * The reference only reads the weights and the model description below; it shares no code or
 * arithmetic with the library. */
#include <math.h>
#include <snapfusion.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

#define MAXS 4 /* stages */

/* ---- the model description (diffusers config values, per stage in down order) ------------ */

enum { MID_ABSENT, MID_CROSS, MID_RESNET, MID_NULL };     /* mid_block_type */
enum { FORM_ABSENT, FORM_SCALAR, FORM_LIST };             /* how a per-stage key is written */
enum { ACT_NULL, ACT_SILU };                              /* time_embedding_act_fn, timestep_post_act */

typedef struct model {
  const char *name;
  int n;                                  /* stages */
  int ch[MAXS];                           /* block_out_channels */
  int down_attn[MAXS];                    /* down_block_types[i]: CrossAttnDownBlock2D, else DownBlock2D */
  int up_attn[MAXS];                      /* up_block_types[i] (up order): CrossAttnUpBlock2D, else UpBlock2D */
  int up_legacy[MAXS];                    /* that name spelled with diffusers' legacy "UNetRes" prefix */
  int layers[MAXS], layers_form;          /* layers_per_block */
  int heads[MAXS], heads_form;            /* attention_head_dim: the head count (diffusers' legacy naming) */
  int only_cross[MAXS], only_cross_form;  /* only_cross_attention (FORM_ABSENT = false) */
  int depth[MAXS], depth_form;            /* transformer_layers_per_block (FORM_ABSENT = 1) */
  int mid;                                /* MID_*: absent means UNetMidBlock2DCrossAttn */
  int linear_proj;                        /* use_linear_projection */
  int cross_dim, groups, in_ch, out_ch;   /* cross_attention_dim, norm_num_groups, in/out_channels */
  int center, flip;                       /* center_input_sample, flip_sin_to_cos */
  double freq_shift, mid_scale, eps;      /* freq_shift, mid_block_scale_factor, norm_eps */
  int time_dim;                           /* time_embedding_dim; 0 = absent (4 * block_out_channels[0]) */
  int temb_act, post_act;                 /* time_embedding_act_fn, timestep_post_act */
  int k_in, k_out;                        /* conv_in_kernel, conv_out_kernel */
  int upcast;                             /* upcast_attention */
  int ds_pad;                             /* downsample_padding */
  int h, w;                               /* latent size used for the run */
} model;

/* test_unet.c's VARIANT_CONFIG: linear projections, heads that do not divide the width (16/3),
 * only_cross_attention per stage, transformer depth 0 in a stage, layers per stage, a
 * resnet-only mid block, both time activations, time_embedding_dim, centred input, conv kernels
 * 5 and 1, 9 -> 3 channels, freq_shift 1, sin-first sinusoid, mid_block_scale_factor 2,
 * upcast_attention, and the legacy UNetRes prefix. downsample_padding is set per run. */
static const model VARIANT = {
    .name = "variant",
    .n = 2,
    .ch = {16, 32},
    .down_attn = {1, 1},
    .up_attn = {1, 1},
    .up_legacy = {0, 1},
    .layers = {1, 2},
    .layers_form = FORM_LIST,
    .heads = {3, 4},
    .heads_form = FORM_LIST,
    .only_cross = {1, 0},
    .only_cross_form = FORM_LIST,
    .depth = {2, 0},
    .depth_form = FORM_LIST,
    .mid = MID_RESNET,
    .linear_proj = 1,
    .cross_dim = 24,
    .groups = 8,
    .in_ch = 9,
    .out_ch = 3,
    .center = 1,
    .flip = 0,
    .freq_shift = 1,
    .mid_scale = 2,
    .eps = 1e-5,
    .time_dim = 40,
    .temb_act = ACT_SILU,
    .post_act = ACT_SILU,
    .k_in = 5,
    .k_out = 1,
    .upcast = 1,
    .ds_pad = 1,
    .h = 8,
    .w = 12,
};

/* SD-1.x in small: conv projections, UNetMidBlock2DCrossAttn named explicitly, three stages with
 * a resnet-only last one (DownBlock2D / UpBlock2D), scalar keys, a taller-than-wide latent, and a
 * norm_eps other than the default (which the resnets and conv_norm_out use, the transformers
 * not). */
static const model CONV_PROJ = {
    .name = "conv_proj_crossattn_mid",
    .n = 3,
    .ch = {16, 32, 32},
    .down_attn = {1, 1, 0},
    .up_attn = {0, 1, 1},
    .layers = {2, 2, 2},
    .layers_form = FORM_SCALAR,
    .heads = {4, 4, 4},
    .heads_form = FORM_SCALAR,
    .only_cross_form = FORM_ABSENT,
    .depth = {1, 1, 1},
    .depth_form = FORM_ABSENT,
    .mid = MID_CROSS,
    .linear_proj = 0,
    .cross_dim = 20,
    .groups = 8,
    .in_ch = 4,
    .out_ch = 4,
    .center = 0,
    .flip = 1,
    .freq_shift = 0,
    .mid_scale = 1,
    .eps = 1e-3,
    .time_dim = 0,
    .k_in = 3,
    .k_out = 3,
    .ds_pad = 1,
    .h = 16,
    .w = 8,
};

/* only_cross_attention: true (one boolean for every stage): attn1 also attends to the text. The
 * mid block is left to the default (key absent: UNetMidBlock2DCrossAttn, which never takes
 * only_cross_attention). */
static const model ONLY_CROSS = {
    .name = "only_cross_everywhere",
    .n = 2,
    .ch = {16, 32},
    .down_attn = {1, 1},
    .up_attn = {1, 1},
    .layers = {1, 1},
    .layers_form = FORM_SCALAR,
    .heads = {2, 4},
    .heads_form = FORM_LIST,
    .only_cross = {1, 1},
    .only_cross_form = FORM_SCALAR,
    .depth = {1, 1},
    .depth_form = FORM_SCALAR,
    .mid = MID_ABSENT,
    .linear_proj = 1,
    .cross_dim = 12,
    .groups = 8,
    .in_ch = 4,
    .out_ch = 4,
    .center = 0,
    .flip = 1,
    .freq_shift = 0,
    .mid_scale = 1,
    .eps = 1e-5,
    .k_in = 3,
    .k_out = 3,
    .ds_pad = 1,
    .h = 8,
    .w = 12,
};

/* transformer_layers_per_block [0, 3]: stage 0's transformers (down and up) have no
 * BasicTransformerBlock (norm, proj_in, proj_out and the residual only); the cross-attention mid
 * block takes the last entry (three blocks deep). Conv projections with heads that do not
 * divide the width (32 / 3). */
static const model DEPTH0 = {
    .name = "depth0_stage",
    .n = 2,
    .ch = {16, 32},
    .down_attn = {1, 1},
    .up_attn = {1, 1},
    .layers = {2, 1},
    .layers_form = FORM_LIST,
    .heads = {2, 3},
    .heads_form = FORM_LIST,
    .only_cross = {0, 0},
    .only_cross_form = FORM_SCALAR,
    .depth = {0, 3},
    .depth_form = FORM_LIST,
    .mid = MID_CROSS,
    .linear_proj = 0,
    .cross_dim = 16,
    .groups = 4,
    .in_ch = 4,
    .out_ch = 4,
    .center = 0,
    .flip = 1,
    .freq_shift = 0,
    .mid_scale = 1,
    .eps = 1e-5,
    .k_in = 3,
    .k_out = 3,
    .ds_pad = 1,
    .h = 8,
    .w = 12,
};

/* The mid block kinds diffusers' get_mid_block builds for UNet2DConditionModel, on one base:
 * "UNetMidBlock2D" (one resnet, as get_mid_block makes it: num_layers 0, no attention), null (no
 * mid block, BK-SDM), and the key absent (the default UNetMidBlock2DCrossAttn). Tensors are
 * seeded by name, so the three share every weight outside mid_block. */
static const model MID_BASE = {
    .name = "mid",
    .n = 2,
    .ch = {16, 32},
    .down_attn = {1, 0},
    .up_attn = {0, 1},
    .layers = {1, 1},
    .layers_form = FORM_SCALAR,
    .heads = {2, 2},
    .heads_form = FORM_SCALAR,
    .only_cross_form = FORM_ABSENT,
    .depth = {1, 1},
    .depth_form = FORM_ABSENT,
    .mid = MID_RESNET,
    .linear_proj = 1,
    .cross_dim = 16,
    .groups = 8,
    .in_ch = 4,
    .out_ch = 4,
    .center = 0,
    .flip = 1,
    .freq_shift = 0,
    .mid_scale = 1.5,
    .eps = 1e-5,
    .k_in = 3,
    .k_out = 3,
    .ds_pad = 0,
    .h = 8,
    .w = 12,
};

/* ---- a small string builder -------------------------------------------------------------- */

typedef struct sbuf {
  char s[8192];
  size_t len;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(b->s + b->len, sizeof b->s - b->len, fmt, ap);
  va_end(ap);
  if (k > 0) b->len += (size_t)k;
  if (b->len >= sizeof b->s) b->len = sizeof b->s - 1; /* truncated: the JSON will not parse */
}

/* A per-stage key: an int when every stage agrees and the form says so, else a list. */
static void json_stage_ints(sbuf *b, const char *key, const int *v, int n, int form) {
  if (form == FORM_ABSENT) return;
  if (form == FORM_SCALAR) {
    for (int i = 1; i < n; i++) CHECK_MSG(v[i] == v[0], "%s: a scalar form needs equal stages", key);
    sb_printf(b, ", \"%s\": %d", key, v[0]);
    return;
  }
  sb_printf(b, ", \"%s\": [", key);
  for (int i = 0; i < n; i++) sb_printf(b, "%s%d", i ? ", " : "", v[i]);
  sb_printf(b, "]");
}

static void config_json(const model *m, sbuf *b) {
  b->len = 0;
  sb_printf(b, "{\"_class_name\": \"UNet2DConditionModel\", \"_diffusers_version\": \"0.30.0\"");
  sb_printf(b, ", \"sample_size\": %d, \"in_channels\": %d, \"out_channels\": %d", m->h, m->in_ch, m->out_ch);
  sb_printf(b, ", \"block_out_channels\": [");
  for (int i = 0; i < m->n; i++) sb_printf(b, "%s%d", i ? ", " : "", m->ch[i]);
  sb_printf(b, "], \"down_block_types\": [");
  for (int i = 0; i < m->n; i++)
    sb_printf(b, "%s\"%s\"", i ? ", " : "", m->down_attn[i] ? "CrossAttnDownBlock2D" : "DownBlock2D");
  sb_printf(b, "], \"up_block_types\": [");
  for (int i = 0; i < m->n; i++)
    sb_printf(b, "%s\"%s%s\"", i ? ", " : "", m->up_legacy[i] ? "UNetRes" : "",
              m->up_attn[i] ? "CrossAttnUpBlock2D" : "UpBlock2D");
  sb_printf(b, "]");
  json_stage_ints(b, "layers_per_block", m->layers, m->n, m->layers_form);
  json_stage_ints(b, "attention_head_dim", m->heads, m->n, m->heads_form);
  json_stage_ints(b, "transformer_layers_per_block", m->depth, m->n, m->depth_form);
  if (m->only_cross_form == FORM_SCALAR) {
    for (int i = 1; i < m->n; i++) CHECK(m->only_cross[i] == m->only_cross[0]);
    sb_printf(b, ", \"only_cross_attention\": %s", m->only_cross[0] ? "true" : "false");
  } else if (m->only_cross_form == FORM_LIST) {
    sb_printf(b, ", \"only_cross_attention\": [");
    for (int i = 0; i < m->n; i++) sb_printf(b, "%s%s", i ? ", " : "", m->only_cross[i] ? "true" : "false");
    sb_printf(b, "]");
  }
  if (m->mid == MID_CROSS) sb_printf(b, ", \"mid_block_type\": \"UNetMidBlock2DCrossAttn\"");
  if (m->mid == MID_RESNET) sb_printf(b, ", \"mid_block_type\": \"UNetMidBlock2D\"");
  if (m->mid == MID_NULL) sb_printf(b, ", \"mid_block_type\": null");
  sb_printf(b, ", \"use_linear_projection\": %s", m->linear_proj ? "true" : "false");
  sb_printf(b, ", \"cross_attention_dim\": %d, \"norm_num_groups\": %d, \"norm_eps\": %.17g", m->cross_dim,
            m->groups, m->eps);
  sb_printf(b, ", \"act_fn\": \"silu\", \"center_input_sample\": %s, \"flip_sin_to_cos\": %s",
            m->center ? "true" : "false", m->flip ? "true" : "false");
  sb_printf(b, ", \"freq_shift\": %.17g, \"mid_block_scale_factor\": %.17g", m->freq_shift, m->mid_scale);
  if (m->time_dim) sb_printf(b, ", \"time_embedding_dim\": %d", m->time_dim);
  sb_printf(b, ", \"time_embedding_act_fn\": %s", m->temb_act == ACT_SILU ? "\"silu\"" : "null");
  sb_printf(b, ", \"timestep_post_act\": %s", m->post_act == ACT_SILU ? "\"silu\"" : "null");
  sb_printf(b, ", \"conv_in_kernel\": %d, \"conv_out_kernel\": %d", m->k_in, m->k_out);
  sb_printf(b, ", \"upcast_attention\": %s, \"downsample_padding\": %d, \"dropout\": 0.0", m->upcast ? "true" : "false",
            m->ds_pad);
  sb_printf(b, "}\n");
}

/* ---- the weights: diffusers' state_dict, generated ---------------------------------------- */

typedef struct tensor {
  char name[160];
  int ndim;
  int shape[4];
  size_t numel;
  float *data;
} tensor;

typedef struct weights {
  tensor *t;
  size_t n, cap;
} weights;

/* What a tensor is, for its value range: weights of a layer with fan-in F get U(-g, g)/sqrt(F),
 * norm scales 1 + U(-0.25, 0.25), biases and norm shifts U(-0.2, 0.2). */
typedef enum { W_LAYER, W_QK, W_BIAS, W_NORM_SCALE, W_NORM_SHIFT } wkind;

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* U(-1, 1) from 24 random bits: exactly representable in float. */
static double uniform_pm1(uint64_t *s) { return (double)(splitmix(s) >> 40) / (double)(1u << 23) - 1.0; }

static uint64_t fnv1a(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static void name_fmt(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void name_fmt(char *buf, size_t cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(buf, cap, fmt, ap);
  va_end(ap);
  if (k < 0 || (size_t)k >= cap) {
    fprintf(stderr, "tensor name too long: %s\n", fmt);
    abort();
  }
}

/* Adds tensor prefix.suffix; values depend only on the name (so configs that share a module
 * share its weights). */
static void add(weights *ws, wkind kind, const char *prefix, const char *suffix, int ndim, int d0, int d1, int d2,
                int d3) {
  if (ws->n == ws->cap) {
    ws->cap = ws->cap ? 2 * ws->cap : 256;
    tensor *t = realloc(ws->t, ws->cap * sizeof *t);
    if (t == NULL) abort();
    ws->t = t;
  }
  tensor *t = &ws->t[ws->n++];
  memset(t, 0, sizeof *t);
  if (prefix[0]) name_fmt(t->name, sizeof t->name, "%s.%s", prefix, suffix);
  else name_fmt(t->name, sizeof t->name, "%s", suffix);
  int dims[4] = {d0, d1, d2, d3};
  t->ndim = ndim;
  t->numel = 1;
  for (int k = 0; k < ndim; k++) {
    t->shape[k] = dims[k];
    t->numel *= (size_t)dims[k];
  }
  t->data = malloc(t->numel * sizeof *t->data);
  if (t->data == NULL) abort();
  uint64_t seed = fnv1a(t->name);
  size_t fan_in = ndim >= 2 ? t->numel / (size_t)dims[0] : 1;
  double gain = kind == W_QK ? 3.0 : 1.5; /* larger q/k: attention far from uniform */
  for (size_t i = 0; i < t->numel; i++) {
    double u = uniform_pm1(&seed), v;
    switch (kind) {
      case W_LAYER:
      case W_QK: v = gain * u / sqrt((double)fan_in); break;
      case W_NORM_SCALE: v = 1.0 + 0.25 * u; break;
      default: v = 0.2 * u; break;
    }
    t->data[i] = (float)v;
  }
}

static void sd_conv(weights *ws, const char *p, int out, int in, int k) {
  add(ws, W_LAYER, p, "weight", 4, out, in, k, k);
  add(ws, W_BIAS, p, "bias", 1, out, 0, 0, 0);
}

static void sd_linear(weights *ws, const char *p, int out, int in, int bias, wkind kind) {
  add(ws, kind, p, "weight", 2, out, in, 0, 0);
  if (bias) add(ws, W_BIAS, p, "bias", 1, out, 0, 0, 0);
}

static void sd_norm(weights *ws, const char *p, int ch) {
  add(ws, W_NORM_SCALE, p, "weight", 1, ch, 0, 0, 0);
  add(ws, W_NORM_SHIFT, p, "bias", 1, ch, 0, 0, 0);
}

static void sub(char *buf, size_t cap, const char *prefix, const char *suffix) {
  name_fmt(buf, cap, "%s.%s", prefix, suffix);
}
#define SUB(buf, prefix, suffix) sub(buf, sizeof buf, prefix, suffix)

/* ResnetBlock2D(in, out, temb_channels): norm1, conv1, time_emb_proj, norm2, conv2 and, when
 * the width changes, a 1x1 conv_shortcut. */
static void sd_resnet(weights *ws, const model *m, const char *p, int in, int out) {
  char n[192];
  int temb = m->time_dim ? m->time_dim : 4 * m->ch[0];
  SUB(n, p, "norm1");
  sd_norm(ws, n, in);
  SUB(n, p, "conv1");
  sd_conv(ws, n, out, in, 3);
  SUB(n, p, "time_emb_proj");
  sd_linear(ws, n, out, temb, 1, W_LAYER);
  SUB(n, p, "norm2");
  sd_norm(ws, n, out);
  SUB(n, p, "conv2");
  sd_conv(ws, n, out, out, 3);
  if (in != out) {
    SUB(n, p, "conv_shortcut");
    sd_conv(ws, n, out, in, 1);
  }
}

/* Attention(query_dim=inner, cross_attention_dim=kv, heads, dim_head): to_q/to_k/to_v without
 * bias, to_out.0 with. */
static void sd_attention(weights *ws, const char *p, int inner, int kv) {
  char n[192];
  SUB(n, p, "to_q");
  sd_linear(ws, n, inner, inner, 0, W_QK);
  SUB(n, p, "to_k");
  sd_linear(ws, n, inner, kv, 0, W_QK);
  SUB(n, p, "to_v");
  sd_linear(ws, n, inner, kv, 0, W_LAYER);
  SUB(n, p, "to_out.0");
  sd_linear(ws, n, inner, inner, 1, W_LAYER);
}

/* Transformer2DModel(heads, channels // heads, in_channels=channels, num_layers=depth). */
static void sd_transformer(weights *ws, const model *m, const char *p, int ch, int heads, int depth, int only_cross) {
  char n[192], b[192];
  int inner = heads * (ch / heads);
  SUB(n, p, "norm");
  sd_norm(ws, n, ch);
  SUB(n, p, "proj_in");
  if (m->linear_proj) sd_linear(ws, n, inner, ch, 1, W_LAYER);
  else sd_conv(ws, n, inner, ch, 1);
  for (int k = 0; k < depth; k++) {
    name_fmt(b, sizeof b, "%s.transformer_blocks.%d", p, k);
    SUB(n, b, "norm1");
    sd_norm(ws, n, inner);
    SUB(n, b, "attn1");
    sd_attention(ws, n, inner, only_cross ? m->cross_dim : inner);
    SUB(n, b, "norm2");
    sd_norm(ws, n, inner);
    SUB(n, b, "attn2");
    sd_attention(ws, n, inner, m->cross_dim);
    SUB(n, b, "norm3");
    sd_norm(ws, n, inner);
    SUB(n, b, "ff.net.0.proj");
    sd_linear(ws, n, 2 * 4 * inner, inner, 1, W_LAYER);
    SUB(n, b, "ff.net.2");
    sd_linear(ws, n, inner, 4 * inner, 1, W_LAYER);
  }
  SUB(n, p, "proj_out");
  if (m->linear_proj) sd_linear(ws, n, ch, inner, 1, W_LAYER);
  else sd_conv(ws, n, ch, inner, 1);
}

/* The modules UNet2DConditionModel.__init__ creates, in its order and with its channel
 * arithmetic (prev_output_channel, input_channel = reversed[min(i+1, n-1)], the last resnet of
 * an up block taking the skip of the block's input width). */
static void state_dict(weights *ws, const model *m) {
  char p[192];
  int n = m->n, c0 = m->ch[0];
  int temb = m->time_dim ? m->time_dim : 4 * c0;
  sd_conv(ws, "conv_in", c0, m->in_ch, m->k_in);
  sd_linear(ws, "time_embedding.linear_1", temb, c0, 1, W_LAYER);
  sd_linear(ws, "time_embedding.linear_2", temb, temb, 1, W_LAYER);

  int output_channel = c0;
  for (int i = 0; i < n; i++) {
    int input_channel = output_channel;
    output_channel = m->ch[i];
    for (int j = 0; j < m->layers[i]; j++) {
      name_fmt(p, sizeof p, "down_blocks.%d.resnets.%d", i, j);
      sd_resnet(ws, m, p, j == 0 ? input_channel : output_channel, output_channel);
      if (m->down_attn[i]) {
        name_fmt(p, sizeof p, "down_blocks.%d.attentions.%d", i, j);
        sd_transformer(ws, m, p, output_channel, m->heads[i], m->depth[i], m->only_cross[i]);
      }
    }
    if (i != n - 1) { /* Downsample2D(use_conv=True, name="op") keeps its conv as .conv */
      name_fmt(p, sizeof p, "down_blocks.%d.downsamplers.0.conv", i);
      sd_conv(ws, p, output_channel, output_channel, 3);
    }
  }

  int mid_ch = m->ch[n - 1];
  if (m->mid == MID_ABSENT || m->mid == MID_CROSS) {
    sd_resnet(ws, m, "mid_block.resnets.0", mid_ch, mid_ch);
    sd_transformer(ws, m, "mid_block.attentions.0", mid_ch, m->heads[n - 1], m->depth[n - 1], 0);
    sd_resnet(ws, m, "mid_block.resnets.1", mid_ch, mid_ch);
  } else if (m->mid == MID_RESNET) {
    sd_resnet(ws, m, "mid_block.resnets.0", mid_ch, mid_ch);
  }

  output_channel = m->ch[n - 1];
  for (int i = 0; i < n; i++) {
    int r = n - 1 - i; /* the stage this up block mirrors: reversed per-stage lists */
    int prev_output_channel = output_channel;
    output_channel = m->ch[r];
    int input_channel = m->ch[n - 1 - (i + 1 < n - 1 ? i + 1 : n - 1)];
    int num_layers = m->layers[r] + 1;
    for (int j = 0; j < num_layers; j++) {
      int res_skip = j == num_layers - 1 ? input_channel : output_channel;
      int resnet_in = j == 0 ? prev_output_channel : output_channel;
      name_fmt(p, sizeof p, "up_blocks.%d.resnets.%d", i, j);
      sd_resnet(ws, m, p, resnet_in + res_skip, output_channel);
      if (m->up_attn[i]) {
        name_fmt(p, sizeof p, "up_blocks.%d.attentions.%d", i, j);
        sd_transformer(ws, m, p, output_channel, m->heads[r], m->depth[r], m->only_cross[r]);
      }
    }
    if (i != n - 1) {
      name_fmt(p, sizeof p, "up_blocks.%d.upsamplers.0.conv", i);
      sd_conv(ws, p, output_channel, output_channel, 3);
    }
  }
  sd_norm(ws, "conv_norm_out", c0);
  sd_conv(ws, "conv_out", m->out_ch, c0, m->k_out);
}

static void weights_free(weights *ws) {
  for (size_t i = 0; i < ws->n; i++) free(ws->t[i].data);
  free(ws->t);
  memset(ws, 0, sizeof *ws);
}

/* The safetensors format: u64 little-endian header length, the JSON header (padded with spaces
 * to a multiple of 8), then the tensors' bytes at their data_offsets. */
static int write_safetensors(const weights *ws, const char *path) {
  size_t cap = 256 + ws->n * 256, len = 0;
  char *hdr = malloc(cap);
  if (hdr == NULL) return 0;
  uint64_t off = 0;
  len += (size_t)snprintf(hdr + len, cap - len, "{\"__metadata__\":{\"format\":\"pt\"}");
  for (size_t i = 0; i < ws->n; i++) {
    const tensor *t = &ws->t[i];
    len += (size_t)snprintf(hdr + len, cap - len, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[", t->name);
    for (int k = 0; k < t->ndim; k++) len += (size_t)snprintf(hdr + len, cap - len, "%s%d", k ? "," : "", t->shape[k]);
    len += (size_t)snprintf(hdr + len, cap - len, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                            (unsigned long long)(off + 4 * t->numel));
    off += 4 * t->numel;
  }
  len += (size_t)snprintf(hdr + len, cap - len, "}");
  while (len % 8 != 0 && len + 1 < cap) hdr[len++] = ' ';
  FILE *f = fopen(path, "wb");
  int ok = f != NULL && len + 1 < cap;
  unsigned char le[8];
  for (int k = 0; k < 8; k++) le[k] = (unsigned char)((uint64_t)len >> (8 * k));
  if (ok) ok = fwrite(le, 1, 8, f) == 8 && fwrite(hdr, 1, len, f) == len;
  for (size_t i = 0; ok && i < ws->n; i++) {
    const tensor *t = &ws->t[i];
    for (size_t j = 0; ok && j < t->numel; j++) { /* little-endian whatever the host */
      uint32_t u;
      memcpy(&u, &t->data[j], 4);
      unsigned char b4[4] = {(unsigned char)u, (unsigned char)(u >> 8), (unsigned char)(u >> 16),
                             (unsigned char)(u >> 24)};
      ok = fwrite(b4, 1, 4, f) == 4;
    }
  }
  if (f) ok = (fclose(f) == 0) && ok;
  free(hdr);
  return ok;
}

/* ---- the float64 reference ----------------------------------------------------------------- */

/* One batch item's feature map, C x H x W (NCHW without the N). */
typedef struct fmap {
  int c, h, w;
  double *v;
} fmap;

/* A sequence of n tokens of d features (Transformer2DModel's [h*w, channels] view). */
typedef struct rows {
  int n, d;
  double *v;
} rows;

static const weights *ref_w;  /* the weights the reference reads */
static const model *ref_m;    /* the config it follows */
static int ref_errors;        /* weight reads that did not match the file */

static fmap fm_new(int c, int h, int w) {
  fmap f = {c, h, w, calloc((size_t)c * h * w, sizeof(double))};
  if (f.v == NULL) abort();
  return f;
}

static rows rows_new(int n, int d) {
  rows r = {n, d, calloc((size_t)n * d, sizeof(double))};
  if (r.v == NULL) abort();
  return r;
}

/* The tensor prefix.suffix, which must hold `numel` values. */
static const float *param(const char *prefix, const char *suffix, size_t numel) {
  char name[192];
  name_fmt(name, sizeof name, "%s.%s", prefix, suffix);
  for (size_t i = 0; i < ref_w->n; i++) {
    if (strcmp(ref_w->t[i].name, name) != 0) continue;
    if (ref_w->t[i].numel == numel) return ref_w->t[i].data;
    fprintf(stderr, "reference: %s has %zu values, the reference needs %zu\n", name, ref_w->t[i].numel, numel);
    ref_errors++;
    return NULL;
  }
  fprintf(stderr, "reference: no tensor %s\n", name);
  ref_errors++;
  return NULL;
}

static double silu(double x) { return x / (1.0 + exp(-x)); }
static double gelu(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); } /* F.gelu, exact */

/* nn.Conv2d(in, out, k, stride) with zero padding top/left/bottom/right (F.pad then conv). */
static fmap conv2d(const char *p, fmap x, int out_c, int k, int stride, int pt, int pl, int pb, int pr) {
  int oh = (x.h + pt + pb - k) / stride + 1, ow = (x.w + pl + pr - k) / stride + 1;
  fmap y = fm_new(out_c, oh, ow);
  const float *w = param(p, "weight", (size_t)out_c * x.c * k * k), *b = param(p, "bias", (size_t)out_c);
  if (w == NULL || b == NULL) return y;
  for (int o = 0; o < out_c; o++)
    for (int i = 0; i < oh; i++)
      for (int j = 0; j < ow; j++) {
        double s = b[o];
        for (int c = 0; c < x.c; c++)
          for (int ki = 0; ki < k; ki++) {
            int yi = i * stride + ki - pt;
            if (yi < 0 || yi >= x.h) continue;
            for (int kj = 0; kj < k; kj++) {
              int xj = j * stride + kj - pl;
              if (xj < 0 || xj >= x.w) continue;
              s += (double)w[((o * x.c + c) * k + ki) * k + kj] * x.v[((size_t)c * x.h + yi) * x.w + xj];
            }
          }
        y.v[((size_t)o * oh + i) * ow + j] = s;
      }
  return y;
}

/* nn.GroupNorm(groups, C, eps, affine) over each group's channels and pixels (biased
 * variance), optionally followed by SiLU. */
static fmap group_norm(const char *p, fmap x, int groups, double eps, int then_silu) {
  fmap y = fm_new(x.c, x.h, x.w);
  const float *g = param(p, "weight", (size_t)x.c), *b = param(p, "bias", (size_t)x.c);
  if (g == NULL || b == NULL || x.c % groups != 0) {
    ref_errors += x.c % groups != 0;
    return y;
  }
  size_t per = (size_t)(x.c / groups) * x.h * x.w;
  for (int gi = 0; gi < groups; gi++) {
    const double *src = x.v + gi * per;
    double mean = 0, var = 0;
    for (size_t i = 0; i < per; i++) mean += src[i];
    mean /= (double)per;
    for (size_t i = 0; i < per; i++) var += (src[i] - mean) * (src[i] - mean);
    var /= (double)per;
    double inv = 1.0 / sqrt(var + eps);
    for (size_t i = 0; i < per; i++) {
      int c = gi * (x.c / groups) + (int)(i / ((size_t)x.h * x.w));
      double v = (src[i] - mean) * inv * g[c] + b[c];
      y.v[gi * per + i] = then_silu ? silu(v) : v;
    }
  }
  return y;
}

/* nn.Linear(in, out) on every token. */
static rows linear(const char *p, rows x, int out, int bias) {
  rows y = rows_new(x.n, out);
  const float *w = param(p, "weight", (size_t)out * x.d), *b = bias ? param(p, "bias", (size_t)out) : NULL;
  if (w == NULL || (bias && b == NULL)) return y;
  for (int t = 0; t < x.n; t++)
    for (int o = 0; o < out; o++) {
      double s = bias ? b[o] : 0.0;
      for (int i = 0; i < x.d; i++) s += (double)w[(size_t)o * x.d + i] * x.v[(size_t)t * x.d + i];
      y.v[(size_t)t * out + o] = s;
    }
  return y;
}

/* nn.LayerNorm(d, eps) with its affine weights, on every token. */
static rows layer_norm(const char *p, rows x, double eps) {
  rows y = rows_new(x.n, x.d);
  const float *g = param(p, "weight", (size_t)x.d), *b = param(p, "bias", (size_t)x.d);
  if (g == NULL || b == NULL) return y;
  for (int t = 0; t < x.n; t++) {
    const double *r = x.v + (size_t)t * x.d;
    double mean = 0, var = 0;
    for (int i = 0; i < x.d; i++) mean += r[i];
    mean /= x.d;
    for (int i = 0; i < x.d; i++) var += (r[i] - mean) * (r[i] - mean);
    var /= x.d;
    for (int i = 0; i < x.d; i++) y.v[(size_t)t * x.d + i] = (r[i] - mean) / sqrt(var + eps) * g[i] + b[i];
  }
  return y;
}

static void rows_add(rows *acc, rows x) {
  for (size_t i = 0; i < (size_t)acc->n * acc->d; i++) acc->v[i] += x.v[i];
  free(x.v);
}

static void fm_add(fmap *acc, const fmap *x) { /* x stays the caller's */
  for (size_t i = 0; i < (size_t)acc->c * acc->h * acc->w; i++) acc->v[i] += x->v[i];
}

/* Attention with AttnProcessor: q from x, k and v from ctx, per head softmax(q k^T / sqrt(dh)) v,
 * then to_out.0 (with bias) back to x's width. */
static rows attention(const char *p, rows x, rows ctx, int heads, int dh) {
  char n[192];
  int inner = heads * dh;
  SUB(n, p, "to_q");
  rows q = linear(n, x, inner, 0);
  SUB(n, p, "to_k");
  rows k = linear(n, ctx, inner, 0);
  SUB(n, p, "to_v");
  rows v = linear(n, ctx, inner, 0);
  rows o = rows_new(x.n, inner);
  double *score = malloc((size_t)ctx.n * sizeof *score);
  if (score == NULL) abort();
  double scale = 1.0 / sqrt((double)dh);
  for (int hd = 0; hd < heads; hd++)
    for (int i = 0; i < x.n; i++) {
      double mx = -INFINITY, sum = 0;
      for (int j = 0; j < ctx.n; j++) {
        double s = 0;
        for (int e = 0; e < dh; e++) s += q.v[(size_t)i * inner + hd * dh + e] * k.v[(size_t)j * inner + hd * dh + e];
        score[j] = s * scale;
        if (score[j] > mx) mx = score[j];
      }
      for (int j = 0; j < ctx.n; j++) sum += (score[j] = exp(score[j] - mx));
      for (int e = 0; e < dh; e++) {
        double s = 0;
        for (int j = 0; j < ctx.n; j++) s += score[j] / sum * v.v[(size_t)j * inner + hd * dh + e];
        o.v[(size_t)i * inner + hd * dh + e] = s;
      }
    }
  free(score);
  SUB(n, p, "to_out.0");
  rows y = linear(n, o, x.d, 1);
  free(q.v);
  free(k.v);
  free(v.v);
  free(o.v);
  return y;
}

/* FeedForward(dim, activation_fn="geglu"): GEGLU proj to 2 x 4dim, hidden * gelu(gate), net.2. */
static rows feed_forward(const char *p, rows x) {
  char n[192];
  int inner = 4 * x.d;
  SUB(n, p, "net.0.proj");
  rows hg = linear(n, x, 2 * inner, 1);
  rows a = rows_new(x.n, inner);
  for (int t = 0; t < x.n; t++)
    for (int i = 0; i < inner; i++) {
      const double *r = hg.v + (size_t)t * 2 * inner;
      a.v[(size_t)t * inner + i] = r[i] * gelu(r[inner + i]); /* chunk(2, dim=-1): hidden, gate */
    }
  SUB(n, p, "net.2");
  rows y = linear(n, a, x.d, 1);
  free(hg.v);
  free(a.v);
  return y;
}

/* BasicTransformerBlock(norm_type "layer_norm", eps 1e-5): self-attention (or, with
 * only_cross_attention, attention to the text), cross-attention to the text, GEGLU feed-forward,
 * each pre-normed and residual. */
static void basic_block(const char *p, rows *h, rows text, int heads, int dh, int only_cross) {
  char n[192];
  SUB(n, p, "norm1");
  rows a = layer_norm(n, *h, 1e-5);
  SUB(n, p, "attn1");
  rows o = attention(n, a, only_cross ? text : a, heads, dh);
  free(a.v);
  rows_add(h, o);
  SUB(n, p, "norm2");
  a = layer_norm(n, *h, 1e-5);
  SUB(n, p, "attn2");
  o = attention(n, a, text, heads, dh);
  free(a.v);
  rows_add(h, o);
  SUB(n, p, "norm3");
  a = layer_norm(n, *h, 1e-5);
  SUB(n, p, "ff");
  o = feed_forward(n, a);
  free(a.v);
  rows_add(h, o);
}

static rows to_rows(fmap x) { /* [C, H, W] -> [H*W, C] */
  rows r = rows_new(x.h * x.w, x.c);
  for (int c = 0; c < x.c; c++)
    for (int i = 0; i < x.h * x.w; i++) r.v[(size_t)i * x.c + c] = x.v[(size_t)c * x.h * x.w + i];
  return r;
}

static fmap from_rows(rows r, int h, int w) { /* [H*W, C] -> [C, H, W] */
  fmap x = fm_new(r.d, h, w);
  for (int c = 0; c < r.d; c++)
    for (int i = 0; i < h * w; i++) x.v[(size_t)c * h * w + i] = r.v[(size_t)i * r.d + c];
  return x;
}

/* Transformer2DModel (continuous input): GroupNorm(norm_num_groups, eps 1e-6), proj_in (Linear
 * on tokens or 1x1 conv), `depth` BasicTransformerBlocks of heads x (C // heads), proj_out, plus
 * the input. */
static fmap transformer2d(const char *p, fmap x, rows text, int heads, int depth, int only_cross) {
  char n[192], b[192];
  int dh = x.c / heads, inner = heads * dh;
  SUB(n, p, "norm");
  fmap g = group_norm(n, x, ref_m->groups, 1e-6, 0);
  rows h;
  SUB(n, p, "proj_in");
  if (ref_m->linear_proj) {
    rows r = to_rows(g);
    h = linear(n, r, inner, 1);
    free(r.v);
  } else {
    fmap c = conv2d(n, g, inner, 1, 1, 0, 0, 0, 0);
    h = to_rows(c);
    free(c.v);
  }
  free(g.v);
  for (int k = 0; k < depth; k++) {
    name_fmt(b, sizeof b, "%s.transformer_blocks.%d", p, k);
    basic_block(b, &h, text, heads, dh, only_cross);
  }
  SUB(n, p, "proj_out");
  fmap y;
  if (ref_m->linear_proj) {
    rows r = linear(n, h, x.c, 1);
    y = from_rows(r, x.h, x.w);
    free(r.v);
  } else {
    fmap c = from_rows(h, x.h, x.w);
    y = conv2d(n, c, x.c, 1, 1, 0, 0, 0, 0);
    free(c.v);
  }
  free(h.v);
  fm_add(&y, &x);
  return y;
}

/* ResnetBlock2D (time_embedding_norm "default", pre-norm): GroupNorm-SiLU-conv3x3, plus
 * time_emb_proj(SiLU(temb)) per channel, GroupNorm-SiLU-(dropout)-conv3x3, plus the input (1x1
 * conv_shortcut when the width changes), divided by output_scale_factor. */
static fmap resnet(const char *p, fmap x, const double *temb, int temb_dim, int out_c, double output_scale_factor) {
  char n[192];
  int groups = ref_m->groups;
  double eps = ref_m->eps;
  SUB(n, p, "norm1");
  fmap a = group_norm(n, x, groups, eps, 1);
  SUB(n, p, "conv1");
  fmap h = conv2d(n, a, out_c, 3, 1, 1, 1, 1, 1);
  free(a.v);
  rows t = rows_new(1, temb_dim);
  for (int i = 0; i < temb_dim; i++) t.v[i] = silu(temb[i]);
  SUB(n, p, "time_emb_proj");
  rows tp = linear(n, t, out_c, 1);
  for (int c = 0; c < out_c; c++)
    for (int i = 0; i < h.h * h.w; i++) h.v[(size_t)c * h.h * h.w + i] += tp.v[c];
  free(t.v);
  free(tp.v);
  SUB(n, p, "norm2");
  a = group_norm(n, h, groups, eps, 1);
  free(h.v);
  SUB(n, p, "conv2");
  h = conv2d(n, a, out_c, 3, 1, 1, 1, 1, 1);
  free(a.v);
  fmap y;
  if (x.c != out_c) {
    SUB(n, p, "conv_shortcut");
    y = conv2d(n, x, out_c, 1, 1, 0, 0, 0, 0);
  } else {
    y = fm_new(x.c, x.h, x.w);
    memcpy(y.v, x.v, (size_t)x.c * x.h * x.w * sizeof *y.v);
  }
  fm_add(&y, &h);
  free(h.v);
  for (size_t i = 0; i < (size_t)y.c * y.h * y.w; i++) y.v[i] /= output_scale_factor;
  return y;
}

/* Downsample2D(use_conv, padding): a stride-2 3x3 conv with `padding` on every side, or, for
 * padding 0, F.pad(x, (0, 1, 0, 1)) (right and bottom) first. */
static fmap downsample(const char *p, fmap x) {
  char n[192];
  SUB(n, p, "conv");
  if (ref_m->ds_pad == 0) return conv2d(n, x, x.c, 3, 2, 0, 0, 1, 1);
  return conv2d(n, x, x.c, 3, 2, ref_m->ds_pad, ref_m->ds_pad, ref_m->ds_pad, ref_m->ds_pad);
}

/* Upsample2D(use_conv): F.interpolate(scale_factor=2, mode="nearest"), then a 3x3 conv. */
static fmap upsample(const char *p, fmap x) {
  char n[192];
  fmap u = fm_new(x.c, 2 * x.h, 2 * x.w);
  for (int c = 0; c < x.c; c++)
    for (int i = 0; i < u.h; i++)
      for (int j = 0; j < u.w; j++)
        u.v[((size_t)c * u.h + i) * u.w + j] = x.v[((size_t)c * x.h + i / 2) * x.w + j / 2];
  SUB(n, p, "conv");
  fmap y = conv2d(n, u, x.c, 3, 1, 1, 1, 1, 1);
  free(u.v);
  return y;
}

static fmap concat(fmap a, fmap b) { /* torch.cat([a, b], dim=1) */
  fmap y = fm_new(a.c + b.c, a.h, a.w);
  if (a.h != b.h || a.w != b.w) {
    ref_errors++;
    return y;
  }
  memcpy(y.v, a.v, (size_t)a.c * a.h * a.w * sizeof *y.v);
  memcpy(y.v + (size_t)a.c * a.h * a.w, b.v, (size_t)b.c * b.h * b.w * sizeof *y.v);
  return y;
}

/* get_timestep_embedding(t, dim, flip_sin_to_cos, downscale_freq_shift, scale 1, max_period
 * 10000): frequencies exp(-ln(10000) * i / (dim/2 - shift)), [sin | cos] of t * frequency,
 * swapped to [cos | sin] when flipped, a zero appended for odd dim. Exact (double) arithmetic;
 * diffusers rounds the frequencies and the products to float32 (see TOLERANCE). */
static void timestep_sinusoid(double t, int dim, int flip, double shift, double *out) {
  int half = dim / 2;
  for (int i = 0; i < half; i++) {
    double arg = t * exp(-log(10000.0) * i / (half - shift));
    out[(flip ? half : 0) + i] = sin(arg);
    out[(flip ? 0 : half) + i] = cos(arg);
  }
  if (dim % 2) out[dim - 1] = 0.0;
}

/* Timesteps -> TimestepEmbedding(linear_1, SiLU, linear_2, post_act) -> time_embed_act. */
static double *time_embedding(double t, int *out_dim) {
  const model *m = ref_m;
  int c0 = m->ch[0], ted = m->time_dim ? m->time_dim : 4 * c0;
  rows s = rows_new(1, c0);
  timestep_sinusoid(t, c0, m->flip, m->freq_shift, s.v);
  rows h = linear("time_embedding.linear_1", s, ted, 1);
  for (int i = 0; i < ted; i++) h.v[i] = silu(h.v[i]);
  rows e = linear("time_embedding.linear_2", h, ted, 1);
  for (int i = 0; i < ted; i++) {
    if (m->post_act == ACT_SILU) e.v[i] = silu(e.v[i]);
    if (m->temb_act == ACT_SILU) e.v[i] = silu(e.v[i]);
  }
  free(s.v);
  free(h.v);
  *out_dim = ted;
  return e.v;
}

#define MAX_SKIPS 64

/* UNet2DConditionModel.forward for one batch item: sample [in_ch, H, W], text [T, cross_dim]
 * -> out [out_ch, H, W]. */
static void unet_forward(const float *sample, double t, const float *text_in, int T, double *out) {
  const model *m = ref_m;
  int n = m->n;
  char p[192];
  fmap x = fm_new(m->in_ch, m->h, m->w);
  for (size_t i = 0; i < (size_t)m->in_ch * m->h * m->w; i++)
    x.v[i] = m->center ? 2.0 * sample[i] - 1.0 : (double)sample[i];
  rows text = rows_new(T, m->cross_dim);
  for (size_t i = 0; i < (size_t)T * m->cross_dim; i++) text.v[i] = text_in[i];
  int ted;
  double *temb = time_embedding(t, &ted);

  fmap h = conv2d("conv_in", x, m->ch[0], m->k_in, 1, (m->k_in - 1) / 2, (m->k_in - 1) / 2, (m->k_in - 1) / 2,
                  (m->k_in - 1) / 2);
  free(x.v);
  fmap skips[MAX_SKIPS];
  int ns = 0;
  skips[ns++] = h;

  for (int i = 0; i < n; i++) { /* down blocks: every resnet (+ transformer) output is a skip */
    for (int j = 0; j < m->layers[i]; j++) {
      name_fmt(p, sizeof p, "down_blocks.%d.resnets.%d", i, j);
      h = resnet(p, h, temb, ted, m->ch[i], 1.0);
      if (m->down_attn[i]) {
        name_fmt(p, sizeof p, "down_blocks.%d.attentions.%d", i, j);
        fmap a = transformer2d(p, h, text, m->heads[i], m->depth[i], m->only_cross[i]);
        free(h.v);
        h = a;
      }
      if (ns == MAX_SKIPS) abort();
      skips[ns++] = h;
    }
    if (i < n - 1) {
      name_fmt(p, sizeof p, "down_blocks.%d.downsamplers.0", i);
      h = downsample(p, h);
      if (ns == MAX_SKIPS) abort();
      skips[ns++] = h;
    }
  }
  /* h is the last skip: the mid block works on a copy. */
  fmap cur = fm_new(h.c, h.h, h.w);
  memcpy(cur.v, h.v, (size_t)h.c * h.h * h.w * sizeof *cur.v);

  if (m->mid != MID_NULL) { /* UNetMidBlock2DCrossAttn: resnet, (transformer, resnet); UNetMidBlock2D: resnet */
    fmap r = resnet("mid_block.resnets.0", cur, temb, ted, cur.c, m->mid_scale);
    free(cur.v);
    cur = r;
    if (m->mid == MID_ABSENT || m->mid == MID_CROSS) {
      fmap a = transformer2d("mid_block.attentions.0", cur, text, m->heads[n - 1], m->depth[n - 1], 0);
      free(cur.v);
      cur = resnet("mid_block.resnets.1", a, temb, ted, a.c, m->mid_scale);
      free(a.v);
    }
  }

  for (int i = 0; i < n; i++) { /* up blocks, with the per-stage lists reversed */
    int r = n - 1 - i;
    for (int j = 0; j < m->layers[r] + 1; j++) {
      if (ns == 0) {
        ref_errors++;
        break;
      }
      fmap skip = skips[--ns];
      fmap c = concat(cur, skip);
      free(cur.v);
      free(skip.v);
      name_fmt(p, sizeof p, "up_blocks.%d.resnets.%d", i, j);
      cur = resnet(p, c, temb, ted, m->ch[r], 1.0);
      free(c.v);
      if (m->up_attn[i]) {
        name_fmt(p, sizeof p, "up_blocks.%d.attentions.%d", i, j);
        fmap a = transformer2d(p, cur, text, m->heads[r], m->depth[r], m->only_cross[r]);
        free(cur.v);
        cur = a;
      }
    }
    if (i < n - 1) {
      name_fmt(p, sizeof p, "up_blocks.%d.upsamplers.0", i);
      fmap u = upsample(p, cur);
      free(cur.v);
      cur = u;
    }
  }
  if (ns != 0) ref_errors++;
  while (ns > 0) free(skips[--ns].v);

  fmap g = group_norm("conv_norm_out", cur, m->groups, m->eps, 1);
  free(cur.v);
  fmap y = conv2d("conv_out", g, m->out_ch, m->k_out, 1, (m->k_out - 1) / 2, (m->k_out - 1) / 2, (m->k_out - 1) / 2,
                  (m->k_out - 1) / 2);
  free(g.v);
  if (y.c == m->out_ch && y.h == m->h && y.w == m->w) memcpy(out, y.v, (size_t)y.c * y.h * y.w * sizeof *out);
  else ref_errors++;
  free(y.v);
  free(temb);
  free(text.v);
}

/* ---- running both ---------------------------------------------------------------------------- */

#define BATCH 2
#define TOKENS 5 /* not CLIP's 77: the UNet takes any text length */

static sf_context *ctx;
static const float TIMESTEPS[BATCH] = {999.0f, 17.5f};

typedef struct inputs {
  float *x, *text; /* [BATCH, in_ch, h, w], [BATCH, TOKENS, cross_dim]: different per item */
} inputs;

static inputs make_inputs(const model *m) {
  size_t nx = (size_t)BATCH * m->in_ch * m->h * m->w, nt = (size_t)BATCH * TOKENS * m->cross_dim;
  inputs in = {malloc(nx * sizeof(float)), malloc(nt * sizeof(float))};
  if (in.x == NULL || in.text == NULL) abort();
  uint64_t s = 12345;
  for (size_t i = 0; i < nx; i++) in.x[i] = (float)uniform_pm1(&s);
  for (size_t i = 0; i < nt; i++) in.text[i] = (float)uniform_pm1(&s);
  return in;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (f == NULL) return 0;
  int ok = fputs(text, f) >= 0;
  return (fclose(f) == 0) && ok;
}

/* Writes m as a diffusers component folder, loads it through the public API and predicts the
 * batch. NULL (with the failure CHECKed) if anything fails. */
static float *library_predict(const model *m, const weights *ws, const inputs *in) {
  char dir[] = "/tmp/sf_unetref_XXXXXX", cfg_path[64], st_path[96];
  if (mkdtemp(dir) == NULL) {
    CHECK_MSG(0, "mkdtemp failed");
    return NULL;
  }
  snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
  snprintf(st_path, sizeof st_path, "%s/diffusion_pytorch_model.safetensors", dir);
  sbuf cfg;
  config_json(m, &cfg);
  CHECK_MSG(write_text(cfg_path, cfg.s), "%s: writing %s", m->name, cfg_path);
  CHECK_MSG(write_safetensors(ws, st_path), "%s: writing %s", m->name, st_path);

  sf_params *opt = NULL;
  CHECK(sf_params_create(&opt) == SF_OK);
  CHECK(sf_params_set_int(opt, SF_PARAM_COMPONENTS, SF_NET_UNET) == SF_OK);
  sf_pipeline *p = NULL;
  double t0 = now_s();
  sf_status s = sf_pipeline_load(ctx, dir, opt, &p);
  double t_load = now_s() - t0;
  CHECK_MSG(s == SF_OK, "%s: load: %s: %s\nconfig: %s", m->name, sf_status_string(s), sf_context_last_error(ctx),
            cfg.s);
  sf_params_destroy(opt);
  float *out = NULL;
  if (p != NULL) {
    int64_t latent_ch = 0, nets = 0;
    CHECK(sf_pipeline_get_int(p, SF_INFO_LATENT_CHANNELS, &latent_ch) == SF_OK && latent_ch == m->in_ch);
    CHECK(sf_pipeline_get_int(p, SF_INFO_NETWORKS, &nets) == SF_OK && nets == SF_NET_UNET);
    size_t count = (size_t)BATCH * m->out_ch * m->h * m->w;
    out = malloc(count * sizeof *out);
    if (out == NULL) abort();
    for (size_t i = 0; i < count; i++) out[i] = NAN; /* anything not written shows up */
    t0 = now_s();
    size_t n_in = (size_t)BATCH * m->in_ch * m->h * m->w, n_text = (size_t)BATCH * TOKENS * m->cross_dim;
    s = sf_unet_predict_v2(p, in->x, n_in, BATCH, (size_t)m->h, (size_t)m->w, TIMESTEPS, BATCH, in->text, n_text,
                           TOKENS, out, count);
    double t_run = now_s() - t0;
    CHECK_MSG(s == SF_OK, "%s: sf_unet_predict: %s: %s", m->name, sf_status_string(s), sf_context_last_error(ctx));
    if (s != SF_OK) {
      free(out);
      out = NULL;
    }
    printf("  %-28s %3zu tensors, load %.3f s, predict %.3f s\n", m->name, ws->n, t_load, t_run);
  }
  sf_pipeline_destroy(p);
  remove(cfg_path);
  remove(st_path);
  rmdir(dir);
  return out;
}

/* The reference for the whole batch, [BATCH, out_ch, h, w]. */
static double *reference_predict(const model *m, const weights *ws, const inputs *in) {
  size_t per_x = (size_t)m->in_ch * m->h * m->w, per_t = (size_t)TOKENS * m->cross_dim;
  size_t per_out = (size_t)m->out_ch * m->h * m->w;
  double *out = malloc(BATCH * per_out * sizeof *out);
  if (out == NULL) abort();
  ref_w = ws;
  ref_m = m;
  int errors_before = ref_errors;
  for (int b = 0; b < BATCH; b++)
    unet_forward(in->x + b * per_x, TIMESTEPS[b], in->text + b * per_t, TOKENS, out + b * per_out);
  CHECK_MSG(ref_errors == errors_before, "%s: the reference's weight reads do not match the tensors written",
            m->name);
  return out;
}

/* out against ref over n values. Non-finite values of out are counted (and left out of the
 * error sums, so the counts decide); likewise for ref. */
typedef struct errors {
  size_t out_nonfinite, ref_nonfinite;
  double max_abs, max_ref, rel_l2;
} errors;

static errors measure(const float *out, const double *ref, size_t n) {
  errors e = {0};
  double se = 0, sr = 0;
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(ref[i])) {
      e.ref_nonfinite++;
      continue;
    }
    double r = fabs(ref[i]);
    if (r > e.max_ref) e.max_ref = r;
    sr += ref[i] * ref[i];
    if (!isfinite(out[i])) {
      e.out_nonfinite++;
      continue;
    }
    double d = fabs((double)out[i] - ref[i]);
    if (d > e.max_abs) e.max_abs = d;
    se += d * d;
  }
  e.rel_l2 = sr > 0 ? sqrt(se / sr) : INFINITY;
  return e;
}

/* ---- the checks ------------------------------------------------------------------------------ */

/* TOLERANCE: max |out - ref| <= TOL_MAX * max|ref| + TOL_ABS, and ||out - ref|| / ||ref|| <=
 * TOL_L2, both over the whole batch (outputs of magnitude ~1-2.5).
 *
 * Measured on x86-64 with AVX-512 (gcc Release, gcc Debug + ASan, clang Release: the same
 * numbers): relative L2 0.65e-6 .. 2.1e-6 per item and max abs error 1.0e-6 .. 3.3e-6 (at most
 * 2.3e-6 of the batch's max|ref|) over all configs, i.e. float32 rounding through ~20 layers. The t=999 item is no worse than t=17.5: the
 * float32 sinusoid arguments diffusers and the library use (t * frequency rounded to float)
 * differ from the exact ones here by a few 1e-5 rad on the fastest frequencies, which the
 * time MLP damps below the float32 noise.
 *
 * TOL_L2 = 1e-5 leaves ~5x over the worst measured value and TOL_MAX = 2e-5 ~8x, for other
 * kernels' summation orders (NEON, FMA or not). They are kept this tight on purpose: the
 * smallest deliberate deviations tried while writing this test (Transformer2DModel's GroupNorm
 * eps 1e-5 instead of 1e-6, the LayerNorms' 1e-6 instead of 1e-5) move the output by only
 * 1.1e-5 .. 2.8e-5 relative L2, and the option checks below need their effect to stand out;
 * structural mistakes (GEGLU halves swapped, another attention scale, an upsampling off by a
 * row) give 2e-2 .. 0.6. */
#define TOL_MAX 2e-5
#define TOL_ABS 1e-6
#define TOL_L2 1e-5
/* A changed option must move the reference by this many times TOL_L2 for the comparison to
 * count as covering it. */
#define DETECT 100.0

typedef struct case_run {
  model m;
  weights ws;
  inputs in;
  float *out;  /* the library's prediction */
  double *ref; /* the reference's */
  size_t count;
} case_run;

static int within_tolerance(errors e) {
  return e.out_nonfinite == 0 && e.ref_nonfinite == 0 && e.max_abs <= TOL_MAX * e.max_ref + TOL_ABS &&
         e.rel_l2 <= TOL_L2;
}

static void run_case(case_run *c, const model *m) {
  memset(c, 0, sizeof *c);
  c->m = *m;
  state_dict(&c->ws, m);
  c->in = make_inputs(m);
  c->count = (size_t)BATCH * m->out_ch * m->h * m->w;
  c->ref = reference_predict(m, &c->ws, &c->in);
  c->out = library_predict(m, &c->ws, &c->in);
  /* The reference must be finite and say something: not all zeros, and not the same for
   * both items (they differ in timestep, text and latents). */
  size_t ref_bad = 0;
  double ref_max = 0, item_diff = 0;
  size_t per = c->count / BATCH;
  for (size_t i = 0; i < c->count; i++) {
    if (!isfinite(c->ref[i])) {
      ref_bad++;
      continue;
    }
    if (fabs(c->ref[i]) > ref_max) ref_max = fabs(c->ref[i]);
    if (i < per && isfinite(c->ref[i + per])) item_diff += fabs(c->ref[i] - c->ref[i + per]);
  }
  CHECK_MSG(ref_bad == 0, "%s: %zu non-finite reference values", m->name, ref_bad);
  CHECK_MSG(ref_max > 1e-2, "%s: the reference is (nearly) all zeros: max %g", m->name, ref_max);
  CHECK_MSG(item_diff > 1e-2 * per * ref_max, "%s: the batch items' references barely differ", m->name);
  if (c->out == NULL) return;
  errors r = measure(c->out, c->ref, c->count);
  for (int b = 0; b < BATCH; b++) {
    errors eb = measure(c->out + b * per, c->ref + b * per, per);
    printf("  %-28s item %d (t=%6.1f): max|ref| %.4f, max abs err %.3g, rel L2 %.3g, non-finite %zu\n", m->name, b,
           (double)TIMESTEPS[b], eb.max_ref, eb.max_abs, eb.rel_l2, eb.out_nonfinite);
  }
  CHECK_MSG(r.out_nonfinite == 0, "%s: %zu non-finite values in the library's output", m->name, r.out_nonfinite);
  CHECK_MSG(within_tolerance(r), "%s: max abs err %.3g (allowed %.3g), rel L2 %.3g (allowed %.3g)", m->name,
            r.max_abs, TOL_MAX * r.max_ref + TOL_ABS, r.rel_l2, TOL_L2);
}

static void free_case(case_run *c) {
  weights_free(&c->ws);
  free(c->in.x);
  free(c->in.text);
  free(c->out);
  free(c->ref);
}

/* The reference with one option changed (same weights) must be far from the library's output:
 * the comparison above would have caught a library that ignored the option. */
static void check_detects(const case_run *c, const char *what, const model *changed) {
  if (c->out == NULL) return;
  double *alt = reference_predict(changed, &c->ws, &c->in);
  errors e = measure(c->out, alt, c->count);
  printf("  %-28s with %-34s: rel L2 from the library %.3g\n", c->m.name, what, e.rel_l2);
  CHECK_MSG(e.rel_l2 > DETECT * TOL_L2, "%s: %s changes the reference by only %.3g", c->m.name, what, e.rel_l2);
  free(alt);
}

/* Two library outputs for configs that differ in one option must differ well beyond TOL_L2. */
static void check_differ(const case_run *a, const case_run *b, const char *what) {
  if (a->out == NULL || b->out == NULL || a->count != b->count) return;
  double se = 0, sa = 0;
  size_t bad = 0;
  for (size_t i = 0; i < a->count; i++) {
    if (!isfinite(a->out[i]) || !isfinite(b->out[i])) {
      bad++;
      continue;
    }
    double d = (double)a->out[i] - (double)b->out[i];
    se += d * d;
    sa += (double)a->out[i] * a->out[i];
  }
  double rel = sa > 0 ? sqrt(se / sa) : 0;
  printf("  %-28s vs %-28s (%s): rel L2 %.3g\n", a->m.name, b->m.name, what, rel);
  CHECK_MSG(bad == 0 && rel > DETECT * TOL_L2, "%s vs %s: %s changed the output by only %.3g (%zu non-finite)",
            a->m.name, b->m.name, what, rel, bad);
}

int main(void) {
  CHECK(sf_context_create(&ctx) == SF_OK);
  CHECK(sf_context_set_int(ctx, SF_PARAM_THREADS, 1) == SF_OK);
  double t0 = now_s();

  /* test_unet.c's VARIANT_CONFIG with downsample_padding 1 and 0. */
  model v1 = VARIANT, v0 = VARIANT;
  v1.name = "variant_pad1";
  v0.name = "variant_pad0";
  v0.ds_pad = 0;
  case_run variant1, variant0;
  run_case(&variant1, &v1);
  run_case(&variant0, &v0);
  check_differ(&variant1, &variant0, "downsample_padding");
  {
    model x = v1;
    x.ds_pad = 0;
    check_detects(&variant1, "downsample_padding 0", &x);
    x = v1;
    x.flip = 1;
    check_detects(&variant1, "flip_sin_to_cos true", &x);
    x = v1;
    x.freq_shift = 0;
    check_detects(&variant1, "freq_shift 0", &x);
    x = v1;
    x.center = 0;
    check_detects(&variant1, "center_input_sample false", &x);
    x = v1;
    x.mid_scale = 1;
    check_detects(&variant1, "mid_block_scale_factor 1", &x);
    x = v1;
    x.temb_act = ACT_NULL;
    check_detects(&variant1, "time_embedding_act_fn null", &x);
    x = v1;
    x.post_act = ACT_NULL;
    check_detects(&variant1, "timestep_post_act null", &x);
    x = v1;
    x.heads[0] = 5; /* 16 // 5 * 5 = 15 = 16 // 3 * 3: same shapes, other heads (stage 1 has depth 0) */
    check_detects(&variant1, "attention_head_dim [5, 4]", &x);
  }
  free_case(&variant1);
  free_case(&variant0);

  case_run conv;
  run_case(&conv, &CONV_PROJ);
  {
    model x = CONV_PROJ;
    x.eps = 1e-5;
    check_detects(&conv, "norm_eps 1e-5", &x);
    x = CONV_PROJ;
    for (int i = 0; i < x.n; i++) x.heads[i] = 2;
    check_detects(&conv, "attention_head_dim 2", &x);
  }
  free_case(&conv);

  case_run only;
  run_case(&only, &ONLY_CROSS);
  {
    model x = ONLY_CROSS;
    x.heads[0] = 4; /* same shapes; also what an up path that did not reverse the list would use */
    x.heads[1] = 2;
    check_detects(&only, "attention_head_dim [4, 2]", &x);
  }
  free_case(&only);

  case_run depth0;
  run_case(&depth0, &DEPTH0);
  {
    model x = DEPTH0;
    x.heads[1] = 5; /* 32 // 5 * 5 = 30 = 32 // 3 * 3 */
    check_detects(&depth0, "attention_head_dim [2, 5]", &x);
  }
  free_case(&depth0);

  model mr = MID_BASE, mn = MID_BASE, ma = MID_BASE;
  mr.name = "mid_resnet";
  mn.name = "mid_null";
  mn.mid = MID_NULL;
  ma.name = "mid_absent(crossattn)";
  ma.mid = MID_ABSENT;
  case_run mid_r, mid_n, mid_a;
  run_case(&mid_r, &mr);
  run_case(&mid_n, &mn);
  run_case(&mid_a, &ma);
  check_differ(&mid_r, &mid_n, "mid_block_type");
  check_differ(&mid_a, &mid_n, "mid_block_type");
  check_differ(&mid_a, &mid_r, "mid_block_type");
  {
    model x = mr;
    x.mid_scale = 1;
    check_detects(&mid_r, "mid_block_scale_factor 1", &x);
  }
  free_case(&mid_r);
  free_case(&mid_n);
  free_case(&mid_a);

  printf("total %.2f s\n", now_s() - t0);
  sf_context_destroy(ctx);
  TEST_MAIN_END();
}
