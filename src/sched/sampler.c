#include "sched/sampler.h"

#include <string.h>
#include <strings.h>

/* The one table of samplers. */
static const struct {
  sf_sampler sampler;
  sf_sched_kind kind;
  const char *name;
} samplers[] = {
    {SF_SAMPLER_DDIM, SF_SCHED_DDIM, "ddim"},          {SF_SAMPLER_PNDM, SF_SCHED_PNDM, "pndm"},
    {SF_SAMPLER_EULER, SF_SCHED_EULER, "euler"},       {SF_SAMPLER_EULER_A, SF_SCHED_EULER_A, "euler_a"},
    {SF_SAMPLER_DPMPP_2M, SF_SCHED_DPMPP_2M, "dpm++2m"}, {SF_SAMPLER_LCM, SF_SCHED_LCM, "lcm"},
};
#define N_SAMPLERS (sizeof samplers / sizeof samplers[0])

sf_sched_kind sf_sampler_kind(sf_sampler s) {
  for (size_t i = 0; i < N_SAMPLERS; i++)
    if (samplers[i].sampler == s) return samplers[i].kind;
  return (sf_sched_kind)0;
}

const char *sf_sampler_canonical_name(sf_sampler s) {
  for (size_t i = 0; i < N_SAMPLERS; i++)
    if (samplers[i].sampler == s) return samplers[i].name;
  return NULL;
}

/* Besides the canonical names (any letter case), the spellings other tools use:
 * "plms" (A1111's name for PNDM with skip_prk_steps), "euler_ancestral" / "euler-a" /
 * "euler a" (diffusers' class / A1111's label), "dpmpp_2m" / "dpmpp2m" / "dpm++_2m" /
 * "dpm++ 2m" (ComfyUI / A1111 spellings of DPM-Solver++ 2M). */
sf_sampler sf_sampler_parse(const char *name) {
  static const struct {
    const char *name;
    sf_sampler sampler;
  } aliases[] = {
      {"plms", SF_SAMPLER_PNDM},          {"euler_ancestral", SF_SAMPLER_EULER_A},
      {"euler-a", SF_SAMPLER_EULER_A},    {"euler a", SF_SAMPLER_EULER_A},
      {"dpmpp_2m", SF_SAMPLER_DPMPP_2M},  {"dpmpp2m", SF_SAMPLER_DPMPP_2M},
      {"dpm++_2m", SF_SAMPLER_DPMPP_2M},  {"dpm++ 2m", SF_SAMPLER_DPMPP_2M},
  };
  if (name == NULL) return SF_SAMPLER_DEFAULT;
  for (size_t i = 0; i < N_SAMPLERS; i++)
    if (strcasecmp(name, samplers[i].name) == 0) return samplers[i].sampler;
  for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
    if (strcasecmp(name, aliases[i].name) == 0) return aliases[i].sampler;
  return SF_SAMPLER_DEFAULT;
}

const char *sf_sched_a1111_name(sf_sched_kind kind, int karras) {
  switch (kind) {
    case SF_SCHED_DDIM: return "DDIM";
    case SF_SCHED_PNDM: return "PLMS";
    case SF_SCHED_EULER: return "Euler";
    case SF_SCHED_EULER_A: return "Euler a";
    case SF_SCHED_DPMPP_2M: return karras ? "DPM++ 2M Karras" : "DPM++ 2M";
    case SF_SCHED_LCM: return "LCM";
  }
  return "DDIM";
}

void sf_sched_request_default(sf_sched_request *r) {
  memset(r, 0, sizeof *r);
  r->sampler = SF_SAMPLER_DEFAULT;
  r->prediction = SF_PREDICTION_DEFAULT;
  r->spacing = SF_SPACING_DEFAULT;
  r->karras = -1;
  r->eta = 0.0;
}

const char sf_sd15_scheduler_config[] =
    "{\"_class_name\": \"PNDMScheduler\", \"beta_end\": 0.012, \"beta_schedule\": \"scaled_linear\","
    " \"beta_start\": 0.00085, \"clip_sample\": false, \"num_train_timesteps\": 1000,"
    " \"set_alpha_to_one\": false, \"skip_prk_steps\": true, \"steps_offset\": 1, \"trained_betas\": null}";

sf_status sf_sched_config_resolve(const sf_json *config, const sf_sched_request *req, sf_sched_config *out,
                                  sf_diag *d) {
  sf_sched_kind kind = sf_sampler_kind(req->sampler);
  if (req->sampler != SF_SAMPLER_DEFAULT && kind == 0)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "sampler %d is not a sf_sampler", (int)req->sampler);
  sf_json_doc *doc = NULL;
  if (config == NULL) {
    doc = sf_json_parse(sf_sd15_scheduler_config, strlen(sf_sd15_scheduler_config), d);
    if (doc == NULL) return d->status;
    config = sf_json_root(doc);
  }
  sf_status s = sf_sched_config_from_json(out, config, kind, d);
  sf_json_free(doc);
  if (s != SF_OK) return s;
  switch (req->prediction) {
    case SF_PREDICTION_DEFAULT: break;
    case SF_PREDICTION_EPSILON: out->prediction_type = SF_PRED_EPSILON; break;
    case SF_PREDICTION_V: out->prediction_type = SF_PRED_V; break;
    case SF_PREDICTION_SAMPLE: out->prediction_type = SF_PRED_SAMPLE; break;
    default:
      return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "SF_PARAM_PREDICTION_TYPE: %d is not a sf_prediction",
                         (int)req->prediction);
  }
  if (req->spacing < SF_SPACING_DEFAULT || req->spacing > SF_SPACING_LINSPACE)
    return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "SF_PARAM_TIMESTEP_SPACING: %d is not a sf_timestep_spacing",
                       (int)req->spacing);
  if (req->spacing != SF_SPACING_DEFAULT) out->timestep_spacing = req->spacing;
  /* An explicit 0 switches off use_karras_sigmas from the file. */
  if (req->karras >= 0) {
    if (req->karras && out->kind != SF_SCHED_DPMPP_2M && out->kind != SF_SCHED_EULER)
      return sf_diag_set(d, SF_ERR_UNSUPPORTED, "Karras sigmas are supported with euler and dpm++2m only");
    out->use_karras_sigmas = req->karras != 0;
  }
  if (req->eta != 0.0) return sf_diag_set(d, SF_ERR_UNSUPPORTED, "unsupported: DDIM eta %g (only 0)", req->eta);
  return SF_OK;
}
