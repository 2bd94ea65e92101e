/* LoRA files merged into a pipeline's weights at load: kohya/A1111 (`lora_unet_<module with _>`,
 * `lora_te_<module>`, `.lora_down.weight` / `.lora_up.weight` / `.alpha`) and diffusers/PEFT
 * (`unet.<module>.lora_A.weight` / `.lora_B.weight`, `text_encoder.<module>...`, optional
 * `.alpha`). For every module a LoRA names, W' = W + sum over LoRAs of scale * alpha/rank * up @ down
 * (PEFT without alpha: factor 1), convolutions dW[o,i,:,:] = sum_r up[o,r] * down[r,i,:,:],
 * computed in float64 from the files' tensors and rounded to float32 once.
 *
 * A set is opened from the SF_PARAM_LORAS text (one LoRA a line: PATH or PATH<TAB>SCALE), then
 * bound to each component's checkpoint (names and shapes only, nothing read), then merged into
 * each weight tensor as the network builders fetch it (sf_lora_merge, a graph/wsrc.h merge hook):
 * layer by layer, so merging adds no more than one layer's staging to a load's peak. The set keeps
 * its files mapped while the pipeline lives (low-memory loads build networks again per run). */
#ifndef SF_LORA_LORA_H
#define SF_LORA_LORA_H

#include <pthreadpool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/diag.h"
#include "io/model_folder.h"

typedef struct sf_lora_set sf_lora_set;

/* The components a LoRA may touch. */
typedef enum sf_lora_component { SF_LORA_UNET = 0, SF_LORA_TEXT_ENCODER = 1, SF_LORA_COMPONENTS = 2 } sf_lora_component;

/* Parses spec (lines "PATH" or "PATH\tSCALE"; empty lines skipped; scale a finite decimal number,
 * default 1) and maps every file, checking that each tensor is a LoRA tensor of a known format
 * with consistent up/down/alpha shapes (an error names the file and the key). NULL on failure
 * (d set). A spec without any LoRA gives an empty set. */
sf_lora_set *sf_lora_set_open(const char *spec, sf_diag *d);
void sf_lora_set_close(sf_lora_set *set);
size_t sf_lora_count(const sf_lora_set *set);
/* The i-th LoRA's path as given, and its scale. */
const char *sf_lora_path(const sf_lora_set *set, size_t i);
double sf_lora_scale(const sf_lora_set *set, size_t i);
/* Modules of the i-th LoRA (all components). */
size_t sf_lora_module_count(const sf_lora_set *set, size_t i);

/* Binds every module of the set that belongs to component comp to a tensor of its checkpoint w
 * (kohya names are matched against w's module names with '.' read as '_'; a name that two modules
 * share is an error), checking shapes against it. Any module of comp that matches no tensor,
 * or whose up/down shapes do not fit it, is an error naming the LoRA file and key. */
sf_status sf_lora_bind(sf_lora_set *set, sf_lora_component comp, const sf_weights *w, sf_diag *d);
/* Modules of comp no bind has placed (for a component that is not loaded: the caller says so). */
size_t sf_lora_unbound(const sf_lora_set *set, sf_lora_component comp);
/* Tensors that bound modules change. */
size_t sf_lora_target_count(const sf_lora_set *set);

/* Merge hook for graph/wsrc.h: user = an sf_lora_binding (set + component). Adds the deltas of
 * tensor `name` (if any LoRA module targets it) to values, which hold the tensor (its shape as
 * fetched). 1 on success, 0 on failure (d set). */
typedef struct sf_lora_binding {
  const sf_lora_set *set;
  sf_lora_component comp;
} sf_lora_binding;
int sf_lora_merge(void *binding, const char *name, float *values, int ndim, const int64_t *shape, pthreadpool_t pool,
                  sf_diag *d);

#endif
