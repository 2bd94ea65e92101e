#include "io/ldm_config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LEVELS 16
#define MAX_COUNT 256

/* SD-1.x's values for what shapes cannot tell. */
#define SD_UNET_HEADS 8
#define SD_TEXT_HEADS 12
#define SD_GROUPS 32

typedef struct text_buf {
  char *s;
  size_t len, cap;
  int oom;
} text_buf;

static void put(text_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text_buf *b, const char *fmt, ...) {
  if (b->oom) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) {
    b->oom = 1;
    return;
  }
  if (b->len + (size_t)n + 1 > b->cap) {
    size_t cap = (b->len + (size_t)n + 1) * 2;
    char *s = realloc(b->s, cap);
    if (s == NULL) {
      b->oom = 1;
      return;
    }
    b->s = s;
    b->cap = cap;
  }
  va_start(ap, fmt);
  vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

static char *finish(text_buf *b, sf_diag *d) {
  if (b->oom) {
    free(b->s);
    sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "out of memory");
    return NULL;
  }
  return b->s;
}

static const sf_st_tensor *find(const sf_weights *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const sf_st_tensor *find(const sf_weights *w, const char *fmt, ...) {
  char name[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(name, sizeof name, fmt, ap);
  va_end(ap);
  return sf_weights_find(w, name);
}

/* Count of consecutive indices i = 0.. for which the tensor named by fmt (with one %d) exists. */
#define COUNT(w, ...) count_of(w, __VA_ARGS__)
static int count_of(const sf_weights *w, const char *fmt, ...) {
  char pattern[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(pattern, sizeof pattern, fmt, ap); /* leaves "%%d" as "%d" */
  va_end(ap);
  int n = 0;
  while (n < MAX_COUNT) {
    char name[300];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    snprintf(name, sizeof name, pattern, n);
#pragma GCC diagnostic pop
    if (sf_weights_find(w, name) == NULL) break;
    n++;
  }
  return n;
}

static sf_status need_config(sf_diag *d, const char *what, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static sf_status need_config(sf_diag *d, const char *what, const char *fmt, ...) {
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return sf_diag_set(d, SF_ERR_UNSUPPORTED,
                     "%s: %s: not an SD-1.x layout whose config can be inferred; give its diffusers config folder "
                     "(SF_PARAM_CONFIG_PATH, --config DIR)",
                     what, msg);
}

static void put_list(text_buf *b, const int *v, int n) {
  put(b, "[");
  for (int i = 0; i < n; i++) put(b, "%s%d", i ? ", " : "", v[i]);
  put(b, "]");
}

char *sf_ldm_unet_config(const sf_weights *w, sf_diag *d) {
  const char *what = "UNet (model.diffusion_model.*)";
  const sf_st_tensor *cin = find(w, "conv_in.weight"), *cout = find(w, "conv_out.weight");
  if (cin == NULL || cin->ndim != 4 || cout == NULL || cout->ndim != 4) {
    need_config(d, what, "no 4-d conv_in / conv_out weights (input_blocks.0.0, out.2)");
    return NULL;
  }
  int levels = COUNT(w, "down_blocks.%%d.resnets.0.conv1.weight");
  if (levels < 1 || levels > MAX_LEVELS || COUNT(w, "up_blocks.%%d.resnets.0.conv1.weight") != levels) {
    need_config(d, what, "%d down levels and %d up levels", levels, COUNT(w, "up_blocks.%%d.resnets.0.conv1.weight"));
    return NULL;
  }
  int ch[MAX_LEVELS], attn_down[MAX_LEVELS], attn_up[MAX_LEVELS];
  int layers = COUNT(w, "down_blocks.0.resnets.%%d.conv1.weight");
  int depth = -1, linear = -1, cross = -1;
  for (int i = 0; i < levels; i++) {
    const sf_st_tensor *t = find(w, "down_blocks.%d.resnets.0.conv1.weight", i);
    ch[i] = (int)t->shape[0];
    if (ch[i] % SD_GROUPS != 0) {
      need_config(d, what, "level %d has %d channels (not divisible into %d groups)", i, ch[i], SD_GROUPS);
      return NULL;
    }
    int nd = COUNT(w, "down_blocks.%d.resnets.%%d.conv1.weight", i);
    int nu = COUNT(w, "up_blocks.%d.resnets.%%d.conv1.weight", i);
    if (nd != layers || nu != layers + 1) {
      need_config(d, what, "down level %d has %d resnets, up level %d has %d (SD-1.x: the same count, and one more "
                  "going up)", i, nd, i, nu);
      return NULL;
    }
    attn_down[i] = COUNT(w, "down_blocks.%d.attentions.%%d.proj_in.weight", i);
    attn_up[i] = COUNT(w, "up_blocks.%d.attentions.%%d.proj_in.weight", i);
    if ((attn_down[i] != 0 && attn_down[i] != nd) || (attn_up[i] != 0 && attn_up[i] != nu)) {
      need_config(d, what, "level %d has attention after only some of its resnets", i);
      return NULL;
    }
  }
  /* every transformer: its depth, projection kind and cross-attention width */
  for (int pass = 0; pass < 3; pass++) {
    int n_levels = pass < 2 ? levels : 1;
    for (int i = 0; i < n_levels; i++) {
      int n = pass == 0 ? attn_down[i] : pass == 1 ? attn_up[i] : COUNT(w, "mid_block.attentions.%%d.proj_in.weight");
      for (int j = 0; j < n; j++) {
        char pre[96];
        if (pass == 0) snprintf(pre, sizeof pre, "down_blocks.%d.attentions.%d", i, j);
        else if (pass == 1) snprintf(pre, sizeof pre, "up_blocks.%d.attentions.%d", i, j);
        else snprintf(pre, sizeof pre, "mid_block.attentions.%d", j);
        int dp = COUNT(w, "%s.transformer_blocks.%%d.attn1.to_q.weight", pre);
        const sf_st_tensor *pin = find(w, "%s.proj_in.weight", pre);
        const sf_st_tensor *k2 = find(w, "%s.transformer_blocks.0.attn2.to_k.weight", pre);
        int lin = pin->ndim == 2;
        int cr = k2 && k2->ndim == 2 ? (int)k2->shape[1] : -1;
        if ((depth >= 0 && dp != depth) || (linear >= 0 && lin != linear) || (cross >= 0 && cr != cross) || dp < 1 ||
            cr < 1) {
          need_config(d, what, "%s differs from the other transformers (depth %d, %s projections, context %d)", pre,
                      dp, lin ? "linear" : "1x1-conv", cr);
          return NULL;
        }
        depth = dp, linear = lin, cross = cr;
      }
    }
  }
  if (depth < 0) {
    need_config(d, what, "no attention block (no cross-attention width to infer)");
    return NULL;
  }
  int mid_attn = find(w, "mid_block.attentions.0.proj_in.weight") != NULL;
  int mid_res = find(w, "mid_block.resnets.0.conv1.weight") != NULL;
  text_buf b = {0};
  put(&b, "{\"_class_name\": \"UNet2DConditionModel\", \"act_fn\": \"silu\", \"attention_head_dim\": %d, ",
      SD_UNET_HEADS);
  put(&b, "\"block_out_channels\": ");
  put_list(&b, ch, levels);
  put(&b, ", \"center_input_sample\": false, \"cross_attention_dim\": %d, \"down_block_types\": [", cross);
  for (int i = 0; i < levels; i++) put(&b, "%s\"%s\"", i ? ", " : "", attn_down[i] ? "CrossAttnDownBlock2D" : "DownBlock2D");
  put(&b, "], \"downsample_padding\": 1, \"flip_sin_to_cos\": true, \"freq_shift\": 0, \"in_channels\": %d, ",
      (int)cin->shape[1]);
  put(&b, "\"layers_per_block\": %d, \"mid_block_scale_factor\": 1, \"mid_block_type\": %s, ", layers,
      mid_attn ? "\"UNetMidBlock2DCrossAttn\"" : mid_res ? "\"UNetMidBlock2D\"" : "null");
  put(&b, "\"norm_eps\": 1e-05, \"norm_num_groups\": %d, \"out_channels\": %d, \"sample_size\": 64, ", SD_GROUPS,
      (int)cout->shape[0]);
  put(&b, "\"transformer_layers_per_block\": %d, \"up_block_types\": [", depth);
  for (int u = 0; u < levels; u++) put(&b, "%s\"%s\"", u ? ", " : "", attn_up[u] ? "CrossAttnUpBlock2D" : "UpBlock2D");
  put(&b, "], \"use_linear_projection\": %s}", linear ? "true" : "false");
  return finish(&b, d);
}

char *sf_ldm_vae_config(const sf_weights *w, sf_diag *d) {
  const char *what = "VAE (first_stage_model.*)";
  int levels = COUNT(w, "decoder.up_blocks.%%d.resnets.0.conv1.weight");
  int enc_levels = COUNT(w, "encoder.down_blocks.%%d.resnets.0.conv1.weight");
  const sf_st_tensor *dcin = find(w, "decoder.conv_in.weight"), *dcout = find(w, "decoder.conv_out.weight");
  const sf_st_tensor *ecin = find(w, "encoder.conv_in.weight");
  if (levels < 1 || levels > MAX_LEVELS || dcin == NULL || dcin->ndim != 4 || dcout == NULL || dcout->ndim != 4 ||
      (enc_levels != 0 && enc_levels != levels)) {
    need_config(d, what, "a decoder of %d levels and an encoder of %d", levels, enc_levels);
    return NULL;
  }
  int ch[MAX_LEVELS];
  int layers = COUNT(w, "decoder.up_blocks.0.resnets.%%d.conv1.weight") - 1;
  for (int i = 0; i < levels; i++) {
    ch[i] = (int)find(w, "decoder.up_blocks.%d.resnets.0.conv1.weight", levels - 1 - i)->shape[0];
    if (ch[i] % SD_GROUPS != 0) {
      need_config(d, what, "level %d has %d channels (not divisible into %d groups)", i, ch[i], SD_GROUPS);
      return NULL;
    }
    if (COUNT(w, "decoder.up_blocks.%d.resnets.%%d.conv1.weight", i) != layers + 1 ||
        (enc_levels && COUNT(w, "encoder.down_blocks.%d.resnets.%%d.conv1.weight", i) != layers)) {
      need_config(d, what, "level %d's resnet count differs from the others", i);
      return NULL;
    }
  }
  int mid_attn = find(w, "decoder.mid_block.attentions.0.to_q.weight") != NULL;
  text_buf b = {0};
  put(&b, "{\"_class_name\": \"AutoencoderKL\", \"act_fn\": \"silu\", \"block_out_channels\": ");
  put_list(&b, ch, levels);
  put(&b, ", \"down_block_types\": [");
  for (int i = 0; i < levels; i++) put(&b, "%s\"DownEncoderBlock2D\"", i ? ", " : "");
  put(&b, "], \"in_channels\": %d, \"latent_channels\": %d, \"layers_per_block\": %d, ",
      ecin && ecin->ndim == 4 ? (int)ecin->shape[1] : 3, (int)dcin->shape[1], layers);
  put(&b, "\"mid_block_add_attention\": %s, \"norm_num_groups\": %d, \"out_channels\": %d, \"sample_size\": 512, ",
      mid_attn ? "true" : "false", SD_GROUPS, (int)dcout->shape[0]);
  put(&b, "\"scaling_factor\": 0.18215, \"up_block_types\": [");
  for (int i = 0; i < levels; i++) put(&b, "%s\"UpDecoderBlock2D\"", i ? ", " : "");
  put(&b, "], \"use_post_quant_conv\": %s, \"use_quant_conv\": %s}",
      find(w, "post_quant_conv.weight") ? "true" : "false", find(w, "quant_conv.weight") ? "true" : "false");
  return finish(&b, d);
}

char *sf_ldm_text_config(const sf_weights *w, sf_diag *d) {
  const char *what = "text encoder (cond_stage_model.transformer.*)";
  const sf_st_tensor *tok = find(w, "text_model.embeddings.token_embedding.weight");
  const sf_st_tensor *pos = find(w, "text_model.embeddings.position_embedding.weight");
  const sf_st_tensor *fc1 = find(w, "text_model.encoder.layers.0.mlp.fc1.weight");
  int layers = COUNT(w, "text_model.encoder.layers.%%d.self_attn.q_proj.weight");
  if (tok == NULL || tok->ndim != 2 || pos == NULL || pos->ndim != 2 || fc1 == NULL || fc1->ndim != 2 || layers < 1) {
    need_config(d, what, "no token / position embeddings or no encoder layer 0");
    return NULL;
  }
  if (tok->shape[1] % SD_TEXT_HEADS != 0) {
    need_config(d, what, "width %lld does not divide into %d heads", (long long)tok->shape[1], SD_TEXT_HEADS);
    return NULL;
  }
  text_buf b = {0};
  put(&b, "{\"architectures\": [\"CLIPTextModel\"], \"bos_token_id\": 0, \"eos_token_id\": 2, \"hidden_act\": "
          "\"quick_gelu\", \"hidden_size\": %lld, \"intermediate_size\": %lld, \"layer_norm_eps\": 1e-05, ",
      (long long)tok->shape[1], (long long)fc1->shape[0]);
  put(&b, "\"max_position_embeddings\": %lld, \"model_type\": \"clip_text_model\", \"num_attention_heads\": %d, "
          "\"num_hidden_layers\": %d, \"pad_token_id\": 1, \"vocab_size\": %lld}",
      (long long)pos->shape[0], SD_TEXT_HEADS, layers, (long long)tok->shape[0]);
  return finish(&b, d);
}
