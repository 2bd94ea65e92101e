#ifndef SF_CORE_PARAMS_H
#define SF_CORE_PARAMS_H

#include "snapfusion.h"

/* The parameter bag's storage (the public sf_params_* functions are in api/params.c). */
typedef enum { SF_PV_INT = 1, SF_PV_FLOAT, SF_PV_STRING, SF_PV_FLOATS, SF_PV_IMAGE } sf_param_kind;

typedef struct sf_param_entry {
  sf_param key;
  sf_param_kind kind;
  int64_t i;
  double f;
  char *s;
  float *floats;     /* SF_PV_FLOATS; SF_PV_IMAGE: none */
  uint8_t *pixels;   /* SF_PV_IMAGE: packed RGB8 */
  size_t count;      /* floats, or image width */
  size_t height;
} sf_param_entry;

struct sf_params {
  sf_param_entry *items;
  size_t n, cap;
};

/* The type every key takes (0: not a key). */
sf_param_kind sf_param_kind_of(sf_param key);
const char *sf_param_kind_name(sf_param_kind k);
/* The entry of key, or NULL (also for a NULL p). */
sf_param_entry *sf_params_find(const sf_params *p, sf_param key);

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
