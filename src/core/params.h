#ifndef SF_CORE_PARAMS_H
#define SF_CORE_PARAMS_H

#include "snapfusion.h"

/* Lookups with a default, for consumers of a (possibly NULL) sf_params. */
int64_t sf_params_int_or(const sf_params *p, sf_param key, int64_t dflt);
double sf_params_float_or(const sf_params *p, sf_param key, double dflt);
const char *sf_params_string_or(const sf_params *p, sf_param key, const char *dflt);
int sf_params_has(const sf_params *p, sf_param key);

/* The key under which sf_params_set_init_image stores its image (internal: the image has its
 * own setter). Kept outside every range the public enums use or will grow into (100s: load,
 * 200s: generation, 300s: arrays). */
#define SF_PARAM_INIT_IMAGE_KEY 0x7fff0001
/* NULL when unset. */
const float *sf_params_floats(const sf_params *p, sf_param_array key, size_t *count);
/* Packed RGB8 (width*3 per row); NULL when unset. */
const uint8_t *sf_params_init_image(const sf_params *p, size_t *width, size_t *height);

#endif
