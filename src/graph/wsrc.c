#include "graph/wsrc.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/pool.h"
#include "io/model_folder.h"
#include "io/safetensors.h"

struct sf_wsrc {
  struct sf_weights *w; /* NULL: random */
  uint64_t seed;
  char component[64];
  sf_diag diag;
  uint64_t params;
  sf_weight_policy policy;
  float *stage[SF_WSRC_STAGES];
  size_t stage_cap[SF_WSRC_STAGES];
  pthreadpool_t pool; /* NULL: the calling thread */
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
void sf_wsrc_destroy(sf_wsrc *ws) {
  if (ws == NULL) return;
  for (int i = 0; i < SF_WSRC_STAGES; i++) free(ws->stage[i]);
  free(ws);
}

float *sf_wsrc_stage(sf_wsrc *ws, int slot, size_t n) {
  if (slot < 0 || slot >= SF_WSRC_STAGES) {
    sf_diag_set(&ws->diag, SF_ERR_INTERNAL, "%s: no staging slot %d", ws->component, slot);
    return NULL;
  }
  if (n == 0) n = 1;
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
int sf_wsrc_is_random(const sf_wsrc *ws) { return ws->w == NULL; }

void sf_wsrc_set_weight_policy(sf_wsrc *ws, sf_weight_policy policy) { ws->policy = policy; }
sf_weight_policy sf_wsrc_weight_policy(const sf_wsrc *ws) { return ws->policy; }

int sf_wsrc_is_f16(const sf_wsrc *ws, const char *name) {
  if (ws->w == NULL) return 0;
  const sf_st_tensor *t = sf_weights_find(ws->w, name);
  return t != NULL && t->dtype == SF_DTYPE_F16;
}
uint64_t sf_wsrc_param_count(const sf_wsrc *ws) { return ws->params; }
void sf_wsrc_set_pool(sf_wsrc *ws, pthreadpool_t pool) { ws->pool = pool; }
pthreadpool_t sf_wsrc_pool(const sf_wsrc *ws) { return ws->pool; }

int sf_wsrc_has(const sf_wsrc *ws, const char *name, int dflt) {
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

/* The checkpoint tensor `name` if it has the shape and a float type (NULL for random
 * sources); sets ws->diag and returns 0 otherwise. */
static int check_tensor(sf_wsrc *ws, const char *name, int ndim, const int64_t *shape,
                        const sf_st_tensor **out) {
  *out = NULL;
  if (ws->w != NULL) {
    const sf_st_tensor *t = sf_weights_find(ws->w, name);
    if (t == NULL) {
      sf_diag_set(&ws->diag, SF_ERR_BAD_MODEL, "%s: checkpoint has no tensor '%s' that the config requires",
                  ws->component, name);
      return 0;
    }
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (!same) {
      char want[128], got[128];
      shape_str(want, sizeof want, ndim, shape);
      shape_str(got, sizeof got, t->ndim, t->shape);
      sf_diag_set(&ws->diag, SF_ERR_BAD_MODEL, "%s: tensor '%s' has shape %s, the config implies %s",
                  ws->component, name, got, want);
      return 0;
    }
    if (t->dtype != SF_DTYPE_F32 && t->dtype != SF_DTYPE_F16 && t->dtype != SF_DTYPE_BF16 &&
        t->dtype != SF_DTYPE_F64) {
      sf_diag_set(&ws->diag, SF_ERR_BAD_MODEL, "%s: tensor '%s' has dtype %s, expected a float type",
                  ws->component, name, sf_dtype_name(t->dtype));
      return 0;
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
  fill_job f = {.out = out, .n = n, .t = t, .init = init};
  if (t == NULL) {
    f.s0 = ws->seed ^ fnv1a(name);
    f.bound = 1.0f / sqrtf((float)(fan_in ? fan_in : 1));
  }
  fill_values(ws->pool, &f);
  if (t != NULL) sf_weights_mark_used(ws->w, t);
  ws->params += n;
}

int sf_wsrc_fetch_into(sf_wsrc *ws, const char *name, int ndim, const int64_t *shape, sf_init init,
                       size_t fan_in, float *dst) {
  const sf_st_tensor *t = NULL;
  if (ws->diag.status != SF_OK || !check_tensor(ws, name, ndim, shape, &t)) return 0;
  fill(ws, t, name, shape_count(ndim, shape), init, fan_in, dst);
  return 1;
}

float *sf_wsrc_fetch(sf_wsrc *ws, const char *name, int ndim, const int64_t *shape, sf_init init,
                     size_t fan_in) {
  const sf_st_tensor *t = NULL;
  if (ws->diag.status != SF_OK || !check_tensor(ws, name, ndim, shape, &t)) return NULL;
  uint64_t n = shape_count(ndim, shape);
  float *out = malloc((size_t)(n ? n : 1) * sizeof(float));
  if (out == NULL) {
    sf_diag_set(&ws->diag, SF_ERR_OUT_OF_MEMORY, "%s: out of memory for tensor '%s' (%llu values)",
                ws->component, name, (unsigned long long)n);
    return NULL;
  }
  fill(ws, t, name, n, init, fan_in, out);
  return out;
}

sf_status sf_wsrc_status(const sf_wsrc *ws, int check_unused, sf_diag *d) {
  if (ws->diag.status != SF_OK) return sf_diag_set(d, ws->diag.status, "%s", ws->diag.msg);
  if (check_unused && ws->w != NULL) {
    const sf_st_tensor *t = sf_weights_first_unused(ws->w);
    if (t != NULL)
      return sf_diag_set(d, SF_ERR_BAD_MODEL,
                         "%s: checkpoint tensor '%s' is not used by the architecture its config describes",
                         ws->component, t->name);
  }
  return SF_OK;
}
