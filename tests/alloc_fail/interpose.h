/* The allocator interposer of the allocation-failure test (interpose.c).
 *
 * The test executable itself defines malloc, calloc, realloc, reallocarray, free,
 * posix_memalign, aligned_alloc, memalign, valloc, pvalloc, strdup, strndup, mmap and munmap.
 * Definitions in the executable come first in the ELF global lookup scope, so every shared
 * object of the process binds to them: libsnapfusion.so, Debian's libXNNPACK, libpthreadpool,
 * libcpuinfo and libz, glibc's own internal calls (fopen's buffers, opendir, the dynamic
 * loader's TLS blocks of new threads) and, under ASan, the sanitizer runtime's callers. Each
 * forwards to the next definition (dlsym(RTLD_NEXT)): glibc's allocator, or ASan's in a
 * sanitizer build, which then still checks every access and finds leaks.
 *
 * Between af_enable and af_disable (the test brackets each library call with them), every
 * allocation call not made by the test program itself is counted; the fail_at-th one (1-based)
 * fails as the real call would (NULL / ENOMEM / MAP_FAILED with errno ENOMEM). Counted blocks
 * and mappings are tracked until freed, by the shared object that asked for them. */
#ifndef SF_TEST_ALLOC_FAIL_INTERPOSE_H
#define SF_TEST_ALLOC_FAIL_INTERPOSE_H

#include <stddef.h>
#include <stdint.h>

/* Who called the allocator (the return address's shared object). */
enum {
  AF_DSO_TEST,
  AF_DSO_SNAPFUSION,
  AF_DSO_XNNPACK,
  AF_DSO_PTHREADPOOL,
  AF_DSO_CPUINFO,
  AF_DSO_ZLIB,
  AF_DSO_LIBC,
  AF_DSO_LDSO,
  AF_DSO_SANITIZER,
  AF_DSO_OTHER,
  AF_DSO_COUNT
};
enum { AF_MALLOC, AF_CALLOC, AF_REALLOC, AF_ALIGNED, AF_STRDUP, AF_MMAP, AF_KIND_COUNT };

#define AF_FRAMES 16
#define AF_POINT_FRAMES 8

/* One counted allocation call, as recorded by a counting run. */
typedef struct af_point {
  uint64_t sig;  /* hash of the call stack (return addresses) */
  uint32_t size; /* requested bytes, saturated */
  uint8_t step, dso, kind, n_frames;
  void *frames[AF_POINT_FRAMES]; /* the innermost return addresses outside the test program */
} af_point;

/* What the failed call was. */
typedef struct af_hit {
  int happened, step, dso, kind;
  size_t size;
  uint64_t index;
  int n_frames;
  void *frames[AF_FRAMES];
} af_hit;

/* Once, before any allocation worth counting: reads the loaded objects' address ranges. */
void af_setup(void);
/* Counting runs: record every counted call into points[0..cap) (NULL: none). */
void af_record(af_point *points, size_t cap);
/* Fail the fail_at-th counted call (0: none). */
void af_arm(uint64_t fail_at);
/* Count (and fail) calls made while a library call of step `step` (1..255) runs. */
void af_enable(int step);
void af_disable(void);
uint64_t af_calls(void);
const af_hit *af_get_hit(void);
/* Counted blocks / mappings still alive, per caller object. */
void af_live(long blocks[AF_DSO_COUNT], long maps[AF_DSO_COUNT]);
/* Nonzero when the live-block table filled up (the live counts are then incomplete). */
int af_overflowed(void);
const char *af_dso_name(int dso);
const char *af_kind_name(int kind);

#endif
