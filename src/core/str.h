/* Small string helpers shared by the parsers. */
#ifndef SF_CORE_STR_H
#define SF_CORE_STR_H

/* A malloc'd printf; NULL when out of memory (or on an encoding error). */
char *sf_str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
