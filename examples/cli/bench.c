/* snapfusion bench ops|unet|vae|text: speed of the library's lowerings and networks,
 * as ratios to machine references measured in the same run (see bench.h). */
#include "bench.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "core/context.h"
#include "graph/ops/igemm.h"
#include "graph/ops/kernels.h"
#include "io/pack.h"

static void bench_usage(FILE *f) {
  fprintf(f,
          "usage: snapfusion bench ops|unet|vae|text|txt2img [options]\n"
          "  ops    SD-shaped conv3x3, linear, attention and group norm through the library's\n"
          "         lowering, with the FMA peak, XNNPACK's fully-connected and a memory stream\n"
          "  unet   one UNet call:   --config DIR [--size 512] [--batch 1|2]\n"
          "  vae    the VAE decoder: --config DIR [--size 512] [--taesd CONFIG_OR_DIR]\n"
          "         (TAESD defaults to DIR/../taesd when that exists)\n"
          "  text   the CLIP text tower (77 tokens) and the tokenizer:\n"
          "         --config DIR [--tokenizer DIR]  (default $SNAPFUSION_FIXTURES/public/tokenizer\n"
          "         or ../shared/fixtures/public/tokenizer)\n"
          "  txt2img a whole generation, timed per stage (text, UNet step, VAE decoder):\n"
          "         --config DIR [--steps 8] [--cfg-scale 7.5] [--size 512] [--tokenizer DIR]\n"
          "         [--low-memory] [--pack FILE]\n"
          "         --pack FILE: the weights from a pack file (snapfusion pack --random-weights DIR\n"
          "         -o FILE --weights q8 --tokenizer TOK), mapped in place; write it in another\n"
          "         process first, so this one's peak memory is the mapped load's\n"
          "         (warm-up: one 1-step generation; --repeat full generations, default 1)\n"
          "options: --json  -t|--threads N (1..1024; more than the online CPUs: a warning, and\n"
          "         much slower)  --repeat N (timed runs after one warm-up)\n"
          "         --probe-seconds S (duration of each machine probe, default 0.5)\n"
          "         --profile (unet, vae: time per node kind and shape, to stderr)\n"
          "         --only TEXT (ops: the rows whose name or shape contains TEXT)\n"
          "         --weights f32|f16|q8 (networks: how the weights are held; default f32)\n"
          "Memory columns: peak RSS, and peak anonymous memory (dirty, not file-backed: what a\n"
          "phone counts against an app), sampled every 20 ms.\n"
          "Networks use seeded random weights: config folders need no checkpoints.\n");
}

double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

void bench_stats(double *times, size_t n, double *median, double *min) {
  qsort(times, n, sizeof *times, cmp_double);
  *min = times[0];
  *median = n % 2 ? times[n / 2] : 0.5 * (times[n / 2 - 1] + times[n / 2]);
}

double bench_peak_rss_bytes(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0.0;
  return (double)ru.ru_maxrss * 1024.0; /* kilobytes on Linux */
}


void bench_fill_random(float *x, size_t n, unsigned seed, float scale) {
  uint32_t s = seed * 2654435761u + 12345u;
  for (size_t i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    x[i] = scale * ((float)(s >> 8) * (1.0f / 8388608.0f) - 1.0f);
  }
}

const char *bench_base_name(const char *path) {
  size_t n = strlen(path);
  while (n > 1 && path[n - 1] == '/') n--;
  const char *b = path;
  for (size_t i = 0; i + 1 < n; i++)
    if (path[i] == '/') b = path + i + 1;
  return b;
}

const char *bench_default_tokenizer(char *buf, size_t cap) {
  const char *fx = getenv("SNAPFUSION_FIXTURES");
  if (fx && *fx) snprintf(buf, cap, "%s/public/tokenizer", fx);
  else snprintf(buf, cap, "../shared/fixtures/public/tokenizer");
  return buf;
}

static void load_average(char *out, size_t cap) {
  snprintf(out, cap, "?");
  FILE *f = fopen("/proc/loadavg", "r");
  if (f == NULL) return;
  double a = 0, b = 0, c = 0;
  if (fscanf(f, "%lf %lf %lf", &a, &b, &c) == 3) snprintf(out, cap, "%.2f %.2f %.2f", a, b, c);
  fclose(f);
}

static void json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') fprintf(f, "\\%c", *s);
    else if ((unsigned char)*s < 0x20) fprintf(f, "\\u%04x", (unsigned char)*s);
    else fputc(*s, f);
  }
  fputc('"', f);
}

static double rate_of(const bench_row *r) {
  if (!(r->median_s > 0)) return 0.0;
  return (r->bytes > 0 ? r->bytes : r->flops) / r->median_s * 1e-9;
}

/* What conv / linear layers run on in this process by default (SF_PARAM_GEMM_BACKEND 0: the
 * library's kernels, see graph/ops/igemm.h). */
static const char *gemm_name(void) { return sf_igemm_isa_name(SF_IGEMM_ISA_BEST); }

static void report_json(FILE *f, const bench_opts *o, const char *command, size_t threads, const char *load,
                        const bench_refs *refs, const bench_row *rows, size_t n_rows) {
  fprintf(f, "{\"command\":");
  json_str(f, command);
  fprintf(f, ",\"version\":\"%s\",\"threads\":%zu,\"repeat\":%lld,\"load_average\":\"%s\",", sf_version(), threads,
          o->repeat, load);
  fprintf(f, "\"gemm\":");
  json_str(f, gemm_name());
  fputc(',', f);
  fprintf(f, "\"references\":{\"fma_peak_gflops\":%.2f", refs->fma_gflops);
  if (refs->have_stream) fprintf(f, ",\"stream_gbs\":%.2f", refs->stream_gbs);
  if (refs->have_fc) {
    fprintf(f, ",\"xnnpack_fc_best_gflops\":%.2f,\"xnnpack_fc_best_shape\":", refs->fc_best_gflops);
    json_str(f, refs->fc_best_shape);
  }
  fprintf(f, "},\"results\":[");
  for (size_t i = 0; i < n_rows; i++) {
    const bench_row *r = &rows[i];
    fprintf(f, "%s\n{\"name\":", i ? "," : "");
    json_str(f, r->name);
    fprintf(f, ",\"shape\":");
    json_str(f, r->shape);
    fprintf(f, ",\"median_s\":%.6g,\"min_s\":%.6g", r->median_s, r->min_s);
    if (r->tokens > 0)
      fprintf(f, ",\"input_bytes\":%.0f,\"tokens\":%.0f,\"mb_per_s\":%.3f,\"tokens_per_s\":%.0f", r->bytes, r->tokens,
              r->bytes / r->median_s * 1e-6, r->tokens / r->median_s);
    else if (r->bytes > 0) fprintf(f, ",\"bytes\":%.6g,\"gbs\":%.3f,\"ratio_stream\":%.4f", r->bytes, rate_of(r), r->ratio);
    else fprintf(f, ",\"gflop\":%.6g,\"gflops\":%.3f,\"ratio_fma_peak\":%.4f", r->flops * 1e-9, rate_of(r), r->ratio);
    if (r->goal > 0) fprintf(f, ",\"goal_ratio\":%.2f,\"goal_met\":%s", r->goal, r->ratio >= r->goal ? "true" : "false");
    if (r->direct_gflops > 0) fprintf(f, ",\"xnnpack_direct_gflops\":%.3f", r->direct_gflops);
    if (r->network) {
      fprintf(f, ",\"gmacs\":%.3f,\"attention_gmacs\":%.3f,\"arena_bytes\":%.0f,\"weights_bytes\":%.0f,"
                 "\"weights\":\"%s\",\"peak_rss_bytes\":%.0f,\"peak_anon_bytes\":%.0f,\"load_s\":%.3f",
              r->macs * 1e-9, r->attention_macs * 1e-9, r->arena_bytes, r->weights_bytes, cli_weights_name(o->weights),
              r->peak_rss_bytes, cli_peak_anon_bytes(), r->load_s);
      if (r->first_step_s > 0) fprintf(f, ",\"first_step_s\":%.3f", r->first_step_s);
      if (o->pack) {
        fprintf(f, ",\"pack\":");
        json_str(f, o->pack);
      }
      if (r->est_peak > 0)
        fprintf(f, ",\"estimate_peak_bytes\":%.0f,\"estimate_weights_bytes\":%.0f,\"estimate_workspace_bytes\":%.0f,"
                   "\"estimate_other_bytes\":%.0f,\"estimate_over_measured\":%.4f",
                r->est_peak, r->est_weights, r->est_workspace, r->est_other, r->est_peak / r->peak_rss_bytes);
      if (r->rss_budget_bytes > 0)
        fprintf(f, ",\"rss_budget_bytes\":%.0f,\"rss_goal_met\":%s", r->rss_budget_bytes,
                r->peak_rss_bytes <= r->rss_budget_bytes ? "true" : "false");
    }
    fputc('}', f);
  }
  fprintf(f, "]}\n");
}

static void report_text(FILE *f, const bench_opts *o, const char *command, size_t threads, const char *load,
                        const bench_refs *refs, const bench_row *rows, size_t n_rows) {
  fprintf(f, "snapfusion bench %s: libsnapfusion %s, %zu thread%s, median of %lld after 1 warm-up, load %s, conv/linear on %s, "
          "weights %s%s%s\n",
          command, sf_version(), threads, threads == 1 ? "" : "s", o->repeat, load, gemm_name(), cli_weights_name(o->weights),
          o->pack ? " mapped from " : "", o->pack ? o->pack : "");
  fprintf(f, "FMA peak %.1f GFLOP/s", refs->fma_gflops);
  if (refs->have_fc) fprintf(f, "; XNNPACK fully-connected best %.1f GFLOP/s (%s)", refs->fc_best_gflops,
                             refs->fc_best_shape);
  if (refs->have_stream) fprintf(f, "; stream %.1f GB/s", refs->stream_gbs);
  fprintf(f, "\n\n");
  int any_net = 0, any_direct = 0;
  for (size_t i = 0; i < n_rows; i++) {
    any_net |= rows[i].network;
    any_direct |= rows[i].direct_gflops > 0;
  }
  fprintf(f, "%-22s %-26s %10s %12s %8s %6s", "what", "shape", "median ms", "rate", "ratio", "goal");
  if (any_direct) fprintf(f, " %14s", "1 XNNPACK op");
  if (any_net) fprintf(f, " %8s %8s %9s %9s %9s %9s", "GMACs", "attn", "arena MB", "RSS MB", "anon MB", "wts MB");
  fprintf(f, "\n");
  for (size_t i = 0; i < n_rows; i++) {
    const bench_row *r = &rows[i];
    char rate[32], goal[16] = "", ratio[24];
    snprintf(rate, sizeof rate, "%.1f %s", rate_of(r), r->bytes > 0 ? "GB/s" : "GF/s");
    snprintf(ratio, sizeof ratio, "%.1f%%%s", 100.0 * r->ratio, r->bytes > 0 ? "S" : "");
    if (r->tokens > 0) {
      snprintf(rate, sizeof rate, "%.2f MB/s", r->bytes / r->median_s * 1e-6);
      snprintf(ratio, sizeof ratio, "-");
    }
    if (r->goal > 0) snprintf(goal, sizeof goal, "%s%.0f%%", r->ratio >= r->goal ? "ok " : "NO ", 100.0 * r->goal);
    fprintf(f, "%-22s %-26s %10.2f %12s %8s %6s", r->name, r->shape, 1e3 * r->median_s, rate, ratio, goal);
    if (any_direct) {
      if (r->direct_gflops > 0) fprintf(f, " %9.1f GF/s", r->direct_gflops);
      else fprintf(f, " %14s", "");
    }
    if (r->network)
      fprintf(f, " %8.1f %8.1f %9.1f %9.1f %9.1f %9.1f", r->macs * 1e-9, r->attention_macs * 1e-9,
              r->arena_bytes / 1048576.0, r->peak_rss_bytes / 1048576.0, cli_peak_anon_bytes() / 1048576.0,
              r->weights_bytes / 1048576.0);
    if (r->tokens > 0) fprintf(f, " (%.0f tokens/s)", r->tokens / r->median_s);
    fprintf(f, "\n");
  }
  for (size_t i = 0; i < n_rows; i++)
    if (rows[i].network && rows[i].rss_budget_bytes > 0)
      fprintf(f, "%s: peak RSS %.0f MB, budget (f32 weights + 1 GiB) %.0f MB: %s; load %.1f s\n", rows[i].name,
              rows[i].peak_rss_bytes / 1048576.0, rows[i].rss_budget_bytes / 1048576.0,
              rows[i].peak_rss_bytes <= rows[i].rss_budget_bytes ? "ok" : "OVER", rows[i].load_s);
  for (size_t i = 0; i < n_rows; i++)
    if (rows[i].network && rows[i].first_step_s > 0)
      fprintf(f, "%s: load %.3f s; from the load's start to the end of the first UNet step %.3f s\n", rows[i].name,
              rows[i].load_s, rows[i].first_step_s);
  for (size_t i = 0; i < n_rows; i++)
    if (rows[i].network && rows[i].est_peak > 0)
      fprintf(f, "%s: memory estimate before the load %.1f MiB (weights %.1f, workspace %.1f, other %.1f); "
                 "measured peak RSS %.1f MiB; estimate/measured %.3f\n",
              rows[i].name, rows[i].est_peak / 1048576.0, rows[i].est_weights / 1048576.0,
              rows[i].est_workspace / 1048576.0, rows[i].est_other / 1048576.0, rows[i].peak_rss_bytes / 1048576.0,
              rows[i].est_peak / rows[i].peak_rss_bytes);
  fprintf(f, "(ratio: of the FMA peak; S: of the stream bandwidth. GF/s counts 2 FLOPs per multiply-add;\n"
             " attention counts 4*Tq*Tk*d per head.)\n");
}

void bench_report(FILE *f, const bench_opts *o, const char *command, size_t threads, const bench_refs *refs,
                  const bench_row *rows, size_t n_rows) {
  char load[64];
  load_average(load, sizeof load);
  if (o->json) report_json(f, o, command, threads, load, refs, rows, n_rows);
  else report_text(f, o, command, threads, load, refs, rows, n_rows);
}

static int bad(const char *msg) {
  fprintf(stderr, "snapfusion bench: %s (see snapfusion bench --help)\n", msg);
  return CLI_EXIT_USAGE;
}

/* A whole option value as a number: no empty string, no trailing text. */
static int parse_number(const char *v, double *out) {
  char *end = NULL;
  if (*v == '\0') return 0;
  *out = strtod(v, &end);
  return *end == '\0';
}

int cmd_bench(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    bench_usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? CLI_EXIT_USAGE : 0;
  }
  static const struct {
    const char *name;
    bench_fn fn;
    long long default_repeat;
  } subs[] = {{"ops", bench_ops, 5}, {"unet", bench_unet, 3}, {"vae", bench_vae, 3}, {"text", bench_text, 10}, {"txt2img", bench_txt2img, 1}};
  size_t sub = sizeof subs / sizeof subs[0];
  for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
    if (strcmp(argv[1], subs[i].name) == 0) sub = i;
  if (sub == sizeof subs / sizeof subs[0]) return bad("unknown benchmark (ops, unet, vae, text or txt2img)");

  bench_opts o = {.size = 512, .batch = 1, .steps = 8, .cfg_scale = 7.5, .probe_seconds = 0.5};
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    long long n = 0;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      bench_usage(stdout);
      return 0;
    } else if (strcmp(a, "--json") == 0) {
      o.json = 1;
    } else if (strcmp(a, "--profile") == 0) {
      o.profile = 1;
    } else if (strcmp(a, "--low-memory") == 0) {
      o.low_memory = 1;
    } else if (v == NULL) {
      return bad("an option is missing its value");
    } else if (strcmp(a, "-t") == 0 || strcmp(a, "--threads") == 0) {
      if (!cli_parse_int(v, &o.threads) || o.threads < 1 || o.threads > 1024) return bad("-t takes 1..1024");
      i++;
    } else if (strcmp(a, "--repeat") == 0) {
      if (!cli_parse_int(v, &o.repeat) || o.repeat < 1 || o.repeat > 100000) return bad("--repeat takes 1..100000");
      i++;
    } else if (strcmp(a, "--size") == 0) {
      if (!cli_parse_int(v, &o.size) || o.size < 64 || o.size > 8192 || o.size % 64 != 0)
        return bad("--size takes a multiple of 64 in 64..8192");
      i++;
    } else if (strcmp(a, "--batch") == 0) {
      if (!cli_parse_int(v, &o.batch) || o.batch < 1 || o.batch > 64) return bad("--batch takes 1..64");
      i++;
    } else if (strcmp(a, "--steps") == 0) {
      if (!cli_parse_int(v, &o.steps) || o.steps < 1 || o.steps > 1000) return bad("--steps takes 1..1000");
      i++;
    } else if (strcmp(a, "--cfg-scale") == 0) {
      if (!parse_number(v, &o.cfg_scale) || !(o.cfg_scale >= 0 && o.cfg_scale <= 100)) return bad("--cfg-scale takes 0..100");
      i++;
    } else if (strcmp(a, "--config") == 0) {
      o.config = argv[++i];
    } else if (strcmp(a, "--tokenizer") == 0) {
      o.tokenizer = argv[++i];
    } else if (strcmp(a, "--only") == 0) {
      o.only = argv[++i];
    } else if (strcmp(a, "--taesd") == 0) {
      o.taesd = argv[++i];
    } else if (strcmp(a, "--pack") == 0) {
      o.pack = argv[++i];
    } else if (strcmp(a, "--weights") == 0) {
      if (!cli_parse_weights(v, &o.weights)) return bad("--weights takes f32, f16 or q8");
      i++;
    } else if (strcmp(a, "--probe-seconds") == 0) {
      if (!parse_number(v, &o.probe_seconds) || !(o.probe_seconds >= 0.01 && o.probe_seconds <= 60))
        return bad("--probe-seconds takes 0.01..60");
      i++;
    } else {
      (void)n;
      fprintf(stderr, "snapfusion bench: unknown option '%s'\n", a);
      return CLI_EXIT_USAGE;
    }
  }
  if (o.repeat == 0) o.repeat = subs[sub].default_repeat;
  if (sub != 0 && o.config == NULL && !(sub == 2 && o.taesd != NULL)) return bad("this benchmark needs --config DIR");
  if (o.pack && sub != 4) return bad("--pack is an option of bench txt2img");
  if (o.pack) { /* the pack's weight type, unless --weights names it (the load refuses another) */
    sf_diag d = {0};
    sf_pack *pk = sf_pack_open(o.pack, &d);
    if (pk == NULL) {
      fprintf(stderr, "snapfusion: %s: %s\n", sf_status_string(d.status), d.msg);
      return CLI_EXIT_FAIL;
    }
    if (o.weights == SF_WEIGHT_DEFAULT) o.weights = (int)sf_pack_get_info(pk)->weight_type;
    sf_pack_close(pk);
  }

  sf_context *ctx = cli_context((int)o.threads);
  if (ctx == NULL) return CLI_EXIT_FAIL;
  size_t threads = ctx->pool ? pthreadpool_get_threads_count(ctx->pool) : 1;
  bench_refs refs = {0};
  /* The FMA peak is probed before and after the work (best of the two). */
  refs.fma_gflops = bench_fma_peak_gflops(ctx->pool, o.probe_seconds);
  bench_row rows[BENCH_MAX_ROWS];
  memset(rows, 0, sizeof rows);
  size_t n_rows = 0;
  cli_anon_start();
  int rc = subs[sub].fn(&o, ctx, &refs, rows, &n_rows);
  if (rc == 0) {
    /* Other processes can steal cycles during either probe: the better one is the peak. */
    double again = bench_fma_peak_gflops(ctx->pool, o.probe_seconds);
    if (again > refs.fma_gflops) refs.fma_gflops = again;
    for (size_t i = 0; i < n_rows; i++) {
      bench_row *r = &rows[i];
      if (r->tokens > 0) r->ratio = 0;
      else if (r->bytes > 0) r->ratio = refs.have_stream && refs.stream_gbs > 0 ? r->bytes / r->median_s * 1e-9 / refs.stream_gbs : 0;
      else r->ratio = refs.fma_gflops > 0 ? r->flops / r->median_s * 1e-9 / refs.fma_gflops : 0;
    }
    bench_report(stdout, &o, subs[sub].name, threads, &refs, rows, n_rows);
  }
  cli_anon_stop();
  sf_context_destroy(ctx);
  return rc;
}
