/* Peak anonymous memory of the CLI process (for txt2img's summary and the benchmarks). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

/* Anonymous (dirty, not file-backed) memory: what a phone counts against an app (clean
 * file-backed pages, e.g. mapped weights, can be dropped and re-read). The kernel keeps no peak
 * of it, so a thread samples /proc/self/smaps_rollup every 20 ms while a benchmark runs. */
static double anon_bytes_now(void) {
  FILE *f = fopen("/proc/self/smaps_rollup", "r");
  if (f == NULL) return 0.0;
  char line[256];
  double kb = 0.0;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "Anonymous:", 10) == 0) {
      kb = strtod(line + 10, NULL);
      break;
    }
  fclose(f);
  return kb * 1024.0;
}

static struct {
  pthread_t thread;
  atomic_int running;
  _Atomic double peak;
} anon_sampler;

static void *anon_sample(void *arg) {
  (void)arg;
  while (atomic_load(&anon_sampler.running)) {
    double now = anon_bytes_now();
    if (now > atomic_load(&anon_sampler.peak)) atomic_store(&anon_sampler.peak, now);
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  return NULL;
}

void cli_anon_start(void) {
  atomic_store(&anon_sampler.peak, anon_bytes_now());
  atomic_store(&anon_sampler.running, 1);
  if (pthread_create(&anon_sampler.thread, NULL, anon_sample, NULL) != 0) atomic_store(&anon_sampler.running, 0);
}

double cli_peak_anon_bytes(void) {
  double now = anon_bytes_now();
  if (now > atomic_load(&anon_sampler.peak)) atomic_store(&anon_sampler.peak, now);
  return atomic_load(&anon_sampler.peak);
}

void cli_anon_stop(void) {
  if (atomic_exchange(&anon_sampler.running, 0)) pthread_join(anon_sampler.thread, NULL);
}
