#include "lora/lora.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/pool.h"
#include "core/str.h"
#include "io/safetensors.h"

typedef struct lora_module {
  sf_lora_component comp;
  int kohya;
  char *base;                 /* the key without its suffix, e.g. "lora_unet_down_blocks_0_..." */
  const char *module;         /* base without the format's prefix */
  const sf_st_tensor *up, *down;
  int64_t rank;
  double factor;              /* scale * alpha / rank (no alpha: scale) */
  const sf_st_tensor *target; /* bound checkpoint tensor */
  size_t file;                /* index of its LoRA in the set */
} lora_module;

typedef struct lora_file {
  char *path;
  double scale;
  sf_safetensors *st;
  lora_module *mods;
  size_t n_mods;
} lora_file;

struct sf_lora_set {
  lora_file *files;
  size_t n;
  /* Bound modules sorted by (component, target name, LoRA order): the merge's index. */
  lora_module **refs;
  size_t n_refs;
};

/* The formats' prefixes and suffixes. */
static const struct {
  const char *prefix;
  sf_lora_component comp;
  int kohya;
} prefixes[] = {{"lora_unet_", SF_LORA_UNET, 1},
                {"lora_te_", SF_LORA_TEXT_ENCODER, 1},
                {"unet.", SF_LORA_UNET, 0},
                {"text_encoder.", SF_LORA_TEXT_ENCODER, 0}};
static const char *const down_suffix[2] = {".lora_A.weight", ".lora_down.weight"};
static const char *const up_suffix[2] = {".lora_B.weight", ".lora_up.weight"};
static const char *const component_name[SF_LORA_COMPONENTS] = {"unet", "text_encoder"};

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

static char *concat(const char *a, size_t alen, const char *b) {
  size_t blen = strlen(b);
  char *s = malloc(alen + blen + 1);
  if (s == NULL) return NULL;
  memcpy(s, a, alen);
  memcpy(s + alen, b, blen + 1);
  return s;
}

static int is_float(sf_dtype t) {
  return t == SF_DTYPE_F32 || t == SF_DTYPE_F16 || t == SF_DTYPE_BF16 || t == SF_DTYPE_F64;
}

static void shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
  size_t off = (size_t)snprintf(buf, cap, "[");
  for (int i = 0; i < ndim && off < cap; i++)
    off += (size_t)snprintf(buf + off, cap - off, "%s%lld", i ? ", " : "", (long long)shape[i]);
  if (off < cap) snprintf(buf + off, cap - off, "]");
}

void sf_lora_set_close(sf_lora_set *set) {
  if (set == NULL) return;
  for (size_t i = 0; i < set->n; i++) {
    lora_file *f = &set->files[i];
    for (size_t m = 0; m < f->n_mods; m++) free(f->mods[m].base);
    free(f->mods);
    sf_st_close(f->st);
    free(f->path);
  }
  free(set->files);
  free(set->refs);
  free(set);
}

size_t sf_lora_count(const sf_lora_set *set) { return set ? set->n : 0; }
const char *sf_lora_path(const sf_lora_set *set, size_t i) { return set->files[i].path; }
double sf_lora_scale(const sf_lora_set *set, size_t i) { return set->files[i].scale; }
size_t sf_lora_module_count(const sf_lora_set *set, size_t i) { return set->files[i].n_mods; }

/* The prefix entry of a key, or -1. */
static int key_prefix(const char *key) {
  for (int p = 0; p < (int)(sizeof prefixes / sizeof prefixes[0]); p++)
    if (strncmp(key, prefixes[p].prefix, strlen(prefixes[p].prefix)) == 0) return p;
  return -1;
}

/* One LoRA file's modules, every key accounted for. */
static sf_status parse_file(lora_file *f, size_t index, sf_diag *d) {
  const sf_safetensors *st = f->st;
  const char *path = f->path;
  const size_t n = sf_st_count(st);
  f->mods = calloc(n ? n : 1, sizeof *f->mods);
  if (f->mods == NULL) return sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
  for (size_t i = 0; i < n; i++) {
    const sf_st_tensor *t = sf_st_tensor_at(st, i);
    const int p = key_prefix(t->name);
    if (p < 0)
      return sf_diag_set(d, SF_ERR_BAD_MODEL,
                         "%s: key '%s' is not a LoRA key this library reads (kohya 'lora_unet_<module>.*' / "
                         "'lora_te_<module>.*', diffusers/PEFT 'unet.<module>.*' / 'text_encoder.<module>.*')",
                         path, t->name);
    const int kohya = prefixes[p].kohya;
    const char *down_sfx = down_suffix[kohya], *up_sfx = up_suffix[kohya];
    const size_t len = strlen(t->name);
    size_t base_len;
    if (ends_with(t->name, ".alpha") || ends_with(t->name, up_sfx)) {
      /* checked with its down tensor: here only that there is one */
      base_len = len - strlen(ends_with(t->name, ".alpha") ? ".alpha" : up_sfx);
      char *down = concat(t->name, base_len, down_sfx);
      if (down == NULL) return sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
      const int found = sf_st_find(st, down) != NULL;
      free(down);
      if (!found) return sf_diag_set(d, SF_ERR_BAD_MODEL, "%s: key '%s' has no '%s' tensor with it", path, t->name, down_sfx + 1);
      continue;
    }
    if (!ends_with(t->name, down_sfx))
      return sf_diag_set(d, SF_ERR_UNSUPPORTED,
                         "%s: key '%s' is not a %s LoRA tensor (only '%s', '%s' and '.alpha'; LoHa, LoKr, DoRA and "
                         "other LyCORIS kinds are not supported)",
                         path, t->name, kohya ? "kohya" : "diffusers/PEFT", down_sfx + 1, up_sfx + 1);
    base_len = len - strlen(down_sfx);
    lora_module *m = &f->mods[f->n_mods++]; /* counted first: sf_lora_set_close frees its base */
    m->base = concat(t->name, base_len, "");
    char *up = concat(t->name, base_len, up_sfx), *alpha = concat(t->name, base_len, ".alpha");
    if (m->base == NULL || up == NULL || alpha == NULL) {
      free(up);
      free(alpha);
      return sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    }
    m->comp = prefixes[p].comp;
    m->kohya = kohya;
    m->module = m->base + strlen(prefixes[p].prefix);
    m->file = index;
    m->down = t;
    m->up = sf_st_find(st, up);
    const sf_st_tensor *a = sf_st_find(st, alpha);
    free(up);
    free(alpha);
    if (*m->module == '\0') return sf_diag_set(d, SF_ERR_BAD_MODEL, "%s: key '%s' names no module", path, t->name);
    if (m->up == NULL)
      return sf_diag_set(d, SF_ERR_BAD_MODEL, "%s: key '%s' has no '%s%s' with it", path, t->name, m->base, up_sfx);
    const sf_st_tensor *ud[2] = {m->down, m->up};
    for (int k = 0; k < 2; k++) {
      if (!is_float(ud[k]->dtype))
        return sf_diag_set(d, SF_ERR_BAD_MODEL, "%s: tensor '%s' has dtype %s, expected a float type", path,
                           ud[k]->name, sf_dtype_name(ud[k]->dtype));
      if (ud[k]->ndim != 2 && ud[k]->ndim != 4) {
        char s[128];
        shape_str(s, sizeof s, ud[k]->ndim, ud[k]->shape);
        return sf_diag_set(d, SF_ERR_BAD_MODEL, "%s: tensor '%s' has shape %s: a LoRA matrix is 2-d (linear) or 4-d (conv)",
                           path, ud[k]->name, s);
      }
    }
    m->rank = m->down->shape[0];
    if (m->rank <= 0 || m->up->shape[1] != m->rank || (m->up->ndim == 4 && (m->up->shape[2] != 1 || m->up->shape[3] != 1))) {
      char sd[128], su[128];
      shape_str(sd, sizeof sd, m->down->ndim, m->down->shape);
      shape_str(su, sizeof su, m->up->ndim, m->up->shape);
      return sf_diag_set(d, SF_ERR_BAD_MODEL,
                         "%s: module '%s': rank mismatch: down %s has rank %lld, up %s must be [out, %lld] or "
                         "[out, %lld, 1, 1]",
                         path, m->base, sd, (long long)m->rank, su, (long long)m->rank, (long long)m->rank);
    }
    double alpha_v = (double)m->rank;
    if (a != NULL) {
      float v = 0;
      if (a->numel != 1 || !is_float(a->dtype))
        return sf_diag_set(d, SF_ERR_BAD_MODEL, "%s: '%s' must hold one float value (it has %llu values of %s)", path,
                           a->name, (unsigned long long)a->numel, sf_dtype_name(a->dtype));
      sf_st_to_f32(a, &v);
      if (!isfinite(v)) return sf_diag_set(d, SF_ERR_BAD_MODEL, "%s: '%s' is not a finite number", path, a->name);
      alpha_v = v;
    }
    m->factor = f->scale * (alpha_v / (double)m->rank);
  }
  return SF_OK; /* a module named twice (kohya and PEFT keys for one layer) is found once bound */
}

sf_lora_set *sf_lora_set_open(const char *spec, sf_diag *d) {
  sf_lora_set *set = calloc(1, sizeof *set);
  if (set == NULL) {
    sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "SF_PARAM_LORAS: out of memory");
    return NULL;
  }
  size_t lines = 1;
  for (const char *s = spec ? spec : ""; *s; s++) lines += *s == '\n';
  set->files = calloc(lines, sizeof *set->files);
  if (set->files == NULL) {
    sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "SF_PARAM_LORAS: out of memory");
    sf_lora_set_close(set);
    return NULL;
  }
  for (const char *s = spec ? spec : ""; *s;) {
    const char *nl = strchr(s, '\n');
    size_t len = nl ? (size_t)(nl - s) : strlen(s);
    const char *next = nl ? nl + 1 : s + len;
    if (len > 0 && s[len - 1] == '\r') len--;
    if (len == 0) {
      s = next;
      continue;
    }
    const char *tab = memchr(s, '\t', len);
    size_t plen = tab ? (size_t)(tab - s) : len;
    double scale = 1.0;
    if (tab) {
      int ok = sf_str_parse_double(tab + 1, len - plen - 1, &scale);
      if (ok <= 0) {
        sf_diag_set(d, ok < 0 ? SF_ERR_OUT_OF_MEMORY : SF_ERR_INVALID_ARGUMENT,
                    "SF_PARAM_LORAS: line '%.*s': the scale after the tab is not a finite number", (int)len, s);
        sf_lora_set_close(set);
        return NULL;
      }
    }
    if (plen == 0) {
      sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "SF_PARAM_LORAS: line '%.*s' has no path", (int)len, s);
      sf_lora_set_close(set);
      return NULL;
    }
    lora_file *f = &set->files[set->n];
    f->path = concat(s, plen, "");
    if (f->path == NULL) {
      sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "SF_PARAM_LORAS: out of memory");
      sf_lora_set_close(set);
      return NULL;
    }
    set->n++;
    f->scale = scale;
    f->st = sf_st_open(f->path, d);
    if (f->st == NULL || parse_file(f, set->n - 1, d) != SF_OK) {
      if (f->st == NULL && d->status == SF_OK) sf_diag_set(d, SF_ERR_IO, "%s: cannot open", f->path);
      sf_diag_prefix(d, "LoRA: ");
      sf_lora_set_close(set);
      return NULL;
    }
    s = next;
  }
  return set;
}

/* ---- binding ---- */

typedef struct name_entry {
  char *key; /* the module name with '.' read as '_' */
  const sf_st_tensor *t;
} name_entry;

static int cmp_entry(const void *a, const void *b) {
  return strcmp(((const name_entry *)a)->key, ((const name_entry *)b)->key);
}

static int cmp_ref(const void *a, const void *b) {
  const lora_module *x = *(lora_module *const *)a, *y = *(lora_module *const *)b;
  if (x->comp != y->comp) return x->comp < y->comp ? -1 : 1;
  int c = strcmp(x->target->name, y->target->name);
  if (c) return c;
  if (x->file != y->file) return x->file < y->file ? -1 : 1;
  return x < y ? -1 : x > y; /* one file's modules in key order */
}

/* Whether the module's matrices fit the tensor t it targets (d set otherwise). */
static int fits(const lora_file *f, const lora_module *m, const sf_st_tensor *t, sf_diag *d) {
  int ok = is_float(t->dtype) && (t->ndim == 2 || t->ndim == 4);
  const int64_t out = t->shape[0], in = ok ? t->shape[1] : 0;
  const int64_t kh = t->ndim == 4 ? t->shape[2] : 1, kw = t->ndim == 4 ? t->shape[3] : 1;
  if (ok) {
    const sf_st_tensor *dn = m->down, *up = m->up;
    ok = dn->shape[1] == in && up->shape[0] == out;
    if (dn->ndim == 4) ok = ok && dn->shape[2] == kh && dn->shape[3] == kw;
    else ok = ok && kh == 1 && kw == 1;
  }
  if (ok) return 1;
  char st[128], sd[128], su[128];
  shape_str(st, sizeof st, t->ndim, t->shape);
  shape_str(sd, sizeof sd, m->down->ndim, m->down->shape);
  shape_str(su, sizeof su, m->up->ndim, m->up->shape);
  sf_diag_set(d, SF_ERR_BAD_MODEL,
              "LoRA: %s: module '%s' (down %s, up %s) does not fit %s tensor '%s' %s (%s): up @ down must have its shape",
              f->path, m->base, sd, su, component_name[m->comp], t->name, st, sf_dtype_name(t->dtype));
  return 0;
}

static sf_status rebuild_refs(sf_lora_set *set, sf_diag *d) {
  size_t n = 0;
  for (size_t i = 0; i < set->n; i++)
    for (size_t m = 0; m < set->files[i].n_mods; m++) n += set->files[i].mods[m].target != NULL;
  lora_module **refs = calloc(n ? n : 1, sizeof *refs);
  if (refs == NULL) return sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "LoRA: out of memory");
  n = 0;
  for (size_t i = 0; i < set->n; i++)
    for (size_t m = 0; m < set->files[i].n_mods; m++)
      if (set->files[i].mods[m].target != NULL) refs[n++] = &set->files[i].mods[m];
  qsort(refs, n, sizeof *refs, cmp_ref);
  /* one file naming a module twice (e.g. kohya and PEFT keys for one layer) */
  for (size_t i = 1; i < n; i++)
    if (refs[i]->file == refs[i - 1]->file && refs[i]->target == refs[i - 1]->target) {
      sf_diag_set(d, SF_ERR_BAD_MODEL, "LoRA: %s: '%s' and '%s' both target '%s'", set->files[refs[i]->file].path,
                  refs[i - 1]->base, refs[i]->base, refs[i]->target->name);
      free(refs);
      return d->status;
    }
  free(set->refs);
  set->refs = refs;
  set->n_refs = n;
  return SF_OK;
}

sf_status sf_lora_bind(sf_lora_set *set, sf_lora_component comp, const sf_weights *w, sf_diag *d) {
  if (set == NULL || set->n == 0) return SF_OK;
  /* kohya names: every weight of the checkpoint's modules with '.' read as '_' */
  int any_kohya = 0;
  for (size_t i = 0; i < set->n; i++)
    for (size_t m = 0; m < set->files[i].n_mods; m++)
      any_kohya |= set->files[i].mods[m].comp == comp && set->files[i].mods[m].kohya;
  name_entry *names = NULL;
  size_t n_names = 0;
  sf_status s = SF_OK;
  if (any_kohya) {
    names = calloc(sf_weights_count(w) ? sf_weights_count(w) : 1, sizeof *names);
    if (names == NULL) return sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "LoRA: out of memory");
    for (size_t i = 0; i < sf_weights_count(w); i++) {
      const sf_st_tensor *t = sf_weights_at(w, i);
      if (!ends_with(t->name, ".weight") || (t->ndim != 2 && t->ndim != 4)) continue;
      char *k = concat(t->name, strlen(t->name) - strlen(".weight"), "");
      if (k == NULL) {
        s = sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "LoRA: out of memory");
        break;
      }
      for (char *c = k; *c; c++)
        if (*c == '.') *c = '_';
      names[n_names].key = k;
      names[n_names++].t = t;
    }
    if (s == SF_OK) qsort(names, n_names, sizeof *names, cmp_entry);
  }
  for (size_t i = 0; s == SF_OK && i < set->n; i++) {
    lora_file *f = &set->files[i];
    for (size_t mi = 0; s == SF_OK && mi < f->n_mods; mi++) {
      lora_module *m = &f->mods[mi];
      if (m->comp != comp) continue;
      const sf_st_tensor *t = NULL;
      if (m->kohya) {
        name_entry key = {.key = (char *)m->module};
        name_entry *e = bsearch(&key, names, n_names, sizeof *names, cmp_entry);
        if (e != NULL) {
          /* the first and last entry of that key: two modules reading alike are ambiguous */
          const name_entry *lo = e, *hi = e;
          while (lo > names && strcmp(lo[-1].key, m->module) == 0) lo--;
          while (hi + 1 < names + n_names && strcmp(hi[1].key, m->module) == 0) hi++;
          if (lo != hi) {
            s = sf_diag_set(d, SF_ERR_BAD_MODEL, "LoRA: %s: module '%s' is ambiguous: %s has both '%s' and '%s'",
                            f->path, m->base, component_name[comp], lo->t->name, hi->t->name);
            break;
          }
          t = e->t;
        }
      } else {
        char *name = concat(m->module, strlen(m->module), ".weight");
        if (name == NULL) {
          s = sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "LoRA: out of memory");
          break;
        }
        t = sf_weights_find(w, name);
        free(name);
      }
      if (t == NULL) {
        s = sf_diag_set(d, SF_ERR_BAD_MODEL, "LoRA: %s: module '%s' matches no layer of the model's %s", f->path,
                        m->base, component_name[comp]);
        break;
      }
      if (!fits(f, m, t, d)) {
        s = d->status;
        break;
      }
      m->target = t;
    }
  }
  for (size_t i = 0; i < n_names; i++) free(names[i].key);
  free(names);
  if (s != SF_OK) return s;
  return rebuild_refs(set, d);
}

size_t sf_lora_unbound(const sf_lora_set *set, sf_lora_component comp) {
  size_t n = 0;
  for (size_t i = 0; set && i < set->n; i++)
    for (size_t m = 0; m < set->files[i].n_mods; m++)
      n += set->files[i].mods[m].comp == comp && set->files[i].mods[m].target == NULL;
  return n;
}

size_t sf_lora_target_count(const sf_lora_set *set) {
  size_t n = 0;
  for (size_t i = 0; set && i < set->n_refs; i++) n += i == 0 || set->refs[i]->target != set->refs[i - 1]->target;
  return n;
}

/* ---- merging ---- */

typedef struct merge_term {
  double *up;   /* [out][rank] */
  double *down; /* [rank][cols] */
  int64_t rank;
  double factor;
} merge_term;

typedef struct merge_job {
  float *values;
  size_t cols;
  const merge_term *terms;
  size_t n_terms;
} merge_job;

/* Row o: for each value, acc = W; then per term (in LoRA order) s = sum over r = 0.. of
 * up[o,r] * down[r,c] and acc += factor * s; W' = float(acc). Columns go in chunks so the sums
 * run along rows of down (vectorisable, each value's sum still in r order). */
enum { MERGE_CHUNK = 256 };
static void merge_row(void *arg, size_t o) {
  const merge_job *j = arg;
  float *row = j->values + o * j->cols;
  double acc[MERGE_CHUNK], s[MERGE_CHUNK];
  for (size_t c0 = 0; c0 < j->cols; c0 += MERGE_CHUNK) {
    const size_t n = j->cols - c0 < MERGE_CHUNK ? j->cols - c0 : MERGE_CHUNK;
    for (size_t c = 0; c < n; c++) acc[c] = (double)row[c0 + c];
    for (size_t k = 0; k < j->n_terms; k++) {
      const merge_term *t = &j->terms[k];
      if (t->factor == 0.0) continue; /* scale 0: exactly the base weight */
      const double *u = t->up + o * (size_t)t->rank;
      for (size_t c = 0; c < n; c++) s[c] = 0.0;
      for (int64_t r = 0; r < t->rank; r++) {
        const double ur = u[r], *v = t->down + (size_t)r * j->cols + c0;
        for (size_t c = 0; c < n; c++) s[c] += ur * v[c];
      }
      for (size_t c = 0; c < n; c++) acc[c] += t->factor * s[c];
    }
    for (size_t c = 0; c < n; c++) row[c0 + c] = (float)acc[c];
  }
}

/* t's values as doubles. */
static double *to_double(const sf_st_tensor *t) {
  double *out = malloc((size_t)t->numel * sizeof *out);
  if (out != NULL && t->dtype == SF_DTYPE_F64) { /* little-endian, as the file */
    memcpy(out, t->data, (size_t)t->numel * sizeof *out);
    return out;
  }
  float *f = malloc((size_t)t->numel * sizeof *f);
  if (f == NULL || out == NULL) {
    free(f);
    free(out);
    return NULL;
  }
  sf_st_to_f32(t, f);
  for (uint64_t i = 0; i < t->numel; i++) out[i] = (double)f[i];
  free(f);
  return out;
}

int sf_lora_merge(void *binding, const char *name, float *values, int ndim, const int64_t *shape, pthreadpool_t pool,
                  sf_diag *d) {
  const sf_lora_binding *b = binding;
  const sf_lora_set *set = b ? b->set : NULL;
  if (set == NULL || set->n_refs == 0 || ndim < 1) return 1;
  /* the first ref of (comp, name) */
  size_t lo = 0, hi = set->n_refs;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const lora_module *m = set->refs[mid];
    int c = m->comp != b->comp ? (m->comp < b->comp ? -1 : 1) : strcmp(m->target->name, name);
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  size_t end = lo;
  while (end < set->n_refs && set->refs[end]->comp == b->comp && strcmp(set->refs[end]->target->name, name) == 0) end++;
  if (end == lo) return 1;
  uint64_t count = 1;
  for (int i = 0; i < ndim; i++) count *= (uint64_t)shape[i];
  const size_t out = (size_t)shape[0], cols = out ? (size_t)(count / out) : 0;
  if (count != set->refs[lo]->target->numel) {
    sf_diag_set(d, SF_ERR_INTERNAL, "LoRA: tensor '%s' fetched with %llu values, the checkpoint has %llu", name,
                (unsigned long long)count, (unsigned long long)set->refs[lo]->target->numel);
    return 0;
  }
  const size_t n_terms = end - lo;
  merge_term *terms = calloc(n_terms, sizeof *terms);
  int ok = terms != NULL;
  for (size_t k = 0; ok && k < n_terms; k++) {
    const lora_module *m = set->refs[lo + k];
    terms[k].rank = m->rank;
    terms[k].factor = m->factor;
    terms[k].up = to_double(m->up);
    terms[k].down = to_double(m->down);
    ok = terms[k].up != NULL && terms[k].down != NULL;
  }
  if (ok) {
    merge_job job = {.values = values, .cols = cols, .terms = terms, .n_terms = n_terms};
    if (pool != NULL && pthreadpool_get_threads_count(pool) > 1 && out > 1)
      pthreadpool_parallelize_1d(pool, merge_row, &job, out, sf_pool_flags(pool));
    else
      for (size_t o = 0; o < out; o++) merge_row(&job, o);
  } else {
    sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "LoRA: out of memory merging into '%s'", name);
  }
  for (size_t k = 0; terms && k < n_terms; k++) {
    free(terms[k].up);
    free(terms[k].down);
  }
  free(terms);
  return ok;
}
