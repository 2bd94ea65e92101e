#include "core/diag.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

sf_status sf_diag_vset(sf_diag *d, sf_status status, const char *fmt, va_list ap) {
  if (d == NULL || status == SF_OK) return status;
  if (d->status != SF_OK) return status; /* keep the first, innermost cause */
  d->status = status;
  vsnprintf(d->msg, sizeof d->msg, fmt, ap);
  return status;
}

sf_status sf_diag_set(sf_diag *d, sf_status status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  sf_status s = sf_diag_vset(d, status, fmt, ap);
  va_end(ap);
  return s;
}

void sf_diag_prefix(sf_diag *d, const char *fmt, ...) {
  if (d == NULL || d->status == SF_OK) return;
  char pre[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(pre, sizeof pre, fmt, ap);
  va_end(ap);
  /* Truncation of long messages is intended: keep the prefix, cut the tail. */
  size_t np = strlen(pre), nm = strlen(d->msg), cap = sizeof d->msg - 1;
  if (np > cap) np = cap;
  if (np + nm > cap) nm = cap - np;
  memmove(d->msg + np, d->msg, nm);
  memcpy(d->msg, pre, np);
  d->msg[np + nm] = '\0';
}

void sf_diag_clear(sf_diag *d) {
  if (d == NULL) return;
  d->status = SF_OK;
  d->msg[0] = '\0';
}

void sf_problems_add(sf_problems *pr, const char *fmt, ...) {
  if (pr == NULL) return;
  if (pr->n >= SF_PROBLEMS_MAX) {
    pr->dropped++;
    return;
  }
  if (pr->n == pr->cap) {
    size_t cap = pr->cap ? pr->cap * 2 : 16;
    char **m = realloc(pr->msg, cap * sizeof *m);
    if (m == NULL) {
      pr->dropped++;
      return;
    }
    pr->msg = m;
    pr->cap = cap;
  }
  char buf[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  size_t len = strlen(buf);
  char *copy = malloc(len + 1);
  if (copy == NULL) {
    pr->dropped++;
    return;
  }
  memcpy(copy, buf, len + 1);
  pr->msg[pr->n++] = copy;
}

sf_status sf_problems_summary(const sf_problems *pr, sf_status status, const char *what, sf_diag *d) {
  size_t total = sf_problems_count(pr);
  if (total == 0 || d == NULL) return SF_OK;
  if (total == 1 && pr->n == 1) return sf_diag_set(d, status, "%s%s", what, pr->msg[0]);
  char buf[sizeof d->msg];
  size_t off = (size_t)snprintf(buf, sizeof buf, "%s%zu problems: ", what, total);
  size_t shown = 0;
  for (size_t i = 0; i < pr->n && off < sizeof buf; i++) {
    size_t len = strlen(pr->msg[i]);
    /* room for this one, its separator and the "(+N more)" tail */
    if (i > 0 && off + len + 2 + 24 >= sizeof buf) break;
    off += (size_t)snprintf(buf + off, sizeof buf - off, "%s%s", i ? "; " : "", pr->msg[i]);
    if (off > sizeof buf - 24) off = sizeof buf - 24; /* a long first one is cut for the tail */
    buf[off] = '\0';
    shown++;
  }
  if (shown < total && off < sizeof buf) snprintf(buf + off, sizeof buf - off, " (+%zu more)", total - shown);
  return sf_diag_set(d, status, "%s", buf);
}

void sf_problems_free(sf_problems *pr) {
  if (pr == NULL) return;
  for (size_t i = 0; i < pr->n; i++) free(pr->msg[i]);
  free(pr->msg);
  memset(pr, 0, sizeof *pr);
}
