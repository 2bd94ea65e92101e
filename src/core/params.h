#ifndef SF_CORE_PARAMS_H
#define SF_CORE_PARAMS_H

#include "snapfusion.h"

/* Lookups with a default, for consumers of a (possibly NULL) sf_params. */
int64_t sf_params_int_or(const sf_params *p, sf_param key, int64_t dflt);
double sf_params_float_or(const sf_params *p, sf_param key, double dflt);
const char *sf_params_string_or(const sf_params *p, sf_param key, const char *dflt);
int sf_params_has(const sf_params *p, sf_param key);

#endif
