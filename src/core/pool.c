#include "core/pool.h"

#include <pthread.h>
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
