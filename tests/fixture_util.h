/* Reading the reference fixtures from tests: the manifest, a case's tensors, and the
 * comparison under the case's own tolerance rule (|out-ref| <= atol + rtol*|ref|). */
#ifndef SF_TEST_FIXTURE_UTIL_H
#define SF_TEST_FIXTURE_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "io/json.h"
#include "io/safetensors.h"

typedef struct fx_manifest {
  sf_json_doc *doc;
  const sf_json *cases;
  char dir[4096]; /* .../public */
} fx_manifest;

/* 1 on success; prints why on failure. */
static inline int fx_manifest_open(fx_manifest *m, const char *fixtures_root) {
  char path[4200];
  sf_diag d = {0};
  snprintf(m->dir, sizeof m->dir, "%s/public", fixtures_root);
  snprintf(path, sizeof path, "%s/manifest.json", m->dir);
  m->doc = sf_json_parse_file_ex(path, NULL, 64u << 20, SF_JSON_ALLOW_NONFINITE, &d);
  if (m->doc == NULL) {
    fprintf(stderr, "manifest: %s\n", d.msg);
    return 0;
  }
  m->cases = sf_json_get(sf_json_root(m->doc), "cases");
  return m->cases != NULL;
}

static inline void fx_manifest_close(fx_manifest *m) { sf_json_free(m->doc); }

static inline const sf_json *fx_case(const fx_manifest *m, const char *name) {
  for (size_t i = 0; i < m->cases->len; i++) {
    const sf_json *c = sf_json_at(m->cases, i);
    const char *n = sf_json_as_string(sf_json_get(c, "name"));
    if (n && strcmp(n, name) == 0) return c;
  }
  fprintf(stderr, "manifest has no case %s\n", name);
  return NULL;
}

/* Path of a file named relative to the set (e.g. the case's "file" or a model folder). */
static inline void fx_path(const fx_manifest *m, const char *rel, char *out, size_t cap) {
  snprintf(out, cap, "%s/%s", m->dir, rel);
}

static inline sf_safetensors *fx_case_open(const fx_manifest *m, const sf_json *c) {
  char path[4200];
  sf_diag d = {0};
  fx_path(m, sf_json_as_string(sf_json_get(c, "file")), path, sizeof path);
  sf_safetensors *st = sf_st_open(path, &d);
  if (st == NULL) fprintf(stderr, "%s\n", d.msg);
  return st;
}

/* malloc'd f32 copy of tensor key ("in.sample", "out.noise_pred"); n gets the count. */
static inline float *fx_f32(const sf_safetensors *st, const char *key, size_t *n) {
  const sf_st_tensor *t = sf_st_find(st, key);
  if (t == NULL) {
    fprintf(stderr, "case file lacks %s\n", key);
    return NULL;
  }
  float *out = malloc((t->numel ? t->numel : 1) * sizeof *out);
  if (out) sf_st_to_f32(t, out);
  if (n) *n = (size_t)t->numel;
  return out;
}

typedef struct fx_result {
  double max_abs;     /* max |out - ref| over the finite pairs */
  double worst_ratio; /* max |out - ref| / (atol + rtol*|ref|) over them: pass iff <= 1 */
  size_t n_bad;
  size_t n_nonfinite; /* pairs with a NaN or Inf on either side (also in n_bad): pass iff 0 */
} fx_result;

/* Compares with the tolerance the manifest states for output `name` of case c. */
static inline int fx_compare(const sf_json *c, const char *name, const float *got, const float *ref, size_t n,
                             fx_result *r) {
  const sf_json *tol = sf_json_get(sf_json_get(c, "tolerance"), name);
  double atol = -1, rtol = -1;
  if (!sf_json_as_double(sf_json_get(tol, "atol"), &atol) || !sf_json_as_double(sf_json_get(tol, "rtol"), &rtol)) {
    fprintf(stderr, "case has no tolerance for %s\n", name);
    return 0;
  }
  r->max_abs = 0;
  r->worst_ratio = 0;
  r->n_bad = 0;
  r->n_nonfinite = 0;
  for (size_t i = 0; i < n; i++) {
    double e = fabs((double)got[i] - (double)ref[i]);
    double allow = atol + rtol * fabs((double)ref[i]);
    if (!(e <= allow)) r->n_bad++; /* NaN counts as bad */
    if (!isfinite(got[i]) || !isfinite(ref[i])) { /* counted, never part of a max */
      r->n_nonfinite++;
      continue;
    }
    if (e > r->max_abs) r->max_abs = e;
    double ratio = e / allow;
    if (ratio > r->worst_ratio) r->worst_ratio = ratio;
  }
  if (r->n_nonfinite) fprintf(stderr, "%s: %zu non-finite values\n", name, r->n_nonfinite);
  return r->n_bad == 0 && r->n_nonfinite == 0;
}

#endif
