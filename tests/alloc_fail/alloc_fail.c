/* Allocation-failure walk (issue 16, "Never crash the host app").
 *
 * Three sequences of public calls, each library call bracketed by af_enable / af_disable
 * (interpose.h: every allocation call made during it, by the library or by XNNPACK,
 * pthreadpool, cpuinfo, zlib, or glibc and the loader on their behalf, is a point):
 *  - txt2img: sf_context_create -> sf_context_set_int(THREADS, 2) -> sf_pipeline_load (tiny-sd,
 *    TAESD from fixtures/public/taesd) -> sf_encode_prompt -> sf_generate (64x64, 2 steps) ->
 *    sf_image_write_png -> every destroy;
 *  - threads: sf_context_create -> sf_context_set_int(THREADS, 8) -> sf_context_destroy. Eight
 *    threads is more than the C library's stack cache keeps for pthreadpool (context.c), so
 *    some of pthreadpool's own pthread_create calls allocate: failing them must end in
 *    SF_ERR_OUT_OF_MEMORY after the library's bounded wait, not in a hang;
 *  - lora: sf_pipeline_load of the model-format set's LoRA base model (text encoder and UNet)
 *    with two of its LoRA files (SF_PARAM_LORAS) -> sf_encode_prompt -> every destroy; always
 *    walked as the sample below (its load is txt2img's plus the LoRA code, whose every allocation
 *    site the sample takes), also with SF_ALLOC_FAIL_ALL.
 *
 * A counting run (no failure) numbers a sequence's points and records each one's call stack;
 * it runs twice, and both must agree (the walk relies on a deterministic order). Then, for
 * each point N walked, a child process (forked from this one, which never calls the library
 * itself, so every child starts with cpuinfo, XNNPACK and the library uninitialised) runs the
 * sequence with the N-th call failing, and must:
 *  - not crash (no signal; under ASan/UBSan no report), nor hang: alarm() kills a child after
 *    SF_ALLOC_FAIL_TIMEOUT seconds (default 30, or 10 times the counting run's time if more),
 *    after printing where its main thread is;
 *  - make the call that saw the failure return SF_ERR_OUT_OF_MEMORY with a non-empty
 *    sf_last_error() that says "memory" or "allocate" (or, if the failure was absorbed and the
 *    call succeeded, produce the same embeddings, pixels and PNG bytes as the counting run);
 *  - make no other call fail;
 *  - leak nothing: after the destroys, the blocks and mappings still alive per caller object
 *    may not exceed the counting run's (which are cpuinfo's tables and the loader's TLS of
 *    cached thread stacks; the library's own must be zero); under ASan, LeakSanitizer checks
 *    each child at exit too. (Only a thread pool whose start the library abandoned after its
 *    bounded wait is excused: that memory is lost by design.)
 *
 * Which points: SF_ALLOC_FAIL_ALL=1 walks every point (the exhaustive walk). By default, every
 * point of the threads sequence and a deterministic sample of txt2img's: every point of every
 * call other than sf_pipeline_load and sf_generate, and, in those two, the first two and the
 * last points of each allocation site (the return address into the allocator's caller) plus
 * every SF_ALLOC_FAIL_STRIDE-th point (default: chosen so that about SF_ALLOC_FAIL_SAMPLE
 * points, default 250, are walked). tests/CMakeLists.txt sets SF_ALLOC_FAIL_ALL=1 for builds
 * without sanitizers: CI walks every point there and the sample under ASan + UBSan.
 * SF_ALLOC_FAIL_SEQUENCE=txt2img or threads runs one sequence only; SF_ALLOC_FAIL_POINTS=a,b,c
 * walks just those points (of each sequence run). SF_ALLOC_FAIL_JOBS=n runs n children at a
 * time (default: the online CPUs, at least 2, at most 8). SF_ALLOC_FAIL_THREADS=n gives the
 * txt2img context n threads instead of 2. SF_ALLOC_FAIL_STATS=1 prints the points per call,
 * caller, allocation site and call stack, and the time per call; SF_ALLOC_FAIL_VERBOSE=1 the
 * call stack of every failed call.
 *
 * Measured (2-core VM): 1553 txt2img points + 22 threads points in a Release build, all
 * walked, 4.8 CPU-minutes (13 min wall with the machine loaded 15-20 deep, about half the CPU
 * time when idle); under ASan + UBSan the sample walks 247 + 22 in 2.9 CPU-minutes (7 min wall
 * loaded), every point in 32 min wall. Before the tokenizer kept its strings in one block the
 * txt2img sequence had 99,847 points. */
#define _GNU_SOURCE
#include <errno.h>
#include <execinfo.h>
#include <signal.h>
#include <snapfusion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../test.h"
#include "interpose.h"

#define PROMPT "a photo of an astronaut riding a horse on mars"
#define MAX_POINTS ((size_t)1 << 18)

enum {
  S_CTX = 1,
  S_THREADS,
  S_LOPTS,
  S_LOPTS_SET,
  S_LOAD,
  S_INFO,
  S_ENCODE,
  S_GPARAMS,
  S_GPARAMS_SET,
  S_GENERATE,
  S_WRITE_PNG,
  S_DESTROY,
  S_LORAS_SET,
  S_COUNT
};
static const char *const step_names[S_COUNT] = {
    "?",
    "sf_context_create",
    "sf_context_set_int(THREADS)",
    "sf_params_create(load)",
    "sf_params_set_string(TAESD_PATH)",
    "sf_pipeline_load",
    "sf_pipeline_get_int",
    "sf_encode_prompt",
    "sf_params_create(generate)",
    "sf_params_set_*(generate)",
    "sf_generate",
    "sf_image_write_png",
    "destroy",
    "sf_params_set_*(LORAS, COMPONENTS)",
};
static const char *step_name(int step) { return step_names[step > 0 && step < S_COUNT ? step : 0]; }

/* What a counting run leaves for the walk (shared with the children). */
typedef struct baseline {
  uint64_t calls;
  uint64_t emb_hash, pix_hash, png_hash;
  long blocks[AF_DSO_COUNT], maps[AF_DSO_COUNT];
  int complete;
  af_point points[MAX_POINTS];
} baseline;

typedef struct outcome {
  uint64_t emb_hash, pix_hash, png_hash;
  int complete;
  int abandoned; /* a thread pool start was abandoned after the library's bounded wait */
} outcome;

typedef struct scenario {
  const char *name;
  void (*run)(outcome *o);
} scenario;

static const char *fixtures;
static char png_dir[4096];
static unsigned timeout_s = 30;
static int defects;
static uint64_t point_no;
static double step_seconds[S_COUNT];
static int txt2img_threads = 2;

#define REPORT(...)                                               \
  do {                                                            \
    char line_[2048];                                             \
    int n_ = snprintf(line_, sizeof line_, __VA_ARGS__);          \
    if (n_ > 0) {                                                 \
      if ((size_t)n_ >= sizeof line_) n_ = (int)sizeof line_ - 1; \
      line_[n_++] = '\n';                                         \
      if (write(2, line_, (size_t)n_) < 0) {                      \
      }                                                           \
    }                                                             \
  } while (0)

/* LeakSanitizer (ASan builds): the dynamic loader's bookkeeping for libgcc_s, which backtrace()
 * loads in af_setup, is reported at this program's exit; it is the C library's, not a leak of
 * the library under test. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:_dl_map_object_deps\n"; }

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static uint64_t fnv(const void *p, size_t n, uint64_t h) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

static int env_int(const char *name, int dflt) {
  const char *e = getenv(name);
  return e && *e ? atoi(e) : dflt;
}

/* ---- one run of a sequence (in a child) ---- */

/* Decides after a call of step `step` that returned s: 1 to go on. */
static int step_done(int step, sf_status s, outcome *o) {
  af_disable();
  const af_hit *h = af_get_hit();
  int hit_here = h->happened && h->step == step;
  if (s == SF_OK) return 1;
  const char *msg = sf_last_error();
  if (strstr(msg, "did not start within") != NULL) {
    o->abandoned = 1;
    REPORT("point %llu: %s: %s (as designed: the hang is contained)", (unsigned long long)point_no, step_name(step),
           msg);
  }
  if (!hit_here) {
    REPORT("point %llu: %s returned %d (%s: %s) though no allocation of it failed", (unsigned long long)point_no,
           step_name(step), (int)s, sf_status_string(s), msg);
    defects++;
  } else if (s != SF_ERR_OUT_OF_MEMORY) {
    REPORT("point %llu: %s returned %d (%s: %s), not SF_ERR_OUT_OF_MEMORY", (unsigned long long)point_no,
           step_name(step), (int)s, sf_status_string(s), msg);
    defects++;
  } else if (msg[0] == '\0') {
    REPORT("point %llu: %s returned SF_ERR_OUT_OF_MEMORY with an empty sf_last_error()", (unsigned long long)point_no,
           step_name(step));
    defects++;
  } else if (strstr(msg, "memory") == NULL && strstr(msg, "allocate") == NULL) {
    REPORT("point %llu: %s returned SF_ERR_OUT_OF_MEMORY with a message that does not say so: %s",
           (unsigned long long)point_no, step_name(step), msg);
    defects++;
  }
  return 0;
}

/* The call in progress, for the watchdog's message. */
static volatile sig_atomic_t running_step;

/* SIGALRM in a child: says where the main thread is, then dies of the signal. */
static void on_watchdog(int sig) {
  static const char head[] = "watchdog: the child is still running; its main thread is in:\n";
  if (write(2, head, sizeof head - 1) < 0) {
  }
  const char *name = step_name(running_step);
  if (write(2, name, strlen(name)) < 0 || write(2, "\n", 1) < 0) {
  }
  void *frames[32];
  backtrace_symbols_fd(frames, backtrace(frames, 32), 2);
  signal(sig, SIG_DFL);
  raise(sig);
}

#define STEP(id, expr)                   \
  do {                                   \
    if (go) {                            \
      double t0_ = now_s();              \
      running_step = id;                 \
      af_enable(id);                     \
      sf_status s_ = (expr);             \
      go = step_done(id, s_, o);         \
      step_seconds[id] += now_s() - t0_; \
    }                                    \
  } while (0)

static void seq_txt2img(outcome *o) {
  char model[4200], taesd[4200], png[4200];
  snprintf(model, sizeof model, "%s/public/tiny-sd", fixtures);
  snprintf(taesd, sizeof taesd, "%s/public/taesd", fixtures);
  snprintf(png, sizeof png, "%s/alloc-fail-%ld.png", png_dir, (long)getpid());
  sf_context *ctx = NULL;
  sf_params *lo = NULL, *gp = NULL;
  sf_pipeline *pipe = NULL;
  sf_image *img = NULL;
  float *emb = NULL;
  int64_t hidden = 0;
  int go = 1;
  STEP(S_CTX, sf_context_create(&ctx));
  STEP(S_THREADS, sf_context_set_int(ctx, SF_PARAM_THREADS, txt2img_threads));
  STEP(S_LOPTS, sf_params_create(&lo));
  STEP(S_LOPTS_SET, sf_params_set_string(lo, SF_PARAM_TAESD_PATH, taesd));
  STEP(S_LOAD, sf_pipeline_load(ctx, model, lo, &pipe));
  STEP(S_INFO, sf_pipeline_get_int(pipe, SF_INFO_TEXT_HIDDEN, &hidden));
  size_t n_emb = (size_t)hidden * 77;
  if (go && (emb = calloc(n_emb ? n_emb : 1, sizeof *emb)) == NULL) go = 0;
  STEP(S_ENCODE, sf_encode_prompt(pipe, PROMPT, 0, emb, n_emb));
  STEP(S_GPARAMS, sf_params_create(&gp));
  STEP(S_GPARAMS_SET, sf_params_set_string(gp, SF_PARAM_PROMPT, PROMPT));
  STEP(S_GPARAMS_SET, sf_params_set_string(gp, SF_PARAM_NEGATIVE_PROMPT, "blurry"));
  STEP(S_GPARAMS_SET, sf_params_set_int(gp, SF_PARAM_WIDTH, 64));
  STEP(S_GPARAMS_SET, sf_params_set_int(gp, SF_PARAM_HEIGHT, 64));
  STEP(S_GPARAMS_SET, sf_params_set_int(gp, SF_PARAM_STEPS, 2));
  STEP(S_GPARAMS_SET, sf_params_set_int(gp, SF_PARAM_SEED, 7));
  STEP(S_GENERATE, sf_generate(pipe, gp, NULL, NULL, &img));
  STEP(S_WRITE_PNG, sf_image_write_png(img, png));
  if (go) {
    o->complete = 1;
    o->emb_hash = fnv(emb, n_emb * sizeof *emb, 1469598103934665603ull);
    o->pix_hash = fnv(sf_image_pixels(img), sf_image_stride(img) * sf_image_height(img), 1469598103934665603ull);
    FILE *f = fopen(png, "rb");
    uint64_t h = 1469598103934665603ull;
    if (f != NULL) {
      unsigned char buf[4096];
      size_t n;
      while ((n = fread(buf, 1, sizeof buf, f)) > 0) h = fnv(buf, n, h);
      fclose(f);
    }
    o->png_hash = h;
  }
  unlink(png);
  free(emb);
  running_step = S_DESTROY;
  af_enable(S_DESTROY);
  sf_image_destroy(img);
  sf_params_destroy(gp);
  sf_params_destroy(lo);
  sf_pipeline_destroy(pipe);
  sf_context_destroy(ctx);
  af_disable();
}

static void seq_threads(outcome *o) {
  sf_context *ctx = NULL;
  int go = 1;
  STEP(S_CTX, sf_context_create(&ctx));
  STEP(S_THREADS, sf_context_set_int(ctx, SF_PARAM_THREADS, 8));
  o->complete = go;
  running_step = S_DESTROY;
  af_enable(S_DESTROY);
  sf_context_destroy(ctx);
  af_disable();
}

/* lora: a load of the model-format set's base model (text encoder and UNet) with two LoRAs of its
 * lora/ folder (a kohya and a PEFT file: parsing, binding, float64 merging), then one prompt
 * encoded. Skipped when the set is absent. */
static char lora_model[4700], lora_spec[9400];
static void seq_lora(outcome *o) {
  sf_context *ctx = NULL;
  sf_params *lo = NULL;
  sf_pipeline *pipe = NULL;
  float *emb = NULL;
  int64_t hidden = 0;
  int go = 1;
  STEP(S_CTX, sf_context_create(&ctx));
  STEP(S_THREADS, sf_context_set_int(ctx, SF_PARAM_THREADS, txt2img_threads));
  STEP(S_LOPTS, sf_params_create(&lo));
  STEP(S_LORAS_SET, sf_params_set_string(lo, SF_PARAM_LORAS, lora_spec));
  STEP(S_LORAS_SET, sf_params_set_int(lo, SF_PARAM_COMPONENTS, SF_NET_TEXT_ENCODER | SF_NET_UNET));
  STEP(S_LOAD, sf_pipeline_load(ctx, lora_model, lo, &pipe));
  STEP(S_INFO, sf_pipeline_get_int(pipe, SF_INFO_TEXT_HIDDEN, &hidden));
  size_t n_emb = (size_t)hidden * 77;
  if (go && (emb = calloc(n_emb ? n_emb : 1, sizeof *emb)) == NULL) go = 0;
  STEP(S_ENCODE, sf_encode_prompt(pipe, PROMPT, 0, emb, n_emb));
  if (go) {
    o->complete = 1;
    o->emb_hash = fnv(emb, n_emb * sizeof *emb, 1469598103934665603ull);
  }
  free(emb);
  running_step = S_DESTROY;
  af_enable(S_DESTROY);
  sf_params_destroy(lo);
  sf_pipeline_destroy(pipe);
  sf_context_destroy(ctx);
  af_disable();
}

/* The lora sequence's model and LoRA list: the base folder the set's LoRA cases name
 * (tiny-sd-mini in the public set) and a kohya and a PEFT file of its lora/ folder; 0 when there
 * are none. */
static int lora_setup(void) {
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/models/lora", fixtures);
  DIR *d = opendir(dir);
  if (d == NULL) return 0;
  const char *kinds[2] = {"kohya", "peft"};
  char files[2][4600] = {"", ""};
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    for (int k = 0; k < 2; k++)
      if (!files[k][0] && strstr(e->d_name, kinds[k]) && strstr(e->d_name, ".safetensors"))
        snprintf(files[k], sizeof files[k], "%s/%s", dir, e->d_name);
  closedir(d);
  if (!files[0][0]) return 0;
  snprintf(lora_spec, sizeof lora_spec, "%s\t0.75%s%s%s", files[0], files[1][0] ? "\n" : "", files[1],
           files[1][0] ? "\t0.4" : "");
  /* the base folder: a case's "model": "NAME[/component] + LoRA..." in the set's manifest */
  char path[4400], base[256] = "";
  snprintf(path, sizeof path, "%s/models/manifest.json", fixtures);
  FILE *f = fopen(path, "rb");
  if (f == NULL) return 0;
  static char text[1 << 20];
  size_t n = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  text[n] = '\0';
  for (const char *m = strstr(text, "\"model\": \""); m && !base[0]; m = strstr(m + 1, "\"model\": \"")) {
    const char *v = m + 10, *end = strchr(v, '"'), *plus = strstr(v, " + LoRA");
    if (end && plus && plus < end) {
      size_t len = strcspn(v, "/ ");
      if (len < sizeof base) snprintf(base, sizeof base, "%.*s", (int)len, v);
    }
  }
  if (!base[0]) return 0;
  snprintf(lora_model, sizeof lora_model, "%s/models/%s", fixtures, base);
  char probe[4800];
  snprintf(probe, sizeof probe, "%s/model_index.json", lora_model);
  return access(probe, R_OK) == 0;
}

static const scenario scenarios[] = {{"txt2img", seq_txt2img}, {"threads", seq_threads}, {"lora", seq_lora}};

/* Runs sequence sc with point fail_at failing (0: none) against the counting run b (NULL: none),
 * recording into record_into (NULL: no recording). Exit codes: 0 pass, 3 pass with the failure
 * absorbed (same outputs), 4 the point was not reached, 1 a defect. */
static void child(const scenario *sc, uint64_t fail_at, const baseline *b, baseline *record_into) {
  signal(SIGALRM, on_watchdog);
  alarm(timeout_s);
  point_no = fail_at;
  af_arm(fail_at);
  if (record_into != NULL) af_record(record_into->points, MAX_POINTS);
  outcome o = {0};
  sc->run(&o);
  const af_hit *h = af_get_hit();
  long blocks[AF_DSO_COUNT], maps[AF_DSO_COUNT];
  af_live(blocks, maps);
  if (record_into != NULL) {
    record_into->calls = af_calls();
    record_into->complete = o.complete;
    record_into->emb_hash = o.emb_hash;
    record_into->pix_hash = o.pix_hash;
    record_into->png_hash = o.png_hash;
    memcpy(record_into->blocks, blocks, sizeof blocks);
    memcpy(record_into->maps, maps, sizeof maps);
    if (!o.complete) defects++;
    const char *stats = getenv("SF_ALLOC_FAIL_STATS");
    for (int st = 1; stats && atoi(stats) && st < S_COUNT; st++)
      if (step_seconds[st] > 0) REPORT("  %s: %.3f s in %s", sc->name, step_seconds[st], step_name(st));
    /* the library keeps nothing once everything is destroyed */
    if (blocks[AF_DSO_SNAPFUSION] != 0 || maps[AF_DSO_SNAPFUSION] != 0) {
      REPORT("%s counting run: %ld blocks and %ld mappings of libsnapfusion alive after every destroy", sc->name,
             blocks[AF_DSO_SNAPFUSION], maps[AF_DSO_SNAPFUSION]);
      defects++;
    }
  }
  int code = 0;
  if (fail_at != 0 && !h->happened) {
    REPORT("point %llu: not reached (this run made %llu calls)", (unsigned long long)fail_at,
           (unsigned long long)af_calls());
    code = 4;
  }
  if (fail_at != 0 && h->happened && o.complete) {
    if (o.emb_hash != b->emb_hash || o.pix_hash != b->pix_hash || o.png_hash != b->png_hash) {
      REPORT("point %llu: the failure in %s was absorbed but the outputs differ (embeddings %s, pixels %s, PNG %s)",
             (unsigned long long)fail_at, step_name(h->step), o.emb_hash == b->emb_hash ? "same" : "differ",
             o.pix_hash == b->pix_hash ? "same" : "differ", o.png_hash == b->png_hash ? "same" : "differ");
      defects++;
    } else if (code == 0) {
      code = 3;
    }
  }
  if (b != NULL && !af_overflowed() && !o.abandoned) {
    for (int d = 0; d < AF_DSO_COUNT; d++) {
      if (blocks[d] > b->blocks[d] || maps[d] > b->maps[d]) {
        REPORT("point %llu: leak: %ld blocks and %ld mappings allocated by %s are alive after every destroy "
               "(the counting run: %ld and %ld)",
               (unsigned long long)fail_at, blocks[d], maps[d], af_dso_name(d), b->blocks[d], b->maps[d]);
        defects++;
      }
    }
  }
  if (af_overflowed()) REPORT("point %llu: note: the live-block table overflowed", (unsigned long long)fail_at);
  if ((defects || env_int("SF_ALLOC_FAIL_VERBOSE", 0)) && h->happened) {
    REPORT("point %llu: the failed call: %s of %zu bytes by %s during %s; its stack:", (unsigned long long)fail_at,
           af_kind_name(h->kind), h->size, af_dso_name(h->dso), step_name(h->step));
    backtrace_symbols_fd(h->frames, h->n_frames, 2);
  }
  if (o.abandoned) _exit(defects ? 1 : code); /* LeakSanitizer would see the abandoned pool */
  exit(defects ? 1 : code);                   /* exit, not _exit: LeakSanitizer checks at exit */
}

/* ---- the walk (in the parent) ---- */

static const char *describe_status(int st, char *buf, size_t cap) {
  if (WIFEXITED(st)) snprintf(buf, cap, "exit %d", WEXITSTATUS(st));
  else if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM)
    snprintf(buf, cap, "HANG (killed by the %us watchdog)", timeout_s);
  else if (WIFSIGNALED(st)) snprintf(buf, cap, "CRASH (signal %d, %s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
  else snprintf(buf, cap, "status 0x%x", st);
  return buf;
}

/* Runs one counting child of sc into b; 1 on success. */
static int counting_run(const scenario *sc, baseline *b, const baseline *ref, double *seconds) {
  fflush(NULL);
  double t0 = now_s();
  pid_t pid = fork();
  if (pid < 0) return 0;
  if (pid == 0) child(sc, 0, ref, b);
  int st;
  if (waitpid(pid, &st, 0) != pid) return 0;
  *seconds = now_s() - t0;
  char buf[128];
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "%s: counting run failed: %s\n", sc->name, describe_status(st, buf, sizeof buf));
    return 0;
  }
  return 1;
}

static size_t n_recorded(const baseline *b) { return b->calls < MAX_POINTS ? (size_t)b->calls : MAX_POINTS; }

static size_t table_cap(size_t n) {
  size_t cap = 1;
  while (cap < 2 * n + 2) cap *= 2;
  return cap;
}

static void print_stats(const baseline *b) {
  size_t n = n_recorded(b);
  long per_step[S_COUNT] = {0}, per_dso[AF_DSO_COUNT] = {0}, per_kind[AF_KIND_COUNT] = {0};
  for (size_t i = 0; i < n; i++) {
    per_step[b->points[i].step < S_COUNT ? b->points[i].step : 0]++;
    per_dso[b->points[i].dso]++;
    per_kind[b->points[i].kind]++;
  }
  printf("points per call:\n");
  for (int s = 0; s < S_COUNT; s++)
    if (per_step[s]) printf("  %8ld  %s\n", per_step[s], step_name(s));
  printf("points per caller:\n");
  for (int d = 0; d < AF_DSO_COUNT; d++)
    if (per_dso[d]) printf("  %8ld  %s\n", per_dso[d], af_dso_name(d));
  printf("points per kind:\n");
  for (int k = 0; k < AF_KIND_COUNT; k++)
    if (per_kind[k]) printf("  %8ld  %s\n", per_kind[k], af_kind_name(k));
  /* the call stacks with the most points */
  size_t cap = table_cap(n);
  size_t *first = calloc(cap, sizeof *first), *count = calloc(cap, sizeof *count);
  if (first == NULL || count == NULL) {
    free(first);
    free(count);
    return;
  }
  size_t distinct = 0;
  for (size_t i = 0; i < n; i++) {
    size_t j = (size_t)b->points[i].sig & (cap - 1);
    while (count[j] != 0 && b->points[first[j]].sig != b->points[i].sig) j = (j + 1) & (cap - 1);
    if (count[j] == 0) {
      first[j] = i;
      distinct++;
    }
    count[j]++;
  }
  size_t sites = 0;
  for (size_t i = 0; i < n; i++) {
    int dup = 0;
    for (size_t k = 0; k < i && !dup; k++)
      dup = b->points[k].n_frames && b->points[i].n_frames && b->points[k].frames[0] == b->points[i].frames[0];
    sites += !dup;
  }
  printf("%zu distinct allocation sites, %zu distinct call stacks; the largest:\n", sites, distinct);
  fflush(stdout);
  for (int top = 0; top < 12; top++) {
    size_t best = cap;
    for (size_t j = 0; j < cap; j++)
      if (count[j] && (best == cap || count[j] > count[best])) best = j;
    if (best == cap) break;
    const af_point *p = &b->points[first[best]];
    printf("  %zu points (first: %zu, %s %s in %s):\n", count[best], first[best] + 1, af_dso_name(p->dso),
           af_kind_name(p->kind), step_name(p->step));
    fflush(stdout);
    backtrace_symbols_fd(p->frames, p->n_frames, 1);
    count[best] = 0;
  }
  free(first);
  free(count);
}

/* The points to walk, ascending: every one (all), or the sample described at the top with
 * every stride-th point (0: none). Returns their count; *out is malloc'ed. */
static size_t choose_points(const baseline *b, uint64_t **out, int all, size_t stride) {
  size_t n = n_recorded(b);
  uint64_t *list = malloc((n + 1) * sizeof *list);
  unsigned char *take = calloc(n + 1, 1);
  size_t cap = table_cap(n);
  size_t *first = calloc(cap, sizeof *first), *seen = calloc(cap, sizeof *seen), *last = calloc(cap, sizeof *last);
  if (list == NULL || take == NULL || first == NULL || seen == NULL || last == NULL) {
    free(list);
    free(take);
    free(first);
    free(seen);
    free(last);
    *out = NULL;
    return 0;
  }
  for (size_t i = 0; i < n; i++) {
    const af_point *p = &b->points[i];
    if (all || (p->step != S_LOAD && p->step != S_GENERATE)) take[i] = 1;
    if (stride && i % stride == stride - 1) take[i] = 1;
    /* the allocation site: the return address into the caller of the allocator */
    uintptr_t site = p->n_frames ? (uintptr_t)p->frames[0] : 0;
    size_t j = (size_t)((site * 0x9e3779b97f4a7c15ull) >> 20) & (cap - 1);
    while (seen[j] != 0 && (uintptr_t)b->points[first[j]].frames[0] != site) j = (j + 1) & (cap - 1);
    if (seen[j] == 0) first[j] = i;
    if (++seen[j] <= 2) take[i] = 1;
    last[j] = i;
  }
  for (size_t j = 0; j < cap; j++)
    if (seen[j]) take[last[j]] = 1;
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (take[i]) list[k++] = i + 1;
  free(take);
  free(first);
  free(seen);
  free(last);
  *out = list;
  return k;
}

/* Counts, checks and walks one sequence; returns the number of points that failed (or -1 when
 * the sequence could not be set up). */
static long walk(const scenario *sc, baseline *b, int jobs, int *walked_any) {
  /* Two counting runs: the order of the points must not change from run to run. */
  double t_count = 0, t2 = 0;
  if (!counting_run(sc, &b[0], NULL, &t_count) || !counting_run(sc, &b[1], &b[0], &t2)) return -1;
  size_t n_points = n_recorded(&b[0]);
  if (b[0].calls > MAX_POINTS) {
    fprintf(stderr, "%s: %llu points: more than the %zu this test records\n", sc->name,
            (unsigned long long)b[0].calls, MAX_POINTS);
    return -1;
  }
  int same = b[0].calls == b[1].calls;
  for (size_t i = 0; same && i < n_points; i++)
    if (b[0].points[i].sig != b[1].points[i].sig) {
      fprintf(stderr, "%s: the counting runs differ at point %zu (%s in %s); its stacks:\n", sc->name, i + 1,
              af_dso_name(b[0].points[i].dso), step_name(b[0].points[i].step));
      backtrace_symbols_fd(b[0].points[i].frames, b[0].points[i].n_frames, 2);
      fprintf(stderr, "--\n");
      backtrace_symbols_fd(b[1].points[i].frames, b[1].points[i].n_frames, 2);
      same = 0;
    }
  if (!same) {
    fprintf(stderr, "%s: the allocation order is not deterministic (%llu and %llu points)\n", sc->name,
            (unsigned long long)b[0].calls, (unsigned long long)b[1].calls);
    return -1;
  }
  printf("%s: %zu allocation points; a counting run takes %.2f s\n", sc->name, n_points, t_count);
  if (env_int("SF_ALLOC_FAIL_STATS", 0)) print_stats(&b[0]);

  unsigned t = (unsigned)(t_count * 10 + 1), t_env = (unsigned)env_int("SF_ALLOC_FAIL_TIMEOUT", 0);
  timeout_s = t_env > 0 ? t_env : t > 30 ? t : 30;

  uint64_t *list = NULL;
  size_t n_list = 0;
  char mode[256];
  const char *points_env = getenv("SF_ALLOC_FAIL_POINTS");
  if (points_env && *points_env) {
    list = malloc((strlen(points_env) / 2 + 2) * sizeof *list);
    for (const char *e = points_env; list && *e;) {
      char *end;
      unsigned long long v = strtoull(e, &end, 10);
      if (end == e) break;
      if (v >= 1 && v <= n_points) list[n_list++] = v;
      e = *end ? end + 1 : end;
    }
    snprintf(mode, sizeof mode, "the points of SF_ALLOC_FAIL_POINTS");
  } else if ((env_int("SF_ALLOC_FAIL_ALL", 0) && sc->run != seq_lora) || sc->run == seq_threads) {
    /* the lora load is txt2img's load (walked) plus the LoRA code: always the sample, which
     * takes every allocation site's first two and last points */
    n_list = choose_points(&b[0], &list, 1, 0);
    snprintf(mode, sizeof mode, "every point%s", sc == &scenarios[0] ? " (SF_ALLOC_FAIL_ALL)" : "");
  } else {
    size_t stride = (size_t)env_int("SF_ALLOC_FAIL_STRIDE", 0), sample = (size_t)env_int("SF_ALLOC_FAIL_SAMPLE", 250);
    if (stride == 0) {
      n_list = choose_points(&b[0], &list, 0, 0); /* the sample without a stride */
      free(list);
      if (n_list < sample) stride = n_points / (sample - n_list) + 1;
    }
    n_list = choose_points(&b[0], &list, 0, stride);
    char every[64] = "";
    if (stride) snprintf(every, sizeof every, ", every %zu-th point", stride);
    snprintf(mode, sizeof mode,
             "a sample: each allocation site's first two and last points, every point outside sf_pipeline_load "
             "and sf_generate%s",
             every);
  }
  if (list == NULL) return -1;
  printf("%s: walking %zu of them (%s); %d at a time, watchdog %u s\n", sc->name, n_list, mode, jobs, timeout_s);
  fflush(stdout);
  *walked_any |= n_list > 0;

  double t0 = now_s();
  pid_t pids[64] = {0};
  double started[64] = {0}, slowest = 0;
  uint64_t slowest_point = 0;
  uint64_t pts[64] = {0};
  size_t next = 0, done = 0, passed = 0, absorbed = 0;
  long failed = 0, absorbed_by[AF_DSO_COUNT] = {0};
  while (done < n_list) {
    int slot = -1;
    for (int j = 0; j < jobs; j++)
      if (pids[j] == 0) slot = j;
    if (slot >= 0 && next < n_list) {
      fflush(NULL);
      pid_t pid = fork();
      if (pid < 0) {
        perror("fork");
        free(list);
        return -1;
      }
      if (pid == 0) child(sc, list[next], &b[0], NULL);
      pids[slot] = pid;
      started[slot] = now_s();
      pts[slot] = list[next++];
      continue;
    }
    int st;
    pid_t pid = wait(&st);
    if (pid < 0) {
      perror("wait");
      free(list);
      return -1;
    }
    for (int j = 0; j < jobs; j++) {
      if (pids[j] != pid) continue;
      const af_point *p = &b[0].points[pts[j] - 1];
      if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        passed++;
      } else if (WIFEXITED(st) && WEXITSTATUS(st) == 3) {
        passed++;
        absorbed++;
        absorbed_by[p->dso]++;
        if (p->dso != AF_DSO_LIBC) {
          printf("  point %llu: %s of %u bytes by %s in %s: absorbed, same outputs; its stack:\n",
                 (unsigned long long)pts[j], af_kind_name(p->kind), p->size, af_dso_name(p->dso), step_name(p->step));
          fflush(stdout);
          backtrace_symbols_fd(p->frames, p->n_frames, 1);
        }
      } else {
        char buf[128];
        failed++;
        fprintf(stderr, "FAILED %s point %llu (%s %u bytes by %s in %s): %s\n", sc->name, (unsigned long long)pts[j],
                af_kind_name(p->kind), p->size, af_dso_name(p->dso), step_name(p->step),
                describe_status(st, buf, sizeof buf));
      }
      pids[j] = 0;
      if (now_s() - started[j] > slowest) {
        slowest = now_s() - started[j];
        slowest_point = pts[j];
      }
      done++;
      if (done % 200 == 0) {
        printf("  %zu/%zu walked, %ld failed, %.0f s\n", done, n_list, failed, now_s() - t0);
        fflush(stdout);
      }
    }
  }
  printf("%s: %zu points walked in %.1f s: %zu passed (%zu of them absorbed the failure with identical outputs",
         sc->name, n_list, now_s() - t0, passed, absorbed);
  for (int d = 0; d < AF_DSO_COUNT; d++)
    if (absorbed_by[d]) printf("; %ld by %s", absorbed_by[d], af_dso_name(d));
  printf("), %ld failed; the slowest child: point %llu, %.1f s\n", failed, (unsigned long long)slowest_point, slowest);
  fflush(stdout);
  free(list);
  return failed;
}

int main(void) {
  fixtures = sf_test_fixtures();
  if (fixtures == NULL) return TEST_SKIP_EXIT_CODE;
  char probe[4200];
  snprintf(probe, sizeof probe, "%s/public/taesd/taesd_decoder.safetensors", fixtures);
  if (access(probe, R_OK) != 0) {
    fprintf(stderr, "SKIPPED: %s not found\n", probe);
    return TEST_SKIP_EXIT_CODE;
  }
  const char *tmp = getenv("TMPDIR");
  snprintf(png_dir, sizeof png_dir, "%s", tmp && *tmp ? tmp : "/tmp");
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  int jobs = env_int("SF_ALLOC_FAIL_JOBS", cpus > 2 ? (cpus < 8 ? (int)cpus : 8) : 2);
  txt2img_threads = env_int("SF_ALLOC_FAIL_THREADS", 2);
  if (jobs < 1) jobs = 1;
  if (jobs > 64) jobs = 64;
  af_setup();
  /* The counting runs' records, shared with the children (two per sequence). */
  baseline *b = mmap(NULL, 2 * sizeof *b, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (b == MAP_FAILED) {
    perror("mmap");
    return 1;
  }
  int walked_any = 0;
  const char *only = getenv("SF_ALLOC_FAIL_SEQUENCE");
  for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++) {
    if (only && *only && strcmp(only, scenarios[i].name) != 0) continue;
    if (scenarios[i].run == seq_lora && !lora_setup()) {
      printf("lora: SKIPPED (no LoRA cases with lora/ files in %s/models)\n", fixtures);
      continue;
    }
    memset(b, 0, 2 * sizeof *b);
    long failed = walk(&scenarios[i], b, jobs, &walked_any);
    CHECK_MSG(failed == 0, "%s: %ld points failed", scenarios[i].name, failed);
  }
  CHECK(walked_any);
  munmap(b, 2 * sizeof *b);
  TEST_MAIN_END();
}
