/* snapfusion check FIXTURE_SET_DIR: runs a fixture set's reference cases through the
 * public API and compares each output with the reference under the case's own
 * tolerance (|out - ref| <= atol + rtol*|ref|, from manifest.json). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cli.h"

static void check_usage(FILE *f) {
  fprintf(f,
          "usage: snapfusion check FIXTURE_SET_DIR [--component NAME]... [--case SUBSTRING] [-t THREADS]\n"
          "Runs every case of FIXTURE_SET_DIR/manifest.json whose component the library supports,\n"
          "compares each output with the reference under the case's tolerance, prints one line\n"
          "per case and a summary 'N passed, M failed, K skipped'. Exit status 1 if any case fails.\n"
          "  --component NAME  only cases of this component (repeatable): tokenizer, text_encoder,\n"
          "                    unet, vae_decoder, vae_encoder, taesd_decoder, taesd_encoder,\n"
          "                    scheduler, generator, pipeline\n"
          "  --case SUBSTRING  only cases whose name contains SUBSTRING\n"
          "  -t THREADS        worker threads, 1..1024 (default: one per core; more than the online\n"
          "                    CPUs: a warning, runs are much slower)\n"
          "  --digest          also print each case's SHA-256 over the raw bytes of everything it\n"
          "                    computed (float32 outputs as stored in memory), to compare builds\n"
          "                    and CPUs bit for bit\n"
          "  --weights TYPE    load the models with f16 or q8 weights (SF_PARAM_WEIGHT_TYPE) and\n"
          "                    report, per case, the relative L2 distance of the outputs to the\n"
          "                    reference and to the same case run with f32 weights; a case then\n"
          "                    passes when that distance to the reference is at most\n"
          "  --max-rel-l2 X    (required with --weights f16|q8) instead of the elementwise tolerance\n"
          "  --backend NAME    what computes f32 convolutions and linear layers (SF_PARAM_GEMM_BACKEND):\n"
          "                    own (default: the library's kernels, the same bits on every CPU) or\n"
          "                    xnnpack\n");
}

/* ---- shared helpers for the runners ---------------------------------------------------- */

void check_result_init(check_result *r) {
  memset(r, 0, sizeof *r);
  r->verdict = CHECK_PASS;
  sf_sha256_init(&r->digest);
}

void check_skip(check_result *r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  r->verdict = CHECK_SKIP;
  vsnprintf(r->reason, sizeof r->reason, fmt, ap);
  va_end(ap);
}

void check_fail(check_result *r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (r->verdict != CHECK_FAIL) {
    r->verdict = CHECK_FAIL;
    vsnprintf(r->reason, sizeof r->reason, fmt, ap);
  }
  va_end(ap);
}

void check_api_fail(check_result *r, const char *what, sf_status s, const sf_context *ctx) {
  check_fail(r, "%s: %s: %s", what, sf_status_string(s), ctx ? sf_context_last_error(ctx) : sf_last_error());
}

float *check_tensor(check_run *run, check_result *r, const char *key, size_t *count) {
  const sf_st_tensor *t = sf_st_find(run->file, key);
  if (t == NULL) {
    check_fail(r, "case file has no tensor %s", key);
    return NULL;
  }
  float *out = malloc((t->numel ? t->numel : 1) * sizeof *out);
  if (out == NULL) {
    check_fail(r, "out of memory reading %s", key);
    return NULL;
  }
  sf_st_to_f32(t, out);
  if (count) *count = (size_t)t->numel;
  return out;
}

const sf_st_tensor *check_tensor_info(check_run *run, check_result *r, const char *key) {
  const sf_st_tensor *t = sf_st_find(run->file, key);
  if (t == NULL) check_fail(r, "case file has no tensor %s", key);
  return t;
}

/* Reference values as doubles (F64 kept exact, everything else via f32). */
static double *reference_f64(check_run *run, check_result *r, const char *output, size_t *n) {
  char key[160];
  snprintf(key, sizeof key, "out.%s", output);
  const sf_st_tensor *t = check_tensor_info(run, r, key);
  if (t == NULL) return NULL;
  double *ref = malloc((t->numel ? t->numel : 1) * sizeof *ref);
  float *tmp = t->dtype == SF_DTYPE_F64 ? NULL : malloc((t->numel ? t->numel : 1) * sizeof *tmp);
  if (ref == NULL || (t->dtype != SF_DTYPE_F64 && tmp == NULL)) {
    free(ref);
    free(tmp);
    check_fail(r, "out of memory reading %s", key);
    return NULL;
  }
  if (t->dtype == SF_DTYPE_F64) {
    memcpy(ref, t->data, (size_t)t->numel * sizeof *ref);
  } else {
    sf_st_to_f32(t, tmp);
    for (size_t i = 0; i < t->numel; i++) ref[i] = tmp[i];
  }
  free(tmp);
  *n = (size_t)t->numel;
  return ref;
}

void check_digest(check_result *r, const void *data, size_t bytes) { sf_sha256_update(&r->digest, data, bytes); }

/* tolerance[output], else the "*SUFFIX" pattern with the longest suffix ending output, else "*". */
const sf_json *check_tolerance(check_run *run, const char *output) {
  const sf_json *tols = sf_json_get(run->c, "tolerance");
  const sf_json *exact = sf_json_get(tols, output);
  if (exact != NULL || tols == NULL || tols->type != SF_JSON_OBJECT) return exact;
  const sf_json *best = NULL;
  size_t best_len = 0, n = strlen(output);
  for (size_t i = 0; i < tols->len; i++) {
    const char *k = tols->u.obj.keys[i];
    if (k[0] != '*') continue;
    size_t len = strlen(k + 1);
    if (len <= n && strcmp(output + n - len, k + 1) == 0 && (best == NULL || len > best_len)) {
      best = &tols->u.obj.values[i];
      best_len = len;
    }
  }
  return best;
}

/* sqrt(sum (a - b)^2 / sum b^2); infinite when a holds a non-finite value. */
static double rel_l2(const float *a32, const double *a64, const double *b64, const float *b32, size_t n) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < n; i++) {
    const double a = a64 ? a64[i] : (double)a32[i], b = b64 ? b64[i] : (double)b32[i];
    if (!isfinite(a)) return INFINITY;
    num += (a - b) * (a - b);
    den += b * b;
  }
  return den > 0.0 ? sqrt(num / den) : sqrt(num);
}

/* --weights: the f32 run captures its float outputs; the run with the other weights is then
 * measured against them, output by output in the same order. */
static void base_capture_or_compare(check_run *run, check_result *r, const float *got, size_t n) {
  check_state *st = run->state;
  if (st->capture) {
    if (st->n_base == st->cap_base) {
      size_t cap = st->cap_base ? 2 * st->cap_base : 16;
      float **b = realloc(st->base, cap * sizeof *b);
      size_t *bn = b ? realloc(st->base_n, cap * sizeof *bn) : NULL;
      if (b) st->base = b;
      if (bn) st->base_n = bn;
      if (b == NULL || bn == NULL) return;
      st->cap_base = cap;
    }
    float *copy = malloc((n ? n : 1) * sizeof *copy);
    if (copy == NULL) return;
    memcpy(copy, got, n * sizeof *copy);
    st->base[st->n_base] = copy;
    st->base_n[st->n_base++] = n;
    return;
  }
  if (st->base == NULL) return;
  if (st->replay >= st->n_base || st->base_n[st->replay] != n) {
    check_fail(r, "the f32 run computed other outputs");
    return;
  }
  double d = rel_l2(got, NULL, NULL, st->base[st->replay++], n);
  if (d > r->rel_l2_base || d != d) r->rel_l2_base = d;
}

static void compare_values(check_run *run, check_result *r, const char *output, const float *got32,
                           const double *got64, size_t n) {
  if (got64) check_digest(r, got64, n * sizeof *got64);
  else check_digest(r, got32, n * sizeof *got32);
  if (got32) base_capture_or_compare(run, r, got32, n);
  size_t n_ref = 0;
  double *ref = reference_f64(run, r, output, &n_ref);
  if (ref == NULL) return;
  if (n_ref != n) {
    check_fail(r, "%s: %zu values computed, reference has %zu", output, n, n_ref);
    free(ref);
    return;
  }
  {
    double d = rel_l2(got32, got64, ref, NULL, n);
    if (d > r->rel_l2_ref || d != d) r->rel_l2_ref = d;
    if (isinf(d)) r->nonfinite = 1;
  }
  const sf_json *tol = check_tolerance(run, output);
  double atol, rtol;
  if (!sf_json_as_double(sf_json_get(tol, "atol"), &atol) || !sf_json_as_double(sf_json_get(tol, "rtol"), &rtol)) {
    /* Exact outputs (ids, integer timesteps) carry no float tolerance. */
    atol = 0;
    rtol = 0;
  }
  size_t bad = 0, first_bad = 0;
  for (size_t i = 0; i < n; i++) {
    double g = got64 ? got64[i] : (double)got32[i];
    double e = fabs(g - ref[i]);
    double allow = atol + rtol * fabs(ref[i]);
    if (!(e <= allow)) {
      if (bad++ == 0) first_bad = i;
    }
    if (e > r->max_abs || e != e) r->max_abs = e;
    double ratio = allow > 0 ? e / allow : (e > 0 ? INFINITY : 0);
    if (ratio > r->worst_ratio || ratio != ratio) r->worst_ratio = ratio;
  }
  r->outputs++;
  if (bad)
    check_fail(r, "%s: %zu of %zu values out of tolerance (first at %zu: %.9g vs %.9g; atol %g rtol %g)", output,
               bad, n, first_bad, got64 ? got64[first_bad] : (double)got32[first_bad], ref[first_bad], atol, rtol);
  free(ref);
}

void check_compare(check_run *run, check_result *r, const char *output, const float *got, size_t n) {
  compare_values(run, r, output, got, NULL, n);
}

void check_compare_f64(check_run *run, check_result *r, const char *output, const double *got, size_t n) {
  compare_values(run, r, output, NULL, got, n);
}

int check_is_single_file(const check_state *st, const char *rel_path) {
  char path[4200];
  snprintf(path, sizeof path, "%s/%s", st->set_dir, rel_path);
  sf_diag d = {0};
  sf_safetensors *f = sf_st_open(path, &d);
  int single = 0;
  for (size_t i = 0; f && i < sf_st_count(f) && !single; i++) {
    const char *k = sf_st_tensor_at(f, i)->name;
    single = strncmp(k, "model.diffusion_model.", 22) == 0 || strncmp(k, "first_stage_model.", 18) == 0 ||
             strncmp(k, "cond_stage_model.", 17) == 0;
  }
  sf_st_close(f);
  return single;
}

/* The config folder of a single-file checkpoint: the manifest's model whose folder (with a
 * model_index.json) is named as the file begins ("x" for "x.safetensors", "x.fp16.safetensors");
 * NULL when none is (the architecture is then inferred). */
static int single_file_config(const check_state *st, const char *rel_file, char *out, size_t cap) {
  const sf_json *models = sf_json_get(st->manifest, "models");
  const char *base = strrchr(rel_file, '/') ? strrchr(rel_file, '/') + 1 : rel_file;
  size_t best = 0;
  for (size_t i = 0; models && models->type == SF_JSON_OBJECT && i < models->len; i++) {
    const char *dir = sf_json_as_string(sf_json_get(&models->u.obj.values[i], "path"));
    if (dir == NULL) continue;
    const char *name = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
    size_t n = strlen(name);
    if (n == 0 || strncmp(base, name, n) != 0 || base[n] != '.' || n <= best) continue;
    char index[4200];
    snprintf(index, sizeof index, "%s/%s/model_index.json", st->set_dir, dir);
    FILE *f = fopen(index, "rb");
    if (f == NULL) continue;
    fclose(f);
    snprintf(out, cap, "%s/%s", st->set_dir, dir);
    best = n;
  }
  return best > 0;
}

/* Pipelines are cached by folder so cases of one model load it once. */
sf_pipeline *check_pipeline(check_run *run, check_result *r, const char *rel_dir, const char *variant) {
  check_state *st = run->state;
  for (size_t i = 0; i < st->n_pipes; i++)
    if (strcmp(st->pipes[i].dir, rel_dir) == 0 && strcmp(st->pipes[i].variant, variant ? variant : "") == 0 &&
        st->pipes[i].weights == st->weights && strcmp(st->pipes[i].loras, st->loras ? st->loras : "") == 0)
      return st->pipes[i].pipe;
  if (st->n_pipes == sizeof st->pipes / sizeof st->pipes[0]) {
    sf_pipeline_destroy(st->pipes[0].pipe);
    memmove(&st->pipes[0], &st->pipes[1], (st->n_pipes - 1) * sizeof st->pipes[0]);
    st->n_pipes--;
  }
  char path[4200];
  snprintf(path, sizeof path, "%s/%s", st->set_dir, rel_dir);
  sf_params *opts = NULL;
  sf_status s = sf_params_create(&opts);
  if (s == SF_OK && variant) s = sf_params_set_string(opts, SF_PARAM_VARIANT, variant);
  if (s == SF_OK && st->weights != SF_WEIGHT_DEFAULT) s = sf_params_set_int(opts, SF_PARAM_WEIGHT_TYPE, st->weights);
  char config[4200];
  if (s == SF_OK && check_is_single_file(st, rel_dir) && single_file_config(st, rel_dir, config, sizeof config))
    s = sf_params_set_string(opts, SF_PARAM_CONFIG_PATH, config);
  if (s == SF_OK && st->loras && *st->loras) s = sf_params_set_string(opts, SF_PARAM_LORAS, st->loras);
  if (s == SF_OK && st->backend != 0) s = sf_params_set_int(opts, SF_PARAM_GEMM_BACKEND, st->backend);
  sf_pipeline *pipe = NULL;
  if (s == SF_OK) s = sf_pipeline_load(st->ctx, path, opts, &pipe);
  sf_params_destroy(opts);
  if (s != SF_OK) {
    check_api_fail(r, rel_dir, s, st->ctx);
    return NULL;
  }
  check_cached_pipe *cp = &st->pipes[st->n_pipes++];
  snprintf(cp->dir, sizeof cp->dir, "%s", rel_dir);
  snprintf(cp->variant, sizeof cp->variant, "%s", variant ? variant : "");
  cp->weights = st->weights;
  snprintf(cp->loras, sizeof cp->loras, "%s", st->loras ? st->loras : "");
  cp->pipe = pipe;
  return pipe;
}

/* ---- the command -------------------------------------------------------------------------- */

/* Kinds of case (a set's first name segment, e.g. "lcm/...") run by their own runner instead of
 * the per-component ones (their "component" names the network, not how to run it); a NULL
 * runner marks a kind this build does not support (skipped). Single-file cases need no kind:
 * their runners are the components', over the checkpoint file (check_is_single_file). */
static const check_kind check_kinds[] = {
    {"lcm", check_run_lcm},
    {"lora", check_run_lora},
    {NULL, NULL},
};

static const check_kind *find_kind(const char *name) {
  const char *slash = strchr(name, '/');
  if (slash == NULL) return NULL;
  for (const check_kind *k = check_kinds; k->prefix != NULL; k++)
    if (strlen(k->prefix) == (size_t)(slash - name) && strncmp(name, k->prefix, (size_t)(slash - name)) == 0) return k;
  return NULL;
}

static const check_runner *find_runner(const char *component) {
  for (const check_runner *r = check_runners; r->component != NULL; r++)
    if (strcmp(r->component, component) == 0) return r;
  return NULL;
}

int cmd_check(int argc, char **argv) {
  const char *set_dir = NULL, *case_filter = NULL;
  const char *components[32];
  size_t n_components = 0;
  long long threads = 0;
  int digest = 0, weights = SF_WEIGHT_DEFAULT, backend = 0;
  double max_rel_l2 = -1.0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      check_usage(stdout);
      return 0;
    } else if (strcmp(argv[i], "--component") == 0 && i + 1 < argc && n_components < 32) {
      components[n_components++] = argv[++i];
    } else if (strcmp(argv[i], "--digest") == 0) {
      digest = 1;
    } else if (strcmp(argv[i], "--weights") == 0 && i + 1 < argc) {
      if (!cli_parse_weights(argv[++i], &weights)) {
        fprintf(stderr, "snapfusion check: --weights takes f32, f16 or q8\n");
        return CLI_EXIT_USAGE;
      }
    } else if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc) {
      i++;
      if (strcmp(argv[i], "own") == 0) backend = 0;
      else if (strcmp(argv[i], "xnnpack") == 0) backend = 1;
      else {
        fprintf(stderr, "snapfusion check: --backend takes own or xnnpack\n");
        return CLI_EXIT_USAGE;
      }
    } else if (strcmp(argv[i], "--max-rel-l2") == 0 && i + 1 < argc) {
      char *end = NULL;
      max_rel_l2 = strtod(argv[++i], &end);
      if (end == argv[i] || *end != '\0' || !(max_rel_l2 >= 0.0 && max_rel_l2 < 10.0)) {
        fprintf(stderr, "snapfusion check: --max-rel-l2 takes a number from 0 to 10\n");
        return CLI_EXIT_USAGE;
      }
    } else if (strcmp(argv[i], "--case") == 0 && i + 1 < argc) {
      case_filter = argv[++i];
    } else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) {
      if (!cli_parse_int(argv[++i], &threads) || threads < 1 || threads > 1024) {
        fprintf(stderr, "snapfusion check: -t takes a thread count from 1 to 1024\n");
        return CLI_EXIT_USAGE;
      }
    } else if (argv[i][0] == '-' || set_dir != NULL) {
      fprintf(stderr, "snapfusion check: unexpected argument '%s' (see snapfusion check --help)\n", argv[i]);
      return CLI_EXIT_USAGE;
    } else {
      set_dir = argv[i];
    }
  }
  const int quantised = weights == SF_WEIGHT_F16 || weights == SF_WEIGHT_Q8;
  if (quantised && max_rel_l2 < 0) {
    fprintf(stderr, "snapfusion check: --weights %s needs --max-rel-l2 X (its outputs are not within the f32 "
                    "tolerances)\n", cli_weights_name(weights));
    return CLI_EXIT_USAGE;
  }
  if (set_dir == NULL) {
    fprintf(stderr, "snapfusion check: missing FIXTURE_SET_DIR (see snapfusion check --help)\n");
    return CLI_EXIT_USAGE;
  }
  for (size_t i = 0; i < n_components; i++)
    if (find_runner(components[i]) == NULL) {
      fprintf(stderr, "snapfusion check: unknown component '%s'\n", components[i]);
      return CLI_EXIT_USAGE;
    }

  char path[4200];
  snprintf(path, sizeof path, "%s/manifest.json", set_dir);
  sf_diag d = {0};
  sf_json_doc *manifest = sf_json_parse_file_ex(path, NULL, 256u << 20, SF_JSON_ALLOW_NONFINITE, &d);
  if (manifest == NULL) {
    fprintf(stderr, "snapfusion check: %s\n", d.msg);
    return CLI_EXIT_FAIL;
  }
  const sf_json *cases = sf_json_get(sf_json_root(manifest), "cases");
  if (cases == NULL || cases->type != SF_JSON_ARRAY) {
    fprintf(stderr, "snapfusion check: %s has no \"cases\" array\n", path);
    sf_json_free(manifest);
    return CLI_EXIT_FAIL;
  }
  check_state st = {0};
  st.set_dir = set_dir;
  st.manifest = sf_json_root(manifest);
  st.backend = backend;
  st.ctx = cli_context((int)threads);
  if (st.ctx == NULL) {
    sf_json_free(manifest);
    return CLI_EXIT_FAIL;
  }
  size_t passed = 0, failed = 0, skipped = 0;
  for (size_t i = 0; i < cases->len; i++) {
    const sf_json *c = sf_json_at(cases, i);
    const char *name = sf_json_as_string(sf_json_get(c, "name"));
    const char *component = sf_json_as_string(sf_json_get(c, "component"));
    if (name == NULL || component == NULL) {
      fprintf(stderr, "snapfusion check: case %zu lacks a name or component\n", i);
      failed++;
      continue;
    }
    if (case_filter && strstr(name, case_filter) == NULL) continue;
    if (n_components) {
      int wanted = 0;
      for (size_t k = 0; k < n_components; k++) wanted |= strcmp(components[k], component) == 0;
      if (!wanted) continue;
    }
    check_result r;
    check_result_init(&r);
    const check_runner *runner = find_runner(component);
    const check_kind *kind = find_kind(name);
    check_runner kind_runner = {component, kind ? kind->run : NULL};
    if (kind != NULL) runner = &kind_runner;
    check_run run = {&st, c, NULL};
    if (kind != NULL && kind->run == NULL) {
      check_skip(&r, "%s cases not supported by this build", kind->prefix);
    } else if (runner == NULL || runner->run == NULL) {
      check_skip(&r, "component '%s' not supported by this build", component);
    } else {
      const char *file = sf_json_as_string(sf_json_get(c, "file"));
      if (file && strstr(file, ".safetensors")) {
        snprintf(path, sizeof path, "%s/%s", set_dir, file);
        sf_diag_clear(&d);
        run.file = sf_st_open(path, &d);
        if (run.file == NULL) check_fail(&r, "%s", d.msg);
      }
      if (r.verdict != CHECK_FAIL && quantised) {
        /* The case with f32 weights first, its outputs captured; then with the weights asked
         * for, measured against the reference and against those outputs. */
        check_result base;
        check_result_init(&base);
        st.weights = SF_WEIGHT_F32;
        st.capture = 1;
        runner->run(&run, &base);
        st.capture = 0;
        st.weights = weights;
        st.replay = 0;
        runner->run(&run, &r);
        for (size_t k = 0; k < st.n_base; k++) free(st.base[k]);
        st.n_base = 0;
        /* The pass rule for quantised weights: the distance to the reference. */
        if (r.verdict == CHECK_FAIL && r.outputs > 0 && !r.nonfinite && r.rel_l2_ref <= max_rel_l2 &&
            strstr(r.reason, "out of tolerance") != NULL) {
          r.verdict = CHECK_PASS;
          r.reason[0] = '\0';
        }
        if (r.verdict == CHECK_PASS && !(r.rel_l2_ref <= max_rel_l2))
          check_fail(&r, "relative L2 %.3g above --max-rel-l2 %g", r.rel_l2_ref, max_rel_l2);
      } else if (r.verdict != CHECK_FAIL) {
        st.weights = weights;
        runner->run(&run, &r);
      }
      sf_st_close(run.file);
    }
    if (r.verdict == CHECK_PASS && r.outputs == 0) check_fail(&r, "runner compared no output");
    const char *verdict = r.verdict == CHECK_PASS ? "PASS" : r.verdict == CHECK_FAIL ? "FAIL" : "SKIP";
    if (r.verdict == CHECK_SKIP)
      printf("%-52s %-4s %s\n", name, verdict, r.reason);
    else if (digest) {
      uint8_t sum[32];
      char hex[65];
      sf_sha256_final(&r.digest, sum);
      sf_sha256_hex(sum, hex);
      printf("%-52s %-4s sha256=%s%s%s\n", name, verdict, hex, r.reason[0] ? "  " : "", r.reason);
    } else if (quantised)
      printf("%-52s %-4s rel_l2_ref=%.3g rel_l2_f32=%.3g%s%s\n", name, verdict, r.rel_l2_ref, r.rel_l2_base,
             r.reason[0] ? "  " : "", r.reason);
    else
      printf("%-52s %-4s max_abs_err=%.3g worst_ratio=%.3g%s%s\n", name, verdict, r.max_abs, r.worst_ratio,
             r.reason[0] ? "  " : "", r.reason);
    fflush(stdout);
    if (r.verdict == CHECK_PASS) passed++;
    else if (r.verdict == CHECK_FAIL) failed++;
    else skipped++;
  }
  for (size_t i = 0; i < st.n_pipes; i++) sf_pipeline_destroy(st.pipes[i].pipe);
  free(st.base);
  free(st.base_n);
  sf_context_destroy(st.ctx);
  sf_json_free(manifest);
  printf("%zu passed, %zu failed, %zu skipped\n", passed, failed, skipped);
  return failed ? CLI_EXIT_FAIL : 0;
}
