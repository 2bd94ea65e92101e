#include "core/params.h"

#include <stdlib.h>
#include <string.h>


/* The type of every key: setting a key with another type is a caller bug we report. */
sf_param_kind sf_param_kind_of(sf_param key) {
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
    case SF_PARAM_WEIGHT_TYPE:
    case SF_PARAM_LOW_MEMORY:
    case SF_PARAM_GEMM_BACKEND:
    case SF_PARAM_PROMPT_SYNTAX:
      return SF_PV_INT;
    case SF_PARAM_GUIDANCE_SCALE:
    case SF_PARAM_UNET_GUIDANCE:
    case SF_PARAM_STRENGTH:
    case SF_PARAM_ETA:
      return SF_PV_FLOAT;
    case SF_PARAM_VARIANT:
    case SF_PARAM_TAESD_PATH:
    case SF_PARAM_TOKENIZER_PATH:
    case SF_PARAM_PACK_PATH:
    case SF_PARAM_CONFIG_PATH:
    case SF_PARAM_LORAS:
    case SF_PARAM_PROMPT:
    case SF_PARAM_NEGATIVE_PROMPT:
      return SF_PV_STRING;
  }
  switch ((int)key) {
    case SF_PARAM_LATENTS:
    case SF_PARAM_PROMPT_EMBEDS:
    case SF_PARAM_NEGATIVE_EMBEDS:
      return SF_PV_FLOATS;
    case SF_PARAM_INIT_IMAGE_KEY:
      return SF_PV_IMAGE;
  }
  return (sf_param_kind)0;
}

const char *sf_param_kind_name(sf_param_kind k) {
  switch (k) {
    case SF_PV_INT: return "int";
    case SF_PV_FLOAT: return "float";
    case SF_PV_STRING: return "string";
    case SF_PV_FLOATS: return "float array";
    case SF_PV_IMAGE: return "image";
  }
  return "?";
}

/* ---- readers for the engine ---- */

sf_param_entry *sf_params_find(const sf_params *p, sf_param key) {
  if (p == NULL) return NULL;
  for (size_t i = 0; i < p->n; i++)
    if (p->items[i].key == key) return &p->items[i];
  return NULL;
}

const float *sf_params_floats(const sf_params *p, sf_param_array key, size_t *count) {
  const sf_param_entry *e = sf_params_find(p, (sf_param)key);
  if (e == NULL || e->kind != SF_PV_FLOATS) return NULL;
  *count = e->count;
  return e->floats;
}

const uint8_t *sf_params_init_image(const sf_params *p, size_t *width, size_t *height) {
  const sf_param_entry *e = sf_params_find(p, (sf_param)SF_PARAM_INIT_IMAGE_KEY);
  if (e == NULL || e->kind != SF_PV_IMAGE) return NULL;
  *width = e->count;
  *height = e->height;
  return e->pixels;
}

int64_t sf_params_int_or(const sf_params *p, sf_param key, int64_t dflt) {
  const sf_param_entry *e = sf_params_find(p, key);
  return e && e->kind == SF_PV_INT ? e->i : dflt;
}

double sf_params_float_or(const sf_params *p, sf_param key, double dflt) {
  const sf_param_entry *e = sf_params_find(p, key);
  return e && e->kind == SF_PV_FLOAT ? e->f : dflt;
}

const char *sf_params_string_or(const sf_params *p, sf_param key, const char *dflt) {
  const sf_param_entry *e = sf_params_find(p, key);
  return e && e->kind == SF_PV_STRING ? e->s : dflt;
}

int sf_params_has(const sf_params *p, sf_param key) { return sf_params_find(p, key) != NULL; }
