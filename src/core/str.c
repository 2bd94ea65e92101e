#define _GNU_SOURCE /* strtod_l / newlocale */
#include "core/str.h"

#include <locale.h>
#ifdef __APPLE__
#include <xlocale.h> /* strtod_l, newlocale */
#endif
#include <math.h>
#include <string.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

char *sf_str_printf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return NULL;
  char *s = malloc((size_t)n + 1);
  if (s == NULL) return NULL;
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

int sf_str_parse_double(const char *s, size_t len, double *out) {
  char buf[64];
  if (s == NULL || len == 0 || len >= sizeof buf) return 0;
  memcpy(buf, s, len);
  buf[len] = '\0';
  locale_t c = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
  if (c == (locale_t)0) return -1;
  char *end = NULL;
  double v = strtod_l(buf, &end, c);
  freelocale(c);
  if (end == buf || *end != '\0' || !isfinite(v)) return 0;
  *out = v;
  return 1;
}
