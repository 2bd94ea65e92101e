/* Diagnostics: a status plus a human message, filled by internal code that has no
 * context (parsers, readers) so the same code serves the library, the CLI and tests. */
#ifndef SF_CORE_DIAG_H
#define SF_CORE_DIAG_H

#include <stdarg.h>
#include <stddef.h>

#include "snapfusion.h"

typedef struct sf_diag {
  sf_status status;
  char msg[768];
} sf_diag;

/* Records status and a printf-style message (only the first error is kept, so the
 * innermost, most specific cause wins); returns status for `return sf_diag_set(...)`. */
sf_status sf_diag_set(sf_diag *d, sf_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
sf_status sf_diag_vset(sf_diag *d, sf_status status, const char *fmt, va_list ap);
/* Prepends context ("unet/config.json: ") to an already recorded message. */
void sf_diag_prefix(sf_diag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sf_diag_clear(sf_diag *d);

/* Every problem found, where a check goes on after the first (inspect-only loads report all
 * of them). Messages past SF_PROBLEMS_MAX, or that cannot be stored for lack of memory, are
 * only counted. Zero-initialise; sf_problems_free releases. */
enum { SF_PROBLEMS_MAX = 1000 };
typedef struct sf_problems {
  char **msg;
  size_t n, cap;
  size_t dropped; /* counted, not stored */
} sf_problems;
void sf_problems_add(sf_problems *pr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline size_t sf_problems_count(const sf_problems *pr) { return pr->n + pr->dropped; }
/* d = status and what + "N problems: first; second; ..." (as many as fit; d's first error
 * wins); what + the message for a single one. */
sf_status sf_problems_summary(const sf_problems *pr, sf_status status, const char *what, sf_diag *d);
void sf_problems_free(sf_problems *pr);

#endif
