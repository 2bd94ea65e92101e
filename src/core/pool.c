#include "core/pool.h"

#include <cpuinfo.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int online;
static pthread_once_t online_once = PTHREAD_ONCE_INIT;

static void read_online(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  online = n > 0 ? (int)n : 1;
}

int sf_online_cpus(void) {
  pthread_once(&online_once, read_online);
  return online;
}

static int cores;
static pthread_once_t cores_once = PTHREAD_ONCE_INIT;

/* The first CPU number of a sysfs list such as "0,4" or "0-1"; -1 if unreadable. */
static int first_of_list(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  int first = -1;
  if (fscanf(f, "%d", &first) != 1) first = -1;
  fclose(f);
  return first;
}

static void count_cores(void) {
  int n = 0, seen = 0;
  for (int cpu = 0; cpu < 4096 && seen < sf_online_cpus(); cpu++) {
    char path[128];
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/thread_siblings_list", cpu);
    int first = first_of_list(path);
    if (first < 0) continue; /* offline or absent */
    seen++;
    if (first == cpu) n++;
  }
  if (n <= 0 && cpuinfo_initialize()) n = (int)cpuinfo_get_cores_count();
  cores = n > 0 ? n : 1;
}

int sf_physical_cores(void) {
  pthread_once(&cores_once, count_cores);
  return cores;
}
