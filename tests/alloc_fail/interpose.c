/* The allocator interposer of the allocation-failure test: see interpose.h. Compiled with
 * -fno-builtin, so that no allocation here is turned into a call of itself, and without
 * sanitizers: the sanitizer runtime allocates through these functions while it initialises. */
#define _GNU_SOURCE
#include "interpose.h"

#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <link.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- the next definitions (glibc's, or the sanitizer runtime's) ---- */

static struct {
  void *(*malloc)(size_t);
  void *(*calloc)(size_t, size_t);
  void *(*realloc)(void *, size_t);
  void (*free)(void *);
  int (*posix_memalign)(void **, size_t, size_t);
  void *(*aligned_alloc)(size_t, size_t);
  void *(*memalign)(size_t, size_t);
  void *(*valloc)(size_t);
  void *(*pvalloc)(size_t);
  void *(*mmap)(void *, size_t, int, int, int, off_t);
  int (*munmap)(void *, size_t);
} real;

/* Until the pointers above are looked up (by a constructor, once the C library and the sanitizer
 * runtime have initialised), and while dlsym looks them up, blocks come from here (each with its
 * size in front); they are never freed. */
static _Alignas(16) unsigned char boot[1 << 20];
static size_t boot_used;
static int resolving;

static void *boot_alloc(size_t n) {
  n = (n + 15) & ~(size_t)15;
  if (n > sizeof boot - boot_used - 16) return NULL;
  unsigned char *p = boot + boot_used + 16;
  memcpy(p - 16, &n, sizeof n);
  boot_used += n + 16;
  return p;
}

static void *boot_aligned(size_t align, size_t n) {
  if (align <= 16) return boot_alloc(n);
  if (align & (align - 1) || n > SIZE_MAX - align) return NULL;
  unsigned char *p = boot_alloc(n + align);
  return p ? (void *)(((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1)) : NULL;
}

static int is_boot(const void *p) {
  return (const unsigned char *)p >= boot && (const unsigned char *)p < boot + sizeof boot;
}

#define LOOKUP(name) real.name = (__typeof__(real.name))dlsym(RTLD_NEXT, #name)

static void resolve(void) {
  if (real.free != NULL || resolving) return;
  resolving = 1;
  LOOKUP(malloc);
  LOOKUP(calloc);
  LOOKUP(realloc);
  LOOKUP(posix_memalign);
  LOOKUP(aligned_alloc);
  LOOKUP(memalign);
  LOOKUP(valloc);
  LOOKUP(pvalloc);
  LOOKUP(mmap);
  LOOKUP(munmap);
  LOOKUP(free); /* last: real.free != NULL means all are there */
  resolving = 0;
}

__attribute__((constructor(101))) static void resolve_at_start(void) { resolve(); }

#define READY() (real.free != NULL)

/* ---- who is calling ---- */

typedef struct range {
  uintptr_t lo, hi;
  int dso;
} range;
static range ranges[128];
static int n_ranges;

static const char *const dso_names[AF_DSO_COUNT] = {"test", "libsnapfusion", "libXNNPACK", "libpthreadpool",
                                                     "libcpuinfo", "libz", "libc", "ld.so", "sanitizer", "other"};
const char *af_dso_name(int dso) { return dso >= 0 && dso < AF_DSO_COUNT ? dso_names[dso] : "?"; }

static const char *const kind_names[AF_KIND_COUNT] = {"malloc", "calloc", "realloc", "aligned", "strdup", "mmap"};
const char *af_kind_name(int kind) { return kind >= 0 && kind < AF_KIND_COUNT ? kind_names[kind] : "?"; }

static int classify(const char *name, int first) {
  if (first || name == NULL || *name == '\0') return AF_DSO_TEST;
  const char *base = strrchr(name, '/');
  base = base ? base + 1 : name;
  static const struct {
    const char *prefix;
    int dso;
  } known[] = {{"libsnapfusion", AF_DSO_SNAPFUSION}, {"libXNNPACK", AF_DSO_XNNPACK},
               {"libpthreadpool", AF_DSO_PTHREADPOOL}, {"libcpuinfo", AF_DSO_CPUINFO},
               {"libz.", AF_DSO_ZLIB},                {"libc.", AF_DSO_LIBC},
               {"ld-linux", AF_DSO_LDSO},             {"libasan", AF_DSO_SANITIZER},
               {"libubsan", AF_DSO_SANITIZER},        {"liblsan", AF_DSO_SANITIZER},
               {"libtsan", AF_DSO_SANITIZER},         {"libclang_rt", AF_DSO_SANITIZER}};
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (strncmp(base, known[i].prefix, strlen(known[i].prefix)) == 0) return known[i].dso;
  return AF_DSO_OTHER;
}

static int phdr_cb(struct dl_phdr_info *info, size_t size, void *data) {
  int *first = data;
  int dso = classify(info->dlpi_name, *first);
  *first = 0;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X) || n_ranges == (int)(sizeof ranges / sizeof ranges[0])) continue;
    ranges[n_ranges].lo = info->dlpi_addr + ph->p_vaddr;
    ranges[n_ranges].hi = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
    ranges[n_ranges].dso = dso;
    n_ranges++;
  }
  (void)size;
  return 0;
}

static int dso_of(const void *addr) {
  uintptr_t a = (uintptr_t)addr;
  for (int i = 0; i < n_ranges; i++)
    if (a >= ranges[i].lo && a < ranges[i].hi) return ranges[i].dso;
  return AF_DSO_OTHER;
}

/* ---- live blocks: an open-addressing table in an anonymous mapping (which LeakSanitizer
 * does not scan; keys are also stored scrambled), so tracking hides no leak ---- */

#define LIVE_CAP ((size_t)1 << 17)
#define SCRAMBLE ((uintptr_t)0x5a5aa5a5c3c33c3cull)
typedef struct slot {
  uintptr_t key; /* 0: empty */
  int32_t dso, is_map;
} slot;
static slot *live;
static size_t live_n;
static long live_count[2][AF_DSO_COUNT];
static int live_overflow;
static atomic_flag live_lock = ATOMIC_FLAG_INIT;

static size_t slot_of(uintptr_t key) {
  uint64_t x = key;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return (size_t)x & (LIVE_CAP - 1);
}

static void lock(void) {
  while (atomic_flag_test_and_set_explicit(&live_lock, memory_order_acquire)) {
  }
}
static void unlock(void) { atomic_flag_clear_explicit(&live_lock, memory_order_release); }

static void live_add(const void *p, int dso, int is_map) {
  if (live == NULL || p == NULL || dso < 0) return;
  uintptr_t key = (uintptr_t)p ^ SCRAMBLE;
  lock();
  if (live_n >= LIVE_CAP / 4 * 3) {
    live_overflow = 1;
  } else {
    size_t i = slot_of(key);
    while (live[i].key != 0 && live[i].key != key) i = (i + 1) & (LIVE_CAP - 1);
    if (live[i].key == 0) live_n++;
    else live_count[live[i].is_map][live[i].dso]--;
    live[i].key = key;
    live[i].dso = dso;
    live[i].is_map = is_map;
    live_count[is_map][dso]++;
  }
  unlock();
}

/* Removes p; returns the caller object it was counted for, or -1. */
static int live_remove(const void *p) {
  if (live == NULL || p == NULL) return -1;
  uintptr_t key = (uintptr_t)p ^ SCRAMBLE;
  int dso = -1;
  lock();
  size_t i = slot_of(key);
  while (live[i].key != 0 && live[i].key != key) i = (i + 1) & (LIVE_CAP - 1);
  if (live[i].key == key) {
    dso = live[i].dso;
    live_count[live[i].is_map][dso]--;
    live_n--;
    /* backward-shift deletion keeps every probe chain intact */
    size_t j = i;
    for (;;) {
      live[i].key = 0;
      for (;;) {
        j = (j + 1) & (LIVE_CAP - 1);
        if (live[j].key == 0) goto done;
        size_t home = slot_of(live[j].key);
        /* move j back to i unless its home lies cyclically in (i, j] */
        if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) break;
      }
      live[i] = live[j];
      i = j;
    }
  }
done:
  unlock();
  return dso;
}

void af_live(long blocks[AF_DSO_COUNT], long maps[AF_DSO_COUNT]) {
  lock();
  for (int d = 0; d < AF_DSO_COUNT; d++) {
    blocks[d] = live_count[0][d];
    maps[d] = live_count[1][d];
  }
  unlock();
}

int af_overflowed(void) { return live_overflow; }

/* ---- counting and failing ---- */

static atomic_int counting, cur_step;
static atomic_uint_fast64_t n_calls;
static uint64_t fail_at;
static af_point *rec;
static size_t rec_cap;
static af_hit hit;
static _Thread_local int in_hook;

void af_setup(void) {
  resolve();
  int first = 1;
  n_ranges = 0;
  dl_iterate_phdr(phdr_cb, &first);
  void *frames[4];
  backtrace(frames, 4); /* loads the unwinder now rather than inside a counted call */
  if (live == NULL) {
    void *m = real.mmap(NULL, LIVE_CAP * sizeof *live, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    live = m == MAP_FAILED ? NULL : m;
  }
}

void af_record(af_point *points, size_t cap) {
  rec = points;
  rec_cap = cap;
}
void af_arm(uint64_t n) { fail_at = n; }
void af_enable(int step) {
  atomic_store(&cur_step, step);
  atomic_store(&counting, 1);
}
void af_disable(void) { atomic_store(&counting, 0); }
uint64_t af_calls(void) { return atomic_load(&n_calls); }
const af_hit *af_get_hit(void) { return &hit; }

static uint64_t hash_frames(void *const *frames, int n) {
  uint64_t h = 1469598103934665603ull;
  for (int i = 0; i < n; i++) h = (h ^ (uint64_t)(uintptr_t)frames[i]) * 1099511628211ull;
  return h;
}

/* The library and its dependencies: what the test is about. */
static int is_subject(int dso) {
  return dso == AF_DSO_SNAPFUSION || dso == AF_DSO_XNNPACK || dso == AF_DSO_PTHREADPOOL || dso == AF_DSO_CPUINFO ||
         dso == AF_DSO_ZLIB;
}

#define AF_DEEP 64

/* Counts a call from `caller` when counting is on; returns 1 when this one must fail.
 * *dso: the caller's object when counted (its block is then tracked), else -1. A call by the C
 * library, the loader or the sanitizer runtime counts only when made on behalf of the library or
 * a dependency (fopen's FILE, a new thread's TLS), i.e. when one of them is on the call stack:
 * not, say, the sanitizer runtime's own set-up of a new thread. */
static int intercept(int kind, size_t size, const void *caller, int *dso) {
  *dso = -1;
  if (!atomic_load_explicit(&counting, memory_order_relaxed) || in_hook) return 0;
  int who = dso_of(caller);
  if (who == AF_DSO_TEST) return 0;
  void *frames[AF_DEEP];
  int n = -1;
  if (!is_subject(who)) {
    in_hook = 1;
    n = backtrace(frames, AF_DEEP);
    in_hook = 0;
    int on_behalf = 0;
    for (int i = 0; i < n && !on_behalf; i++) on_behalf = is_subject(dso_of(frames[i]));
    if (!on_behalf) return 0;
  }
  *dso = who;
  uint64_t idx = atomic_fetch_add(&n_calls, 1) + 1;
  int fail = idx == fail_at;
  if (!fail && (rec == NULL || idx > rec_cap)) return 0;
  if (n < 0) {
    in_hook = 1;
    n = backtrace(frames, AF_DEEP);
    in_hook = 0;
  }
  /* The first frames are the interposer's own (in the test program), and under ASan that of its
   * backtrace interceptor: skip them. */
  int skip = 0;
  while (skip < n && (dso_of(frames[skip]) == AF_DSO_TEST || dso_of(frames[skip]) == AF_DSO_SANITIZER)) skip++;
  /* ... and end at the first frame back in it (the test's call of the library). */
  int nf = 0;
  while (skip + nf < n && nf < AF_FRAMES && dso_of(frames[skip + nf]) != AF_DSO_TEST) nf++;
  if (rec != NULL && idx <= rec_cap) {
    af_point *pt = &rec[idx - 1];
    pt->sig = hash_frames(frames + skip, nf) ^ (uint64_t)atomic_load(&cur_step) << 56;
    pt->size = size > UINT32_MAX ? UINT32_MAX : (uint32_t)size;
    pt->step = (uint8_t)atomic_load(&cur_step);
    pt->dso = (uint8_t)who;
    pt->kind = (uint8_t)kind;
    pt->n_frames = (uint8_t)(nf < AF_POINT_FRAMES ? nf : AF_POINT_FRAMES);
    memcpy(pt->frames, frames + skip, pt->n_frames * sizeof frames[0]);
  }
  if (fail) {
    hit.step = atomic_load(&cur_step);
    hit.dso = who;
    hit.kind = kind;
    hit.size = size;
    hit.index = idx;
    hit.n_frames = nf;
    memcpy(hit.frames, frames + skip, (size_t)nf * sizeof frames[0]);
    atomic_thread_fence(memory_order_release);
    hit.happened = 1;
  }
  return fail;
}

#define CALLER __builtin_return_address(0)

/* ---- the interposed functions ---- */

void *malloc(size_t n) {
  if (!READY()) return boot_alloc(n);
  int dso;
  if (intercept(AF_MALLOC, n, CALLER, &dso)) {
    errno = ENOMEM;
    return NULL;
  }
  void *p = real.malloc(n);
  live_add(p, dso, 0);
  return p;
}

void *calloc(size_t n, size_t size) {
  if (!READY()) {
    size_t t;
    return __builtin_mul_overflow(n, size, &t) ? NULL : boot_alloc(t); /* boot is zeroed, never reused */
  }
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) total = SIZE_MAX;
  int dso;
  if (intercept(AF_CALLOC, total, CALLER, &dso)) {
    errno = ENOMEM;
    return NULL;
  }
  void *p = real.calloc(n, size);
  live_add(p, dso, 0);
  return p;
}

static void *do_realloc(void *old, size_t n, const void *caller) {
  if (is_boot(old)) {
    size_t had;
    memcpy(&had, (unsigned char *)old - 16, sizeof had);
    void *p = real.malloc(n ? n : 1);
    if (p) memcpy(p, old, had < n ? had : n);
    return p;
  }
  if (n == 0 || old == NULL) {
    if (old == NULL) {
      int dso;
      if (intercept(AF_REALLOC, n, caller, &dso)) {
        errno = ENOMEM;
        return NULL;
      }
      void *p = real.realloc(NULL, n);
      live_add(p, dso, 0);
      return p;
    }
    live_remove(old); /* realloc(p, 0) frees p */
    return real.realloc(old, 0);
  }
  int dso;
  if (intercept(AF_REALLOC, n, caller, &dso)) {
    errno = ENOMEM;
    return NULL; /* old stays valid (and tracked) */
  }
  int old_dso = live_remove(old);
  void *p = real.realloc(old, n);
  if (p == NULL) {
    live_add(old, old_dso, 0);
    return NULL;
  }
  live_add(p, dso >= 0 ? dso : old_dso, 0);
  return p;
}

void *realloc(void *old, size_t n) {
  if (!READY()) {
    void *p = boot_alloc(n);
    if (p && old) {
      size_t had;
      memcpy(&had, (unsigned char *)old - 16, sizeof had);
      memcpy(p, old, had < n ? had : n);
    }
    return p;
  }
  return do_realloc(old, n, CALLER);
}

void *reallocarray(void *old, size_t n, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  if (!READY()) return realloc(old, total);
  return do_realloc(old, total, CALLER);
}

void free(void *p) {
  if (p == NULL || is_boot(p)) return;
  if (!READY()) return;
  live_remove(p);
  real.free(p);
}

int posix_memalign(void **out, size_t align, size_t n) {
  if (!READY()) return (*out = boot_aligned(align, n)) ? 0 : ENOMEM;
  int dso;
  if (intercept(AF_ALIGNED, n, CALLER, &dso)) return ENOMEM;
  int rc = real.posix_memalign(out, align, n);
  if (rc == 0) live_add(*out, dso, 0);
  return rc;
}

static void *aligned_common(void *(*fn)(size_t, size_t), size_t align, size_t n, const void *caller) {
  int dso;
  if (intercept(AF_ALIGNED, n, caller, &dso)) {
    errno = ENOMEM;
    return NULL;
  }
  void *p = fn(align, n);
  live_add(p, dso, 0);
  return p;
}

void *aligned_alloc(size_t align, size_t n) {
  if (!READY()) return boot_aligned(align, n);
  return aligned_common(real.aligned_alloc, align, n, CALLER);
}

void *memalign(size_t align, size_t n) {
  if (!READY()) return boot_aligned(align, n);
  return aligned_common(real.memalign, align, n, CALLER);
}

void *valloc(size_t n) {
  if (!READY()) return boot_aligned(4096, n);
  int dso;
  if (intercept(AF_ALIGNED, n, CALLER, &dso)) {
    errno = ENOMEM;
    return NULL;
  }
  void *p = real.valloc(n);
  live_add(p, dso, 0);
  return p;
}

void *pvalloc(size_t n) {
  if (!READY()) return boot_aligned(4096, (n + 4095) & ~(size_t)4095);
  int dso;
  if (intercept(AF_ALIGNED, n, CALLER, &dso)) {
    errno = ENOMEM;
    return NULL;
  }
  void *p = real.pvalloc(n);
  live_add(p, dso, 0);
  return p;
}

static char *dup_common(const char *s, size_t n, const void *caller) {
  int dso;
  if (intercept(AF_STRDUP, n + 1, caller, &dso)) {
    errno = ENOMEM;
    return NULL;
  }
  char *p = real.malloc(n + 1);
  if (p == NULL) return NULL;
  memcpy(p, s, n);
  p[n] = '\0';
  live_add(p, dso, 0);
  return p;
}

char *strdup(const char *s) {
  if (!READY()) {
    char *p = boot_alloc(strlen(s) + 1);
    if (p) strcpy(p, s);
    return p;
  }
  return dup_common(s, strlen(s), CALLER);
}

char *strndup(const char *s, size_t max) {
  size_t n = strnlen(s, max);
  if (!READY()) {
    char *p = boot_alloc(n + 1);
    if (p) {
      memcpy(p, s, n);
      p[n] = '\0';
    }
    return p;
  }
  return dup_common(s, n, CALLER);
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  if (!READY()) return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
  int dso;
  if (intercept(AF_MMAP, len, CALLER, &dso)) {
    errno = ENOMEM;
    return MAP_FAILED;
  }
  void *p = real.mmap(addr, len, prot, flags, fd, off);
  if (p != MAP_FAILED) live_add(p, dso, 1);
  return p;
}

int munmap(void *addr, size_t len) {
  if (!READY()) return (int)syscall(SYS_munmap, addr, len);
  live_remove(addr);
  return real.munmap(addr, len);
}
