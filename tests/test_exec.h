/* A run state for tests that drive networks through the internal API: one workspace and one
 * plan, replanned whenever another graph or shape comes along (sf_graph_prepare). Freed at
 * exit. TX(pool) is the exec to pass, TP() the plan. */
#ifndef SF_TEST_EXEC_H
#define SF_TEST_EXEC_H

#include <stdlib.h>

#include "graph/graph.h"

static sf_workspace test_exec_ws;
static sf_plan *test_exec_plan;
static sf_exec test_exec_ex;

static void test_exec_free(void) {
  sf_plan_destroy(test_exec_plan);
  test_exec_plan = NULL;
  sf_workspace_release(&test_exec_ws);
}

static inline sf_plan *TP(void) {
  if (test_exec_plan == NULL) {
    test_exec_plan = sf_plan_create();
    atexit(test_exec_free);
  }
  return test_exec_plan;
}

static inline const sf_exec *TX_CANCEL(pthreadpool_t pool, const atomic_int *cancel) {
  test_exec_ex.pool = pool;
  test_exec_ex.cancel = cancel;
  test_exec_ex.ws = &test_exec_ws;
  return &test_exec_ex;
}

static inline const sf_exec *TX(pthreadpool_t pool) { return TX_CANCEL(pool, NULL); }

#endif
