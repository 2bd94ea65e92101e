/* The public parameter bag: sf_params_create / destroy / set_* / get_* / unset over the storage
 * of core/params.h. */
#include <stdlib.h>
#include <string.h>

#include "core/context.h"
#include "core/params.h"

typedef sf_param_entry entry;

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


static sf_status slot(sf_params *p, sf_param key, sf_param_kind want, entry **out) {
  if (p == NULL) return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_params: params is NULL");
  sf_param_kind k = sf_param_kind_of(key);
  if (k == 0) return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_params: unknown key %d", (int)key);
  if (k != want)
    return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_params: key %d takes a %s, not a %s", (int)key,
                        sf_param_kind_name(k), sf_param_kind_name(want));
  entry *e = sf_params_find(p, key);
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
  sf_status s = slot(params, key, SF_PV_INT, &e);
  if (s == SF_OK) e->i = value;
  return s;
}

sf_status sf_params_set_float(sf_params *params, sf_param key, double value) {
  entry *e = NULL;
  sf_status s = slot(params, key, SF_PV_FLOAT, &e);
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
  sf_status s = slot(params, key, SF_PV_STRING, &e);
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
  sf_status s = slot(params, (sf_param)key, SF_PV_FLOATS, &e);
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
  sf_status s = slot(params, (sf_param)SF_PARAM_INIT_IMAGE_KEY, SF_PV_IMAGE, &e);
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



sf_status sf_params_unset(sf_params *params, sf_param key) {
  if (params == NULL) return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_params_unset: params is NULL");
  entry *e = sf_params_find(params, key);
  if (e != NULL) {
    entry_free_values(e);
    *e = params->items[--params->n];
  }
  return SF_OK;
}

static sf_status get(const sf_params *p, sf_param key, sf_param_kind want, const entry **out) {
  if (p == NULL) return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_params_get: params is NULL");
  const entry *e = sf_params_find(p, key);
  if (e == NULL) return sf_ctx_error(NULL, SF_ERR_NOT_FOUND, "sf_params_get: key %d is not set", (int)key);
  if (e->kind != want)
    return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_params: key %d holds a %s, not a %s", (int)key,
                        sf_param_kind_name(e->kind), sf_param_kind_name(want));
  *out = e;
  return SF_OK;
}

sf_status sf_params_get_int(const sf_params *params, sf_param key, int64_t *out_value) {
  const entry *e = NULL;
  if (out_value == NULL) return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_params_get_int: out_value is NULL");
  sf_status s = get(params, key, SF_PV_INT, &e);
  if (s == SF_OK) *out_value = e->i;
  return s;
}

sf_status sf_params_get_float(const sf_params *params, sf_param key, double *out_value) {
  const entry *e = NULL;
  if (out_value == NULL) return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_params_get_float: out_value is NULL");
  sf_status s = get(params, key, SF_PV_FLOAT, &e);
  if (s == SF_OK) *out_value = e->f;
  return s;
}

sf_status sf_params_get_string(const sf_params *params, sf_param key, const char **out_value) {
  const entry *e = NULL;
  if (out_value == NULL) return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_params_get_string: out_value is NULL");
  sf_status s = get(params, key, SF_PV_STRING, &e);
  if (s == SF_OK) *out_value = e->s;
  return s;
}




