/* The key layout of original (LDM/CompVis) Stable Diffusion checkpoints, as the single-file
 * `.safetensors` files people share hold it, translated to the diffusers names the builders ask
 * for. Written from the layout's definition (ldm's openaimodel.py UNetModel, autoencoder.py
 * Encoder/Decoder, the CLIP text transformer) with diffusers' conversion scripts as the reference
 * read:
 *
 *   model.diffusion_model.*           UNet          time_embed.{0,2} -> time_embedding.linear_{1,2},
 *     input_blocks.0.0 -> conv_in, input_blocks.K.0 / .1 -> down_blocks.L.resnets.J / attentions.J,
 *     input_blocks.K.0.op -> down_blocks.L.downsamplers.0.conv (K counts blocks across levels; a
 *     downsampler ends a level), middle_block.I -> mid_block.resnets / attentions in order,
 *     output_blocks.K.0 / .1 -> up_blocks.U.resnets.J / attentions.J, output_blocks.K.I.conv ->
 *     up_blocks.U.upsamplers.0.conv (an upsampler ends a level), out.{0,2} -> conv_norm_out /
 *     conv_out; inside resnets in_layers.{0,2} -> norm1 / conv1, emb_layers.1 -> time_emb_proj,
 *     out_layers.{0,3} -> norm2 / conv2, skip_connection -> conv_shortcut; attention blocks keep
 *     their names (norm, proj_in, transformer_blocks.N.*, proj_out).
 *   first_stage_model.*               VAE           encoder.down.I.block.J -> encoder.down_blocks.I.
 *     resnets.J, .downsample -> downsamplers.0, decoder.up.I -> decoder.up_blocks.(levels-1-I),
 *     .upsample -> upsamplers.0, mid.block_{1,2} -> mid_block.resnets.{0,1}, mid.attn_1.{norm,q,k,
 *     v,proj_out} -> mid_block.attentions.0.{group_norm,to_q,to_k,to_v,to_out.0} (q/k/v/proj_out are
 *     1x1 convolutions [C,C,1,1] in the file, linear [C,C] to us: the same values, reshaped),
 *     norm_out -> conv_norm_out, nin_shortcut -> conv_shortcut.
 *   cond_stage_model.transformer.*    text encoder  transformers' CLIPTextModel names (text_model.*;
 *     files written by older transformers lack "text_model.", which is added).
 *   model_ema.*                       the UNet's EMA copy: model.diffusion_model.A.B.C is
 *     model_ema.diffusion_modelABC (dots dropped); model_ema.decay / num_updates are counters.
 *   betas, alphas_cumprod, ...        the training scheduler's buffers (not weights).
 *
 * Anything else is not this layout, and an error naming the key. */
#ifndef SF_IO_LDM_KEYS_H
#define SF_IO_LDM_KEYS_H

#include <stddef.h>

#include "core/diag.h"

typedef enum sf_ldm_part {
  SF_LDM_UNKNOWN = 0,
  SF_LDM_UNET,    /* model.diffusion_model.* */
  SF_LDM_VAE,     /* first_stage_model.* */
  SF_LDM_TEXT,    /* cond_stage_model.transformer.* */
  SF_LDM_EMA,     /* model_ema.* weights */
  SF_LDM_IGNORED  /* scheduler buffers, EMA counters: not weights */
} sf_ldm_part;

sf_ldm_part sf_ldm_classify(const char *key);
/* The file key prefixes of the three components ("model.diffusion_model." ...). */
const char *sf_ldm_prefix(sf_ldm_part part);

/* One translated key: the diffusers name, and whether a [C,C,1,1] tensor is read as [C,C]. */
typedef struct sf_ldm_name {
  char *name; /* malloc'd */
  int squeeze;
} sf_ldm_name;

/* The diffusers names of every key of one component (full file keys of part SF_LDM_UNET,
 * SF_LDM_VAE or SF_LDM_TEXT; the UNet's and VAE's block numbering is worked out over all of them).
 * out[0..n) receives malloc'd names (free with sf_ldm_names_free, also after a failure).
 * SF_ERR_BAD_MODEL naming the key that fits no place of the layout; SF_ERR_OUT_OF_MEMORY. */
sf_status sf_ldm_map(sf_ldm_part part, const char *const *keys, size_t n, sf_ldm_name *out, sf_diag *d);
void sf_ldm_names_free(sf_ldm_name *names, size_t n);

/* The model_ema.* key holding the EMA copy of a model.diffusion_model.* key (malloc'd; NULL when
 * out of memory). */
char *sf_ldm_ema_key(const char *unet_key);

#endif
