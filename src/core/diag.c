#include "core/diag.h"

#include <stdio.h>
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
