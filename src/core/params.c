#include "core/params.h"

#include <stdlib.h>
#include <string.h>

#include "core/context.h"

typedef enum { KIND_INT = 1, KIND_FLOAT, KIND_STRING, KIND_FLOATS, KIND_IMAGE } value_kind;

typedef struct {
  sf_param key;
  value_kind kind;
  int64_t i;
  double f;
  char *s;
  float *floats;     /* KIND_FLOATS; KIND_IMAGE: none */
  uint8_t *pixels;   /* KIND_IMAGE: packed RGB8 */
  size_t count;      /* floats, or image width */
  size_t height;
} entry;

struct sf_params {
  entry *items;
  size_t n, cap;
};

/* The type of every key: setting a key with another type is a caller bug we report. */
static value_kind kind_of(sf_param key) {
  switch (key) {
    case SF_PARAM_THREADS:
    case SF_PARAM_LOG_LEVEL:
    case SF_PARAM_RANDOM_WEIGHTS:
    case SF_PARAM_RANDOM_SEED:
    case SF_PARAM_INSPECT_ONLY:
    case SF_PARAM_COMPONENTS:
    case SF_PARAM_WIDTH:
    case SF_PARAM_HEIGHT:
    case SF_PARAM_STEPS:
    case SF_PARAM_SEED:
    case SF_PARAM_SAMPLER:
    case SF_PARAM_KARRAS_SIGMAS:
    case SF_PARAM_CLIP_SKIP:
    case SF_PARAM_BATCH_COUNT:
    case SF_PARAM_PREDICTION_TYPE:
    case SF_PARAM_DECODER:
    case SF_PARAM_TIMESTEP_SPACING:
      return KIND_INT;
    case SF_PARAM_GUIDANCE_SCALE:
    case SF_PARAM_STRENGTH:
    case SF_PARAM_ETA:
      return KIND_FLOAT;
    case SF_PARAM_VARIANT:
    case SF_PARAM_TAESD_PATH:
    case SF_PARAM_TOKENIZER_PATH:
    case SF_PARAM_PROMPT:
    case SF_PARAM_NEGATIVE_PROMPT:
      return KIND_STRING;
  }
  switch ((int)key) {
    case SF_PARAM_LATENTS:
    case SF_PARAM_PROMPT_EMBEDS:
    case SF_PARAM_NEGATIVE_EMBEDS:
      return KIND_FLOATS;
    case SF_PARAM_INIT_IMAGE_KEY:
      return KIND_IMAGE;
  }
  return 0;
}

static const char *kind_name(value_kind k) {
  switch (k) {
    case KIND_INT: return "int";
    case KIND_FLOAT: return "float";
    case KIND_STRING: return "string";
    case KIND_FLOATS: return "float array";
    case KIND_IMAGE: return "image";
  }
  return "?";
}

static void entry_free_values(entry *e) {
  free(e->s);
  free(e->floats);
  free(e->pixels);
  e->s = NULL;
  e->floats = NULL;
  e->pixels = NULL;
}

sf_status sf_params_create(sf_params **out_params) {
  if (out_params == NULL) return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_params_create: out_params is NULL");
  *out_params = calloc(1, sizeof **out_params);
  if (*out_params == NULL) return sf_ctx_error(NULL, SF_ERR_OUT_OF_MEMORY, "sf_params_create: out of memory");
  return SF_OK;
}

void sf_params_destroy(sf_params *params) {
  if (params == NULL) return;
  for (size_t i = 0; i < params->n; i++) entry_free_values(&params->items[i]);
  free(params->items);
  free(params);
}

static entry *find(const sf_params *p, sf_param key) {
  if (p == NULL) return NULL;
  for (size_t i = 0; i < p->n; i++)
    if (p->items[i].key == key) return &p->items[i];
  return NULL;
}

static sf_status slot(sf_params *p, sf_param key, value_kind want, entry **out) {
  if (p == NULL) return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_params: params is NULL");
  value_kind k = kind_of(key);
  if (k == 0) return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_params: unknown key %d", (int)key);
  if (k != want)
    return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_params: key %d takes a %s, not a %s", (int)key,
                        kind_name(k), kind_name(want));
  entry *e = find(p, key);
  if (e == NULL) {
    if (p->n == p->cap) {
      size_t cap = p->cap ? p->cap * 2 : 8;
      entry *items = realloc(p->items, cap * sizeof *items);
      if (items == NULL) return sf_ctx_error(NULL, SF_ERR_OUT_OF_MEMORY, "sf_params: out of memory");
      p->items = items;
      p->cap = cap;
    }
    e = &p->items[p->n++];
    memset(e, 0, sizeof *e);
    e->key = key;
    e->kind = k;
  }
  *out = e;
  return SF_OK;
}

sf_status sf_params_set_int(sf_params *params, sf_param key, int64_t value) {
  entry *e = NULL;
  sf_status s = slot(params, key, KIND_INT, &e);
  if (s == SF_OK) e->i = value;
  return s;
}

sf_status sf_params_set_float(sf_params *params, sf_param key, double value) {
  entry *e = NULL;
  sf_status s = slot(params, key, KIND_FLOAT, &e);
  if (s == SF_OK) e->f = value;
  return s;
}

sf_status sf_params_set_string(sf_params *params, sf_param key, const char *value) {
  if (value == NULL) return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_params_set_string: value is NULL (use sf_params_unset)");
  size_t len = strlen(value);
  char *copy = malloc(len + 1);
  if (copy == NULL) return sf_ctx_error(NULL, SF_ERR_OUT_OF_MEMORY, "sf_params: out of memory");
  memcpy(copy, value, len + 1);
  entry *e = NULL;
  sf_status s = slot(params, key, KIND_STRING, &e);
  if (s != SF_OK) {
    free(copy);
    return s;
  }
  entry_free_values(e);
  e->s = copy;
  return SF_OK;
}

sf_status sf_params_set_floats(sf_params *params, sf_param_array key, const float *values, size_t count) {
  if (values == NULL || count == 0)
    return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_params_set_floats: no values (use sf_params_unset)");
  if (count > ((size_t)1 << 32))
    return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_params_set_floats: %zu values is too many", count);
  float *copy = malloc(count * sizeof *copy);
  if (copy == NULL) return sf_ctx_error(NULL, SF_ERR_OUT_OF_MEMORY, "sf_params: out of memory");
  memcpy(copy, values, count * sizeof *copy);
  entry *e = NULL;
  sf_status s = slot(params, (sf_param)key, KIND_FLOATS, &e);
  if (s != SF_OK) {
    free(copy);
    return s;
  }
  entry_free_values(e);
  e->floats = copy;
  e->count = count;
  return SF_OK;
}

sf_status sf_params_set_init_image(sf_params *params, const uint8_t *rgb, uint32_t width, uint32_t height,
                                   size_t stride) {
  if (rgb == NULL || width == 0 || height == 0 || stride < (size_t)width * 3)
    return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT,
                        "sf_params_set_init_image: need pixels, a non-empty size and stride >= 3*width");
  if ((uint64_t)width * height > ((uint64_t)1 << 28))
    return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_params_set_init_image: %ux%u is too large", width, height);
  uint8_t *copy = malloc((size_t)width * height * 3);
  if (copy == NULL) return sf_ctx_error(NULL, SF_ERR_OUT_OF_MEMORY, "sf_params: out of memory");
  for (uint32_t y = 0; y < height; y++) memcpy(copy + (size_t)y * width * 3, rgb + y * stride, (size_t)width * 3);
  entry *e = NULL;
  sf_status s = slot(params, (sf_param)SF_PARAM_INIT_IMAGE_KEY, KIND_IMAGE, &e);
  if (s != SF_OK) {
    free(copy);
    return s;
  }
  entry_free_values(e);
  e->pixels = copy;
  e->count = width;
  e->height = height;
  return SF_OK;
}

const float *sf_params_floats(const sf_params *p, sf_param_array key, size_t *count) {
  const entry *e = find(p, (sf_param)key);
  if (e == NULL || e->kind != KIND_FLOATS) return NULL;
  *count = e->count;
  return e->floats;
}

const uint8_t *sf_params_init_image(const sf_params *p, size_t *width, size_t *height) {
  const entry *e = find(p, (sf_param)SF_PARAM_INIT_IMAGE_KEY);
  if (e == NULL || e->kind != KIND_IMAGE) return NULL;
  *width = e->count;
  *height = e->height;
  return e->pixels;
}

sf_status sf_params_unset(sf_params *params, sf_param key) {
  if (params == NULL) return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_params_unset: params is NULL");
  entry *e = find(params, key);
  if (e != NULL) {
    entry_free_values(e);
    *e = params->items[--params->n];
  }
  return SF_OK;
}

static sf_status get(const sf_params *p, sf_param key, value_kind want, const entry **out) {
  if (p == NULL) return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_params_get: params is NULL");
  const entry *e = find(p, key);
  if (e == NULL) return sf_ctx_error(NULL, SF_ERR_NOT_FOUND, "sf_params_get: key %d is not set", (int)key);
  if (e->kind != want)
    return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_params: key %d holds a %s, not a %s", (int)key,
                        kind_name(e->kind), kind_name(want));
  *out = e;
  return SF_OK;
}

sf_status sf_params_get_int(const sf_params *params, sf_param key, int64_t *out_value) {
  const entry *e = NULL;
  if (out_value == NULL) return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_params_get_int: out_value is NULL");
  sf_status s = get(params, key, KIND_INT, &e);
  if (s == SF_OK) *out_value = e->i;
  return s;
}

sf_status sf_params_get_float(const sf_params *params, sf_param key, double *out_value) {
  const entry *e = NULL;
  if (out_value == NULL) return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_params_get_float: out_value is NULL");
  sf_status s = get(params, key, KIND_FLOAT, &e);
  if (s == SF_OK) *out_value = e->f;
  return s;
}

sf_status sf_params_get_string(const sf_params *params, sf_param key, const char **out_value) {
  const entry *e = NULL;
  if (out_value == NULL) return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_params_get_string: out_value is NULL");
  sf_status s = get(params, key, KIND_STRING, &e);
  if (s == SF_OK) *out_value = e->s;
  return s;
}

int64_t sf_params_int_or(const sf_params *p, sf_param key, int64_t dflt) {
  const entry *e = find(p, key);
  return e && e->kind == KIND_INT ? e->i : dflt;
}

double sf_params_float_or(const sf_params *p, sf_param key, double dflt) {
  const entry *e = find(p, key);
  return e && e->kind == KIND_FLOAT ? e->f : dflt;
}

const char *sf_params_string_or(const sf_params *p, sf_param key, const char *dflt) {
  const entry *e = find(p, key);
  return e && e->kind == KIND_STRING ? e->s : dflt;
}

int sf_params_has(const sf_params *p, sf_param key) { return find(p, key) != NULL; }
