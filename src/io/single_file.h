/* A single-file checkpoint (one .safetensors in the original LDM/CompVis layout, io/ldm_keys.h)
 * opened as a model folder: each component it holds (UNet, VAE, text encoder) becomes a
 * component whose weights are views of the file's tensors under diffusers names, so the
 * builders and the weight source read it exactly as a folder's checkpoint (F16 tensors stay
 * F16: the default weight policy keeps them as f16 weights, as for a folder's fp16 variant).
 *
 * Configs come from config_dir (a diffusers folder; its weight files are not opened; components
 * the file does not hold are left out, and a component the file holds that the folder lacks is an
 * error) or, without one, are inferred from the shapes (io/ldm_config.h); a file without a
 * config folder has no tokenizer and no scheduler config (SD-1.5's is then used).
 *
 * The UNet's EMA copy (model_ema.*) is taken when the file holds one; the component's note says
 * which weights were taken. PyTorch pickles (.ckpt, .pt, .pth, .bin, or a zip/pickle file) are
 * refused with SF_ERR_UNSUPPORTED before anything is read beyond their first bytes. */
#ifndef SF_IO_SINGLE_FILE_H
#define SF_IO_SINGLE_FILE_H

#include "core/diag.h"
#include "io/model_folder.h"
#include "io/vfs.h"

/* config_dir: NULL or a folder in the file system. flags: SF_FOLDER_* for the config folder. */
sf_model_folder *sf_single_file_open(const sf_vfs *fs, const char *path, const char *config_dir, unsigned flags,
                                     sf_diag *d);
/* Whether path looks like a checkpoint file rather than a folder: a regular file of fs. */
int sf_single_file_is(const sf_vfs *fs, const char *path);

#endif
