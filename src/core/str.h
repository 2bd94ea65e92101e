/* Small string helpers shared by the parsers. */
#ifndef SF_CORE_STR_H
#define SF_CORE_STR_H

/* A malloc'd printf; NULL when out of memory (or on an encoding error). */
char *sf_str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#include <stddef.h>

/* s[0..len) as a finite decimal number read in the C locale (strtod's syntax, never the host's
 * locale): 1 and *out set; 0 when it is not one (empty, trailing bytes, overflow to inf, too
 * long); -1 when the C locale could not be created. */
int sf_str_parse_double(const char *s, size_t len, double *out);

#endif
