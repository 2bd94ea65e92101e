/* snapfusion bench txt2img: the whole generation (prompt -> text encoder -> UNet x steps
 * -> VAE decoder) of a config folder with seeded random weights, through the public
 * step-wise API, timed per stage. The warm-up is one 1-step generation at the same size
 * (it touches every arena page and weight once); each timed run is a full generation. */
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "graph/graph.h"
#include "models/clip_text.h"
#include "models/unet.h"
#include "models/vae.h"
#include "pipeline/pipeline.h"
#include "pipeline/run.h"

/* The stage times of one generation. */
typedef struct run_times {
  double text, decode, total;
  double *steps; /* per UNet step */
  int n_steps;
} run_times;

static sf_status generate_timed(sf_pipeline *p, const sf_params *gen, run_times *t) {
  double t0 = bench_now();
  sf_job *job = NULL;
  sf_status s = sf_job_start(p, gen, &job);
  if (s != SF_OK) return s;
  t->text = bench_now() - t0;
  t->n_steps = 0;
  int total = sf_job_steps_total(job);
  while (s == SF_OK && sf_job_steps_done(job) < total) {
    double t1 = bench_now();
    s = sf_job_step(job);
    if (t->steps) t->steps[t->n_steps] = bench_now() - t1;
    t->n_steps++;
  }
  sf_image *img = NULL;
  double t2 = bench_now();
  if (s == SF_OK) s = sf_job_finish(job, &img);
  t->decode = bench_now() - t2;
  t->total = bench_now() - t0;
  sf_image_destroy(img);
  sf_job_destroy(job);
  return s;
}

/* sf_pipeline_estimate_memory on an inspect-only load with the same options: peak, weights,
 * workspace, other. */
static sf_status load_options(const bench_opts *o, const char *tokenizer, int inspect, sf_params **out) {
  sf_status s = sf_params_create(out);
  sf_params *load = *out;
  /* a pack holds the weights; the estimate (inspect) sizes the same architecture and type */
  if (s == SF_OK && o->pack && !inspect) s = sf_params_set_string(load, SF_PARAM_PACK_PATH, o->pack);
  else if (s == SF_OK) s = sf_params_set_int(load, SF_PARAM_RANDOM_WEIGHTS, 1);
  if (s == SF_OK) s = sf_params_set_int(load, SF_PARAM_COMPONENTS, SF_NET_TEXT_ENCODER | SF_NET_UNET | SF_NET_VAE_DECODER);
  if (s == SF_OK) s = sf_params_set_string(load, SF_PARAM_TOKENIZER_PATH, tokenizer);
  if (s == SF_OK && o->weights != SF_WEIGHT_DEFAULT) s = sf_params_set_int(load, SF_PARAM_WEIGHT_TYPE, o->weights);
  if (s == SF_OK && o->low_memory) s = sf_params_set_int(load, SF_PARAM_LOW_MEMORY, 1);
  if (s == SF_OK && inspect) s = sf_params_set_int(load, SF_PARAM_INSPECT_ONLY, 1);
  return s;
}

static sf_status estimate(sf_context *ctx, const bench_opts *o, const char *tokenizer, const sf_params *gen,
                          int64_t out[4]) {
  sf_params *inspect = NULL;
  sf_pipeline *p = NULL;
  sf_status s = load_options(o, tokenizer, 1, &inspect);
  if (s == SF_OK) s = sf_pipeline_load(ctx, o->config, inspect, &p);
  static const sf_memory what[4] = {SF_MEMORY_PEAK, SF_MEMORY_WEIGHTS, SF_MEMORY_WORKSPACE, SF_MEMORY_OTHER};
  for (int i = 0; s == SF_OK && i < 4; i++) s = sf_pipeline_estimate_memory(p, gen, what[i], &out[i]);
  if (s != SF_OK) cli_fail("memory estimate", s, ctx);
  sf_pipeline_destroy(p);
  sf_params_destroy(inspect);
  return s;
}

int bench_txt2img(const bench_opts *o, sf_context *ctx, bench_refs *refs, bench_row *rows, size_t *n_rows) {
  (void)refs;
  char tokbuf[4096];
  const char *tokenizer = o->tokenizer ? o->tokenizer : bench_default_tokenizer(tokbuf, sizeof tokbuf);
  sf_params *load = NULL, *gen = NULL;
  sf_pipeline *p = NULL;
  sf_status s = load_options(o, tokenizer, 0, &load);
  if (s == SF_OK) s = sf_params_create(&gen);
  sf_params_set_string(gen, SF_PARAM_PROMPT, "a photo of an astronaut riding a horse on mars");
  sf_params_set_int(gen, SF_PARAM_WIDTH, o->size);
  sf_params_set_int(gen, SF_PARAM_HEIGHT, o->size);
  sf_params_set_float(gen, SF_PARAM_GUIDANCE_SCALE, o->cfg_scale);
  sf_params_set_int(gen, SF_PARAM_SEED, 1);
  /* What the library expects the generation to need, asked before anything is packed. */
  int64_t est[4] = {0, 0, 0, 0};
  if (s == SF_OK) s = estimate(ctx, o, tokenizer, gen, est);
  double t0 = bench_now();
  if (s == SF_OK) s = sf_pipeline_load(ctx, o->config, load, &p);
  double load_s = bench_now() - t0;
  if (s != SF_OK) {
    cli_fail(o->config, s, ctx);
    sf_params_destroy(load);
    sf_params_destroy(gen);
    return CLI_EXIT_FAIL;
  }
  int rc = CLI_EXIT_FAIL;
  size_t n_times = (size_t)o->repeat;
  double *totals = calloc(n_times, sizeof *totals), *texts = calloc(n_times, sizeof *texts),
         *decodes = calloc(n_times, sizeof *decodes), *steps = calloc(n_times * (size_t)o->steps, sizeof *steps);
  run_times t = {0};
  double first_step = 0.0;
  if (totals && texts && decodes && steps) {
    s = sf_params_set_int(gen, SF_PARAM_STEPS, 1);
    t.steps = &first_step;
    if (s == SF_OK) s = generate_timed(p, gen, &t); /* warm-up */
    first_step = load_s + t.text + first_step; /* the load's start to the first step's end */
    if (s == SF_OK) s = sf_params_set_int(gen, SF_PARAM_STEPS, o->steps);
    size_t n_steps = 0;
    for (size_t r = 0; s == SF_OK && r < n_times; r++) {
      t.steps = steps + n_steps;
      s = generate_timed(p, gen, &t);
      totals[r] = t.total;
      texts[r] = t.text;
      decodes[r] = t.decode;
      n_steps += (size_t)t.n_steps;
    }
    if (s != SF_OK) {
      cli_fail("generation", s, ctx);
    } else {
      /* MACs of the graphs as the last run set them up: the UNet at batch 2 with guidance. */
      double text_macs = bench_plan_macs(p, SF_SLOT_TEXT, sf_clip_text_graph(p->text), 0);
      double unet_macs = bench_plan_macs(p, SF_SLOT_UNET, sf_unet_graph(p->unet), 0);
      double vae_macs = bench_plan_macs(p, SF_SLOT_VAE_DECODER, sf_vae_decoder_graph(p->vae), 0);
      int guided = o->cfg_scale > 1.0;
      int64_t wbytes = 0;
      sf_pipeline_get_int(p, SF_INFO_WEIGHT_BYTES, &wbytes);
      bench_row *row = &rows[0];
      snprintf(row->name, sizeof row->name, "txt2img %s", bench_base_name(o->config));
      snprintf(row->shape, sizeof row->shape, "%lldx%lld, %lld steps, cfg %.3g", o->size, o->size, o->steps,
               o->cfg_scale);
      bench_stats(totals, n_times, &row->median_s, &row->min_s);
      row->network = 1;
      row->macs = (guided ? 2 : 1) * text_macs + (double)o->steps * unet_macs + vae_macs;
      row->attention_macs = (double)o->steps * bench_plan_macs(p, SF_SLOT_UNET, sf_unet_graph(p->unet), 1) +
                            bench_plan_macs(p, SF_SLOT_VAE_DECODER, sf_vae_decoder_graph(p->vae), 1) +
                            (guided ? 2 : 1) * bench_plan_macs(p, SF_SLOT_TEXT, sf_clip_text_graph(p->text), 1);
      row->flops = 2.0 * row->macs;
      row->weights_bytes = (double)wbytes;
      /* One workspace serves the text encoder, the UNet and the decoder of a run. */
      int64_t ws_bytes = 0;
      sf_pipeline_get_int(p, SF_INFO_ARENA_BYTES, &ws_bytes);
      row->arena_bytes = (double)ws_bytes;
      row->peak_rss_bytes = bench_peak_rss_bytes();
      row->load_s = load_s;
      row->first_step_s = first_step;
      row->est_peak = (double)est[0];
      row->est_weights = (double)est[1];
      row->est_workspace = (double)est[2];
      row->est_other = (double)est[3];

      bench_row *text = &rows[1];
      snprintf(text->name, sizeof text->name, "  text encoder");
      snprintf(text->shape, sizeof text->shape, "%d prompt%s x 77 tokens", guided ? 2 : 1, guided ? "s" : "");
      bench_stats(texts, n_times, &text->median_s, &text->min_s);
      text->flops = 2.0 * (guided ? 2 : 1) * text_macs;

      bench_row *unet = &rows[2];
      snprintf(unet->name, sizeof unet->name, "  UNet step");
      snprintf(unet->shape, sizeof unet->shape, "batch %d, %lldx%lld latents", guided ? 2 : 1, o->size / 8,
               o->size / 8);
      bench_stats(steps, n_steps, &unet->median_s, &unet->min_s);
      unet->flops = 2.0 * unet_macs;

      bench_row *dec = &rows[3];
      snprintf(dec->name, sizeof dec->name, "  VAE decoder");
      snprintf(dec->shape, sizeof dec->shape, "%lldx%lld", o->size, o->size);
      bench_stats(decodes, n_times, &dec->median_s, &dec->min_s);
      dec->flops = 2.0 * vae_macs;
      *n_rows = 4;
      rc = 0;
    }
  } else {
    fprintf(stderr, "snapfusion bench txt2img: out of memory\n");
  }
  free(totals);
  free(texts);
  free(decodes);
  free(steps);
  sf_pipeline_destroy(p);
  sf_params_destroy(load);
  sf_params_destroy(gen);
  return rc;
}
