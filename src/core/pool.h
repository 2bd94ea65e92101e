/* What every parallel section passes to pthreadpool. */
#ifndef SF_CORE_POOL_H
#define SF_CORE_POOL_H

#include <pthreadpool.h>
#include <stdint.h>

/* Online CPUs (read once). */
int sf_online_cpus(void);
/* Physical cores among the online CPUs: from Linux's topology (CPUs that are the first of their
 * thread-sibling list), which VMs describe faithfully where cpuinfo can count two cores as one
 * with two hyper-threads; else cpuinfo's core count; at least 1 (read once). */
int sf_physical_cores(void);

/* Flags for a parallel section on pool. With more threads than online CPUs (an explicit
 * SF_PARAM_THREADS above the core count), workers would spin-wait for the next section on
 * CPUs that the threads still working need: every step became 4-60x slower. They then go to
 * sleep as soon as a section ends (PTHREADPOOL_FLAG_YIELD_WORKERS). Otherwise 0: spinning
 * keeps the wake-up of the next section cheap. */
static inline uint32_t sf_pool_flags(pthreadpool_t pool) {
  return pool != NULL && pthreadpool_get_threads_count(pool) > (size_t)sf_online_cpus()
             ? PTHREADPOOL_FLAG_YIELD_WORKERS
             : 0;
}

#endif
