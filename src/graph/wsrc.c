#include "graph/wsrc.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/pool.h"
#include "io/model_folder.h"
#include "io/pack.h"
#include "io/safetensors.h"

struct sf_wsrc {
  struct sf_weights *w; /* NULL: random (or a pack) */
  const sf_pack *pack;  /* a pack source */
  unsigned pack_nets;   /* sf_network bits served */
  sf_igemm_isa pack_isa;
  unsigned char *pack_used; /* per blob of the pack */
  uint64_t seed;
  char component[512]; /* how messages name the source: its checkpoint file, or the component */
  sf_diag diag;
  uint64_t params;
  sf_weight_policy policy;
  int xnnpack_gemm;      /* sf_wsrc_set_xnnpack_gemm */
  sf_problems *problems; /* dry mode (sf_wsrc_set_dry) */
  float *stage[SF_WSRC_STAGES];
  size_t stage_max[SF_WSRC_STAGES]; /* floats, largest asked for (dry builds: noted) */
  size_t stage_cap[SF_WSRC_STAGES];
  pthreadpool_t pool; /* NULL: the calling thread */
  sf_wsrc_merge_fn merge; /* sf_wsrc_set_merge */
  void *merge_user;
};

static sf_wsrc *wsrc_new(struct sf_weights *w, uint64_t seed, const char *component) {
  sf_wsrc *ws = calloc(1, sizeof *ws);
  if (ws == NULL) return NULL;
  ws->w = w;
  ws->seed = seed;
  snprintf(ws->component, sizeof ws->component, "%s", component ? component : "model");
  return ws;
}

sf_wsrc *sf_wsrc_from_weights(struct sf_weights *w, const char *component) {
  return w ? wsrc_new(w, 0, component) : NULL;
}
sf_wsrc *sf_wsrc_random(uint64_t seed, const char *component) { return wsrc_new(NULL, seed, component); }
sf_wsrc *sf_wsrc_from_pack(const sf_pack *pk, unsigned networks, sf_igemm_isa isa, const char *component) {
  if (pk == NULL) return NULL;
  sf_wsrc *ws = wsrc_new(NULL, 0, component);
  if (ws == NULL) return NULL;
  ws->pack_used = calloc(sf_pack_count(pk) ? sf_pack_count(pk) : 1, 1);
  if (ws->pack_used == NULL) {
    free(ws);
    return NULL;
  }
  ws->pack = pk;
  ws->pack_nets = networks;
  ws->pack_isa = isa;
  return ws;
}

void sf_wsrc_destroy(sf_wsrc *ws) {
  if (ws == NULL) return;
  for (int i = 0; i < SF_WSRC_STAGES; i++) free(ws->stage[i]);
  free(ws->pack_used);
  free(ws);
}

int sf_wsrc_is_pack(const sf_wsrc *ws) { return ws->pack != NULL; }

/* The blob name of the source's networks (NULL if none has it). */
static const sf_pack_blob *pack_find(const sf_wsrc *ws, const char *name) {
  for (unsigned bit = 1; bit <= 8; bit <<= 1) {
    if (!(ws->pack_nets & bit)) continue;
    const sf_pack_blob *b = sf_pack_find(ws->pack, bit, name);
    if (b != NULL) return b;
  }
  return NULL;
}

float *sf_wsrc_stage(sf_wsrc *ws, int slot, size_t n) {
  if (slot < 0 || slot >= SF_WSRC_STAGES) {
    sf_diag_set(&ws->diag, SF_ERR_INTERNAL, "%s: no staging slot %d", ws->component, slot);
    return NULL;
  }
  if (n == 0) n = 1;
  if (n > ws->stage_max[slot]) ws->stage_max[slot] = n;
  if (n > ws->stage_cap[slot]) {
    free(ws->stage[slot]);
    ws->stage_cap[slot] = 0;
    ws->stage[slot] = n <= SIZE_MAX / sizeof(float) ? malloc(n * sizeof(float)) : NULL;
    if (ws->stage[slot] == NULL) {
      if (ws->diag.status == SF_OK)
        sf_diag_set(&ws->diag, SF_ERR_OUT_OF_MEMORY, "%s: out of memory staging %zu weights", ws->component, n);
      return NULL;
    }
    ws->stage_cap[slot] = n;
  }
  return ws->stage[slot];
}
int sf_wsrc_is_random(const sf_wsrc *ws) { return ws->w == NULL && ws->pack == NULL; }

void sf_wsrc_note_stage(sf_wsrc *ws, int slot, size_t n) {
  if (slot >= 0 && slot < SF_WSRC_STAGES && n > ws->stage_max[slot]) ws->stage_max[slot] = n;
}

size_t sf_wsrc_stage_bytes(const sf_wsrc *ws) {
  size_t total = 0;
  for (int i = 0; i < SF_WSRC_STAGES; i++) total += ws->stage_max[i] * sizeof(float);
  return total;
}
void sf_wsrc_set_dry(sf_wsrc *ws, sf_problems *problems) { ws->problems = problems; }
int sf_wsrc_is_dry(const sf_wsrc *ws) { return ws->problems != NULL; }

void sf_wsrc_set_weight_policy(sf_wsrc *ws, sf_weight_policy policy) { ws->policy = policy; }
sf_weight_policy sf_wsrc_weight_policy(const sf_wsrc *ws) { return ws->policy; }
void sf_wsrc_set_xnnpack_gemm(sf_wsrc *ws, int on) { ws->xnnpack_gemm = on != 0; }
int sf_wsrc_xnnpack_gemm(const sf_wsrc *ws) { return ws->xnnpack_gemm && ws->pack == NULL; }

int sf_wsrc_is_f16(const sf_wsrc *ws, const char *name) {
  if (ws->pack != NULL) {
    const sf_pack_blob *b = pack_find(ws, name);
    return b != NULL && b->dtype == SF_PACK_F16;
  }
  if (ws->w == NULL) return 0;
  const sf_st_tensor *t = sf_weights_find(ws->w, name);
  return t != NULL && t->dtype == SF_DTYPE_F16;
}
uint64_t sf_wsrc_param_count(const sf_wsrc *ws) { return ws->params; }
void sf_wsrc_set_pool(sf_wsrc *ws, pthreadpool_t pool) { ws->pool = pool; }
pthreadpool_t sf_wsrc_pool(const sf_wsrc *ws) { return ws->pool; }
void sf_wsrc_set_merge(sf_wsrc *ws, sf_wsrc_merge_fn fn, void *user) {
  ws->merge = fn;
  ws->merge_user = user;
}

/* The merge hook over a checkpoint tensor just read (0 with ws->diag set when it fails). */
static int merge(sf_wsrc *ws, const sf_st_tensor *t, const char *name, int ndim, const int64_t *shape, float *out) {
  if (ws->merge == NULL || t == NULL || ws->problems != NULL) return 1;
  sf_diag md = {0};
  if (ws->merge(ws->merge_user, name, out, ndim, shape, ws->pool, &md)) return 1;
  sf_diag_set(&ws->diag, md.status != SF_OK ? md.status : SF_ERR_INTERNAL, "%s: %s", ws->component, md.msg);
  return 0;
}

int sf_wsrc_has(const sf_wsrc *ws, const char *name, int dflt) {
  if (ws->pack != NULL) return pack_find(ws, name) != NULL;
  if (ws->w == NULL) return dflt;
  return sf_weights_find(ws->w, name) != NULL;
}

/* splitmix64: a stream per tensor name, so a tensor's random values do not depend on
 * the order in which the builder asks for tensors. Its state after j steps is
 * s0 + j * golden (mod 2^64) and each output is a function of the state alone, so the
 * pair of values (2j, 2j + 1) is mix(s0 + (j + 1) * golden): any part of a tensor is
 * computed without the values before it, and parts fill on several threads with exactly
 * the values one sequential pass gives. */
#define SPLITMIX_GOLDEN 0x9E3779B97F4A7C15ull
static uint64_t splitmix64_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static uint64_t fnv1a(const char *s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
  return h;
}

/* How a tensor's values are made: converted from a checkpoint tensor, or random. */
typedef struct fill_job {
  float *out;
  uint64_t n;
  const sf_st_tensor *t; /* NULL: random */
  sf_init init;
  uint64_t s0;           /* the random stream's start */
  float bound;
} fill_job;

/* Values [begin, end) of the tensor; begin is even (pairs of random values share a draw). */
static void fill_range(const fill_job *f, uint64_t begin, uint64_t end) {
  float *out = f->out;
  if (f->t != NULL) {
    sf_st_to_f32_range(f->t, out, (size_t)begin, (size_t)end);
    return;
  }
  if (f->init == SF_INIT_ONES || f->init == SF_INIT_ZEROS) {
    float v = f->init == SF_INIT_ONES ? 1.0f : 0.0f;
    for (uint64_t i = begin; i < end; i++) out[i] = v;
    return;
  }
  const float bound = f->bound;
  uint64_t s = f->s0 + (begin / 2) * SPLITMIX_GOLDEN;
  for (uint64_t i = begin; i < end; i += 2) {
    uint64_t r = splitmix64_mix(s += SPLITMIX_GOLDEN);
    /* 24-bit uniforms in [-1, 1) */
    out[i] = bound * ((float)(r >> 40) * (1.0f / 8388608.0f) - 1.0f);
    if (i + 1 < end) out[i + 1] = bound * ((float)((r >> 8) & 0xFFFFFF) * (1.0f / 8388608.0f) - 1.0f);
  }
}

/* Values per parallel task (even), and the size below which a tensor is filled on the
 * calling thread (waking the pool costs more than it saves). */
enum { FILL_CHUNK = 1 << 16, FILL_PARALLEL_MIN = 1 << 17 };

static void fill_task(void *arg, size_t start, size_t count) {
  const fill_job *f = arg;
  fill_range(f, start, start + count);
}

static void fill_values(pthreadpool_t pool, const fill_job *f) {
  if (pool == NULL || pthreadpool_get_threads_count(pool) <= 1 || f->n < FILL_PARALLEL_MIN) {
    fill_range(f, 0, f->n);
    return;
  }
  pthreadpool_parallelize_1d_tile_1d(pool, fill_task, (void *)f, (size_t)f->n, FILL_CHUNK, sf_pool_flags(pool));
}

static void shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
  size_t off = 0;
  off += (size_t)snprintf(buf + off, cap - off, "[");
  for (int i = 0; i < ndim && off < cap; i++)
    off += (size_t)snprintf(buf + off, cap - off, "%s%lld", i ? ", " : "", (long long)shape[i]);
  if (off < cap) snprintf(buf + off, cap - off, "]");
}

/* " (in the file: 'KEY')" when the checkpoint is a view naming t otherwise (a single-file
 * checkpoint's original key), else "". */
static const char *origin_note(const sf_wsrc *ws, const sf_st_tensor *t, char *buf, size_t cap) {
  const char *o = sf_weights_origin(ws->w, t);
  buf[0] = '\0';
  if (o != NULL && strcmp(o, t->name) != 0) snprintf(buf, cap, " (in the file: '%s')", o);
  return buf;
}

/* A problem with the checkpoint: the first failure in a normal build; one more entry in the
 * list in dry mode (then the build goes on). Returns what check_tensor returns. */
static int problem(sf_wsrc *ws, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int problem(sf_wsrc *ws, const char *fmt, ...) {
  char msg[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (ws->problems == NULL) {
    sf_diag_set(&ws->diag, SF_ERR_BAD_MODEL, "%s: %s", ws->component, msg);
    return 0;
  }
  sf_problems_add(ws->problems, "%s: %s", ws->component, msg);
  return 1;
}

/* The checkpoint tensor `name` if it has the shape and a float type (NULL for random
 * sources, and in dry mode for a tensor with a problem); sets ws->diag and returns 0 otherwise. */
static int check_tensor(sf_wsrc *ws, const char *name, int ndim, const int64_t *shape,
                        const sf_st_tensor **out) {
  *out = NULL;
  if (ws->w != NULL) {
    const sf_st_tensor *t = sf_weights_find(ws->w, name);
    if (t == NULL) return problem(ws, "checkpoint has no tensor '%s' that the config requires", name);
    sf_weights_mark_used(ws->w, t);
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (!same) {
      char want[128], got[128];
      shape_str(want, sizeof want, ndim, shape);
      shape_str(got, sizeof got, t->ndim, t->shape);
      char note[300];
      return problem(ws, "tensor '%s'%s has shape %s, the config implies %s", name,
                     origin_note(ws, t, note, sizeof note), got, want);
    }
    if (t->dtype != SF_DTYPE_F32 && t->dtype != SF_DTYPE_F16 && t->dtype != SF_DTYPE_BF16 &&
        t->dtype != SF_DTYPE_F64) {
      char note[300];
      return problem(ws, "tensor '%s'%s has dtype %s, expected a float type", name,
                     origin_note(ws, t, note, sizeof note), sf_dtype_name(t->dtype));
    }
    *out = t;
  }
  return 1;
}

static uint64_t shape_count(int ndim, const int64_t *shape) {
  uint64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= (uint64_t)shape[i];
  return n;
}

static void fill(sf_wsrc *ws, const sf_st_tensor *t, const char *name, uint64_t n, sf_init init, size_t fan_in,
                 float *out) {
  if (ws->problems != NULL) { /* dry: nothing is read */
    memset(out, 0, (size_t)n * sizeof *out);
  } else {
    fill_job f = {.out = out, .n = n, .t = t, .init = init};
    if (t == NULL) {
      f.s0 = ws->seed ^ fnv1a(name);
      f.bound = 1.0f / sqrtf((float)(fan_in ? fan_in : 1));
    }
    fill_values(ws->pool, &f);
  }
  ws->params += n;
}

int sf_wsrc_check(sf_wsrc *ws, const char *name, int ndim, const int64_t *shape) {
  const sf_st_tensor *t = NULL;
  if (ws->diag.status != SF_OK || !check_tensor(ws, name, ndim, shape, &t)) return 0;
  ws->params += shape_count(ndim, shape);
  return 1;
}

int sf_wsrc_fetch_into(sf_wsrc *ws, const char *name, int ndim, const int64_t *shape, sf_init init,
                       size_t fan_in, float *dst) {
  const sf_st_tensor *t = NULL;
  if (ws->diag.status != SF_OK || !check_tensor(ws, name, ndim, shape, &t)) return 0;
  fill(ws, t, name, shape_count(ndim, shape), init, fan_in, dst);
  return merge(ws, t, name, ndim, shape, dst);
}

float *sf_wsrc_fetch(sf_wsrc *ws, const char *name, int ndim, const int64_t *shape, sf_init init,
                     size_t fan_in) {
  const sf_st_tensor *t = NULL;
  if (ws->diag.status != SF_OK || !check_tensor(ws, name, ndim, shape, &t)) return NULL;
  uint64_t n = shape_count(ndim, shape);
  /* dry mode: zeros from calloc (large ones are untouched pages) */
  float *out = ws->problems != NULL ? calloc((size_t)(n ? n : 1), sizeof(float))
                                    : malloc((size_t)(n ? n : 1) * sizeof(float));
  if (out == NULL) {
    sf_diag_set(&ws->diag, SF_ERR_OUT_OF_MEMORY, "%s: out of memory for tensor '%s' (%llu values)",
                ws->component, name, (unsigned long long)n);
    return NULL;
  }
  if (ws->problems != NULL) ws->params += n;
  else fill(ws, t, name, n, init, fan_in, out);
  if (!merge(ws, t, name, ndim, shape, out)) {
    free(out);
    return NULL;
  }
  return out;
}

sf_status sf_wsrc_status(const sf_wsrc *ws, int check_unused, sf_diag *d) {
  if (ws->diag.status != SF_OK) return sf_diag_set(d, ws->diag.status, "%s", ws->diag.msg);
  if (check_unused && ws->pack != NULL)
    for (size_t i = 0; i < sf_pack_count(ws->pack); i++) {
      const sf_pack_blob *b = sf_pack_at(ws->pack, i);
      if ((b->network & ws->pack_nets) && !ws->pack_used[i])
        return sf_diag_set(d, SF_ERR_BAD_MODEL,
                           "%s: %s: blob '%s' is not used by the architecture its config describes (a pack of "
                           "another model?)",
                           ws->component, sf_pack_label(ws->pack), b->name);
    }
  if (check_unused && ws->w != NULL) {
    if (ws->problems != NULL) { /* dry: every one (weights' used marks are set by check_tensor) */
      for (size_t i = 0; i < sf_weights_count(ws->w); i++)
        if (!sf_weights_used_at(ws->w, i)) {
          char note[300];
          sf_problems_add(ws->problems, "%s: checkpoint tensor '%s'%s is not used by the architecture its config describes",
                          ws->component, sf_weights_at(ws->w, i)->name,
                          origin_note(ws, sf_weights_at(ws->w, i), note, sizeof note));
        }
      return SF_OK;
    }
    const sf_st_tensor *t = sf_weights_first_unused(ws->w);
    char note[300];
    if (t != NULL)
      return sf_diag_set(d, SF_ERR_BAD_MODEL,
                         "%s: checkpoint tensor '%s'%s is not used by the architecture its config describes",
                         ws->component, t->name, origin_note(ws, t, note, sizeof note));
  }
  return SF_OK;
}

/* ---- pack sources ---- */

static void dims_str(char *buf, size_t cap, uint32_t ndim, const uint64_t *shape) {
  int64_t s[SF_PACK_MAX_DIMS];
  for (uint32_t i = 0; i < ndim && i < SF_PACK_MAX_DIMS; i++) s[i] = shape[i] > INT64_MAX ? -1 : (int64_t)shape[i];
  shape_str(buf, cap, (int)ndim, s);
}

/* The blob name of kind, unused so far; a problem (and NULL) otherwise. */
static const sf_pack_blob *pack_take(sf_wsrc *ws, const char *name, uint32_t kind, const char *what) {
  if (ws->diag.status != SF_OK) return NULL;
  const sf_pack_blob *b = pack_find(ws, name);
  if (b == NULL) {
    problem(ws, "%s has no %s '%s' that the config requires (a pack of another model?)", sf_pack_label(ws->pack),
            what, name);
    return NULL;
  }
  if (b->kind != kind) {
    problem(ws, "%s: blob '%s' holds %s, the architecture needs %s there", sf_pack_label(ws->pack), name,
            sf_pack_kind_name(b->kind), sf_pack_kind_name(kind));
    return NULL;
  }
  const size_t i = sf_pack_index_of(ws->pack, b);
  if (ws->pack_used[i]) {
    problem(ws, "%s: blob '%s' is asked for twice", sf_pack_label(ws->pack), name);
    return NULL;
  }
  if ((uintptr_t)b->data % 64 != 0) {
    problem(ws, "%s: blob '%s' is not 64-byte aligned in memory", sf_pack_label(ws->pack), name);
    return NULL;
  }
  ws->pack_used[i] = 1;
  return b;
}

/* A blob of exactly these dims and dtype; a problem (0) otherwise. */
static int pack_shape(sf_wsrc *ws, const sf_pack_blob *b, uint32_t dtype, uint32_t ndim, const uint64_t *want) {
  int same = b->ndim == ndim && b->dtype == dtype;
  for (uint32_t i = 0; same && i < ndim; i++) same = b->shape[i] == want[i];
  if (same) return 1;
  char w[128], g[128];
  dims_str(w, sizeof w, ndim, want);
  dims_str(g, sizeof g, b->ndim, b->shape);
  problem(ws, "%s: blob '%s' is %s %s, the config and weight type imply %s %s", sf_pack_label(ws->pack), b->name,
          sf_pack_dtype_name(b->dtype), g, sf_pack_dtype_name(dtype), w);
  return 0;
}

int sf_wsrc_pack_gemm(sf_wsrc *ws, const char *layer, size_t n, size_t cin, size_t taps, sf_wtype type, int bias,
                      sf_igemm_weights *pw) {
  memset(pw, 0, sizeof *pw);
  if (ws->pack == NULL || ws->diag.status != SF_OK) return 0;
  char name[300];
  sf_igemm_weights lay;
  if (!sf_igemm_layout(&lay, n, cin, taps, ws->pack_isa, type)) {
    sf_diag_set(&ws->diag, SF_ERR_UNSUPPORTED, "%s: %s: layer '%s': %s panels of the %s layout cannot run on this CPU",
                ws->component, sf_pack_label(ws->pack), layer, sf_wtype_name(type), sf_igemm_isa_name(ws->pack_isa));
    return 0;
  }
  static const uint32_t dtypes[SF_WTYPE_COUNT] = {SF_PACK_F32, SF_PACK_F16, SF_PACK_I8};
  const uint64_t cols[1] = {(uint64_t)(lay.n_tiles * lay.nr)};
  const uint64_t panels[3] = {(uint64_t)lay.n_tiles, (uint64_t)lay.k, (uint64_t)lay.nr};
  snprintf(name, sizeof name, "%s.weight", layer);
  const sf_pack_blob *w = pack_take(ws, name, SF_PACK_PANELS, "prepacked layer");
  if (w == NULL || !pack_shape(ws, w, dtypes[type], 3, panels)) return 0;
  if (w->param != (uint64_t)n) {
    problem(ws, "%s: layer '%s' has %llu output channels, the config implies %zu", sf_pack_label(ws->pack), layer,
            (unsigned long long)w->param, n);
    return 0;
  }
  snprintf(name, sizeof name, "%s.bias", layer);
  const sf_pack_blob *b = pack_take(ws, name, SF_PACK_BIAS, "layer bias");
  if (b == NULL || !pack_shape(ws, b, SF_PACK_F32, 1, cols)) return 0;
  const sf_pack_blob *sc = NULL;
  if (type == SF_WTYPE_Q8) {
    snprintf(name, sizeof name, "%s.weight_scale", layer);
    sc = pack_take(ws, name, SF_PACK_SCALE, "layer scale");
    if (sc == NULL || !pack_shape(ws, sc, SF_PACK_F32, 1, cols)) return 0;
  }
  *pw = lay;
  pw->packed = w->data;
  pw->bias = b->data;
  pw->scale = sc ? sc->data : NULL;
  pw->external = 1;
  ws->params += (uint64_t)n * lay.k + (bias ? n : 0);
  return 1;
}

const void *sf_wsrc_pack_tensor(sf_wsrc *ws, const char *name, int ndim, const int64_t *shape, int half) {
  if (ws->pack == NULL || ws->diag.status != SF_OK || ndim < 1 || ndim > SF_PACK_MAX_DIMS) return NULL;
  uint64_t want[SF_PACK_MAX_DIMS];
  for (int i = 0; i < ndim; i++) want[i] = shape[i] < 0 ? 0 : (uint64_t)shape[i];
  const sf_pack_blob *b = pack_take(ws, name, SF_PACK_TENSOR, "tensor");
  if (b == NULL || !pack_shape(ws, b, half ? SF_PACK_F16 : SF_PACK_F32, (uint32_t)ndim, want)) return NULL;
  ws->params += shape_count(ndim, shape);
  return b->data;
}
