/* The numpy routines diffusers builds its timestep/sigma tables with, in float64 with
 * numpy's own formulas (which is what decides the rounding of e.g. fractional Euler
 * timesteps and of trailing-spacing timesteps). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <math.h>

#include "sched/sched_internal.h"

void sf_np_linspace(double start, double stop, int num, int endpoint, double *out) {
  int div = endpoint ? num - 1 : num;
  double delta = stop - start;
  if (div > 0) {
    double step = delta / div;
    for (int i = 0; i < num; i++) {
      /* numpy scales by delta/div unless that step is 0 */
      out[i] = (step == 0.0 ? ((double)i / div) * delta : (double)i * step) + start;
    }
  } else {
    for (int i = 0; i < num; i++) out[i] = (double)i * delta + start;
  }
  if (endpoint && num > 1) out[num - 1] = stop;
}

int sf_np_arange_len(double start, double stop, double step) {
  double len = ceil((stop - start) / step);
  if (!(len > 0)) return 0;
  if (len > 1e7) return 10000000;
  return (int)len;
}

int sf_np_arange(double start, double stop, double step, double *out, int cap) {
  int len = sf_np_arange_len(start, stop, step);
  /* numpy fills from the first two values: delta = (start + step) - start */
  double second = start + step;
  double delta = second - start;
  for (int i = 0; i < len && i < cap; i++) {
    out[i] = i == 0 ? start : i == 1 ? second : start + (double)i * delta;
  }
  return len;
}

double sf_np_interp_index(double x, const float *fp, int n) {
  /* xp = arange(n): exact integers, so the bracketing index is floor(x) */
  if (isnan(x)) return NAN;
  if (x <= 0.0) return fp[0];
  if (x >= (double)(n - 1)) return fp[n - 1];
  int j = (int)floor(x);
  if ((double)j == x) return fp[j];
  double slope = ((double)fp[j + 1] - (double)fp[j]) / ((double)(j + 1) - (double)j);
  return slope * (x - (double)j) + (double)fp[j];
}

void sf_sched_karras(double sigma_min, double sigma_max, int n, double *out) {
  const double rho = 7.0;
  double min_inv_rho = pow(sigma_min, 1.0 / rho);
  double max_inv_rho = pow(sigma_max, 1.0 / rho);
  /* ramp = np.linspace(0, 1, n) */
  double step = n > 1 ? 1.0 / (n - 1) : 0.0;
  for (int i = 0; i < n; i++) {
    double ramp = (n > 1 && i == n - 1) ? 1.0 : (double)i * step;
    out[i] = pow(max_inv_rho + ramp * (min_inv_rho - max_inv_rho), rho);
  }
}

double sf_sched_sigma_to_t(double sigma, const float *log_sigmas, int ntrain) {
  double log_sigma = log(fmax(sigma, 1e-10));
  /* low_idx: last index with log_sigma - log_sigmas[i] >= 0 (0 if none), at most ntrain-2 */
  int low = 0;
  for (int i = 0; i < ntrain; i++)
    if (log_sigma - (double)log_sigmas[i] >= 0.0) low = i;
  if (low > ntrain - 2) low = ntrain - 2;
  int high = low + 1;
  double lo = log_sigmas[low], hi = log_sigmas[high];
  double w = (lo - log_sigma) / (lo - hi);
  if (w < 0.0) w = 0.0;
  if (w > 1.0) w = 1.0;
  return (1.0 - w) * (double)low + w * (double)high;
}
