/* The diffusers configs of a single-file checkpoint's networks, inferred from its tensors (under
 * the diffusers names io/ldm_keys.h gives them) for checkpoints given without a config folder.
 * What the shapes tell is taken from them: channels per level, layers per block, which levels
 * have attention, transformer depth, linear or 1x1-conv projections, cross-attention width,
 * in/out/latent channels, the text encoder's width, depth, MLP width, vocabulary and positions.
 * What they cannot tell is SD-1.x's (v1-inference.yaml / SD-1.5's diffusers configs): 8 UNet
 * attention heads, 12 text heads, GroupNorm groups 32, eps 1e-5, quick-GELU, SiLU, VAE scaling
 * factor 0.18215, sample sizes 64 / 512. A layout SD-1.x's rules do not describe (levels with
 * different layer counts, mixed transformer depths, channels not divisible into 32 groups, ...)
 * is SF_ERR_UNSUPPORTED saying to give a config folder (SF_PARAM_CONFIG_PATH). */
#ifndef SF_IO_LDM_CONFIG_H
#define SF_IO_LDM_CONFIG_H

#include "core/diag.h"
#include "io/model_folder.h"

/* A malloc'd JSON text, or NULL with d set. */
char *sf_ldm_unet_config(const sf_weights *w, sf_diag *d);
char *sf_ldm_vae_config(const sf_weights *w, sf_diag *d);
char *sf_ldm_text_config(const sf_weights *w, sf_diag *d);

#endif
