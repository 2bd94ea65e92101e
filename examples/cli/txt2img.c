/* snapfusion txt2img: prompt in, PNG out, with a progress bar and a timing summary. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "lora_args.h"

static void txt2img_usage(FILE *f) {
  fprintf(f,
          "usage: snapfusion txt2img (-m MODEL_DIR | --random-weights CONFIG_DIR) -p PROMPT [options]\n"
          "  -m, --model DIR        diffusers model folder\n"
          "  --random-weights DIR   a config folder (e.g. ../shared/configs/snapfusion-style) with\n"
          "                         seeded random weights: the image is noise; this measures speed\n"
          "  -p, --prompt TEXT      the prompt\n"
          "  -n, --negative TEXT    negative prompt\n"
          "  --prompt-syntax S      plain (default: diffusers, the text as written, cut after 75 tokens)\n"
          "                         or a1111: (word) x1.1, ((word)), [word] /1.1, (word:1.3), \\( \\)\n"
          "                         literal, BREAK; long prompts in chunks of 75 tokens (README)\n"
          "  -W, --width N          pixels, a multiple of 8 from 8 to 8192 (default: the model's);\n"
          "                         the model may need more: sides must be multiples of its decoder\n"
          "                         factor times 2^(UNet down-samplings), 64 for SD-1.x, checked\n"
          "                         right after loading (SF_INFO_SIZE_MULTIPLE)\n"
          "  -H, --height N         pixels, likewise\n"
          "  --steps N              denoising steps, 1..1000 (default 8; LCM models: 4)\n"
          "  --cfg-scale X          classifier-free guidance, a finite number (default 7.5; <= 1\n"
          "                         disables it; LCM models: the guidance they embed, default 8)\n"
          "  --sampler NAME         ddim, pndm, euler, euler_a, dpm++2m, lcm (default: the folder's)\n"
          "  --karras               Karras sigmas (euler, dpm++2m)\n"
          "  --prediction TYPE      epsilon, v_prediction or sample (default: the folder's)\n"
          "  --seed S               64-bit seed, PyTorch-compatible (default 0); -1 draws a random\n"
          "                         one (printed, and recorded in the PNG's parameters)\n"
          "  --batch-count N        N images (1..10000) from seeds S, S+1, ... (named as -o says)\n"
          "  --init-img PNG         img2img from this image (its size sets -W/-H)\n"
          "  --strength X           img2img strength in [0,1] (default 0.8; only with --init-img)\n"
          "  --tokenizer DIR        CLIP tokenizer folder (vocab.json + merges.txt) to use instead of\n"
          "                         the model's, e.g. for a config folder that has none\n"
          "  --config DIR           with -m FILE.safetensors (a single-file checkpoint, LDM layout):\n"
          "                         the diffusers folder whose configs, scheduler and tokenizer\n"
          "                         describe it (default: inferred from its shapes as SD-1.x)\n"
          "  --taesd DIR            TAESD weights: previews, or the decoder with --decoder taesd\n"
          "  --preview PNG          after every step, write a preview of the image so far to PNG\n"
          "                         (replaced each step, through PNG.part renamed over it): TAESD's\n"
          "                         decode with --taesd, else a cheap 1/8-size latent projection\n"
          "  --decoder vae|taesd    which decoder makes the final image (default vae)\n"
          "  --clip-skip N          use the N-th last text encoder layer (default 1; 0 and 1: the last;\n"
          "                         at most the encoder's layer count + 1, checked before the load)\n"
          "  --variant NAME         prefer *.NAME.safetensors weights (e.g. fp16)\n"
          "  --weights TYPE         f32, f16 or q8: how the networks' weights are held (default:\n"
          "                         as the checkpoint stores them, f16 for fp16 files; random\n"
          "                         weights: f32)\n"
          "  --low-memory           one network resident at a time (each packed when needed)\n"
          "  --lora FILE[:SCALE]    merge a LoRA (kohya/A1111 or diffusers/PEFT .safetensors) into the\n"
          "                         UNet and text encoder at load, at SCALE (default 1); repeatable\n"
          "                         (the LoRAs add up). The PNG's parameters record <lora:NAME:SCALE>\n"
          "  --lora-dir DIR         where the prompt's A1111 tags <lora:NAME> / <lora:NAME:SCALE> are:\n"
          "                         each loads DIR/NAME.safetensors and is removed from the prompt\n"
          "  --pack FILE            take the weights from a pack file (snapfusion pack), mapped in place:\n"
          "                         no packing at load, weights in clean file-backed memory; -m DIR\n"
          "                         then needs configs only (--weights, if given, must be the pack's)\n"
          "  -t, --threads N        worker threads, 1..1024 (default: one per core; more threads\n"
          "                         than online CPUs make runs much slower, with a warning)\n"
          "  -o, --output PNG       output file, a name ending in .png: only PNG is written (default\n"
          "                         output.png). With --batch-count N > 1, OUT.png becomes OUT-0.png,\n"
          "                         OUT-1.png, ... unless the name holds one printf-style %%d (flags\n"
          "                         and a width allowed) for the batch index: -o out-%%03d.png writes\n"
          "                         out-000.png, out-001.png, ... (%%%% for a literal %%; any other %%\n"
          "                         is an error). Every output is checked to be writable before the\n"
          "                         model loads (leaving nothing behind): if not, exit status 1\n"
          "  -q, --quiet            no progress: only the 'wrote' lines (and errors, warnings)\n"
          "progress goes to stderr: status lines for loading, encoding and decoding with their times,\n"
          "and per step a bar redrawn in place on a terminal, else one line each ('step 3/8 ...')\n"
          "exit status: 0 done; 2 bad arguments (found before any model is loaded); 1 a failure:\n"
          "the library's message (model, generation), or an output that cannot be written\n");
}

/* ---- progress on stderr: a bar and one-line statuses on a terminal, else one line each ---- */

/* "loading X ..." : on a terminal the line stays open for status_end's time. */
static void status_begin(int tty, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void status_begin(int tty, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputs(tty ? " ... " : " ...\n", stderr);
  fflush(stderr);
  cli_line_open(tty);
}

/* "... 1.23 s" on a terminal, else a line "<tag>loaded in 1.23 s". */
static void status_end(int tty, const char *tag, const char *done, double seconds) {
  if (tty) fprintf(stderr, "%.2f s\n", seconds);
  else fprintf(stderr, "%s%s in %.2f s\n", tag, done, seconds);
  cli_line_open(0);
}

/* After step `done` of `total` (seconds: all steps so far): the bar redrawn on a terminal,
 * else one line per step. */
static void step_progress(int tty, const char *tag, int done, int total, double seconds) {
  double per = seconds / done, eta = per * (total - done);
  if (tty) {
    int bar = 30 * done / total;
    fprintf(stderr, "\r%s[%.*s%*s] %d/%d  %.2f s/it  ETA %.1f s ", tag, bar, "##############################", 30 - bar,
            "", done, total, per, eta);
    cli_line_open(1);
  } else {
    fprintf(stderr, "%sstep %d/%d  %.2f s/it  ETA %.1f s\n", tag, done, total, per, eta);
  }
  fflush(stderr);
}

/* The options that take a value, to name the one left without one at the end. */
static int takes_value(const char *a) {
  static const char *const names[] = {"-m", "--model", "--random-weights", "-p", "--prompt", "-n", "--negative",
                                      "-W", "--width", "-H", "--height", "--steps", "--cfg-scale", "--sampler",
                                      "--prediction", "--seed", "--batch-count", "--init-img", "--strength",
                                      "--taesd", "--tokenizer", "--config", "--decoder", "--clip-skip", "--prompt-syntax", "--variant", "--weights", "--pack", "--lora", "--lora-dir", "-t",
                                      "--threads", "-o", "--output", "--preview"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp(a, names[i]) == 0) return 1;
  return 0;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double peak_rss_mib(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;
}

static int bad_arg(const char *what) {
  fprintf(stderr, "snapfusion txt2img: %s (see --help)\n", what);
  return CLI_EXIT_USAGE;
}

static int parse_double(const char *s, double *out) {
  char *end = NULL;
  if (s == NULL || *s == '\0' || isspace((unsigned char)*s)) return 0;
  *out = strtod(s, &end);
  return *end == '\0' && isfinite(*out);
}

/* ---- output names: -o is a .png name, optionally with one printf-style %d ------------------ */

enum { PATH_CAP = 4096 };

static int has_png_suffix(const char *name) {
  size_t n = strlen(name);
  if (n < 4) return 0;
  const char *e = name + n - 4;
  return e[0] == '.' && tolower((unsigned char)e[1]) == 'p' && tolower((unsigned char)e[2]) == 'n' &&
         tolower((unsigned char)e[3]) == 'g';
}

/* One %d conversion of an output pattern: flags among "-+ 0", a width up to 99. */
typedef struct {
  int minus, plus, space, zero, width;
} index_spec;

/* Reads the conversion at pat (just after the '%'); returns its length up to and with the
 * 'd', or 0 when it is not a %d with only flags and a width. */
static size_t read_index_spec(const char *pat, index_spec *spec) {
  memset(spec, 0, sizeof *spec);
  size_t i = 0;
  for (;; i++) {
    if (pat[i] == '-') spec->minus = 1;
    else if (pat[i] == '+') spec->plus = 1;
    else if (pat[i] == ' ') spec->space = 1;
    else if (pat[i] == '0') spec->zero = 1;
    else break;
  }
  for (int digits = 0; isdigit((unsigned char)pat[i]); i++, digits++) {
    if (digits == 2) return 0;
    spec->width = spec->width * 10 + (pat[i] - '0');
  }
  return pat[i] == 'd' ? i + 1 : 0;
}

/* Checks an -o value; *indexed: it has the %d. Returns NULL or what is wrong. */
static const char *check_output_pattern(const char *pat, int *indexed) {
  *indexed = 0;
  if (!has_png_suffix(pat)) return "-o must name a .png file: only PNG is written";
  for (const char *c = pat; *c; c++) {
    if (*c != '%') continue;
    if (c[1] == '%') {
      c++;
      continue;
    }
    index_spec spec;
    size_t n = read_index_spec(c + 1, &spec);
    if (n == 0) return "-o: a '%' must be %% or the batch index %d (flags and a width allowed, e.g. %03d)";
    if (*indexed) return "-o: only one %d (the batch index) is allowed";
    *indexed = 1;
    c += n;
  }
  return NULL;
}

/* Appends the decimal index as the spec says; returns the new length. */
static size_t put_index(char *buf, size_t len, size_t cap, const index_spec *spec, long long index) {
  char digits[32];
  int nd = snprintf(digits, sizeof digits, "%lld", index);
  char sign = spec->plus ? '+' : spec->space ? ' ' : 0;
  int body = nd + (sign != 0);
  int pad = spec->width > body ? spec->width - body : 0;
  char tmp[160];
  int t = 0;
  if (!spec->minus && !spec->zero)
    while (pad-- > 0) tmp[t++] = ' ';
  if (sign) tmp[t++] = sign;
  if (!spec->minus && spec->zero)
    while (pad-- > 0) tmp[t++] = '0';
  memcpy(tmp + t, digits, (size_t)nd);
  t += nd;
  if (spec->minus)
    while (pad-- > 0) tmp[t++] = ' ';
  for (int k = 0; k < t; k++, len++)
    if (len < cap) buf[len] = tmp[k];
  return len;
}

/* The file name of image `index` of `count`: the pattern with its %d replaced (and %% made
 * %), or without a %d, OUT.png for one image and OUT-0.png, OUT-1.png, ... for several.
 * Returns 0 when the name does not fit in cap bytes. */
static int output_name(const char *pat, int indexed, long long index, long long count, char *buf, size_t cap) {
  size_t len = 0, n = strlen(pat);
  const size_t suffix_at = n - 4; /* the ".png", checked before */
  for (size_t i = 0; i < n; i++) {
    if (!indexed && count > 1 && i == suffix_at) {
      index_spec plain = {0};
      if (len < cap) buf[len] = '-';
      len = put_index(buf, len + 1, cap, &plain, index);
    }
    if (pat[i] == '%' && pat[i + 1] == '%') {
      i++;
      if (len < cap) buf[len] = '%';
      len++;
    } else if (pat[i] == '%') {
      index_spec spec;
      i += read_index_spec(pat + i + 1, &spec);
      len = put_index(buf, len, cap, &spec, index);
    } else {
      if (len < cap) buf[len] = pat[i];
      len++;
    }
  }
  if (len >= cap) return 0;
  buf[len] = '\0';
  return 1;
}

/* Whether a file can be written at path, checked without changing anything: an existing
 * file is opened for writing (not truncated), elsewhere a new file is created and removed
 * at once. Sets errno when not. */
static int can_write(const char *path) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd >= 0) {
    close(fd);
    unlink(path);
    return 1;
  }
  if (errno != EEXIST) return 0;
  fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return 0;
  close(fd);
  return 1;
}

/* The text encoder's layer count, from the folder's description (an inspect-only load: the
 * files are validated, no network is built); 0 when unknown. */
static long long text_encoder_layers(sf_context *ctx, const char *dir, int random_weights, const char *variant) {
  sf_params *opts = NULL;
  sf_pipeline *p = NULL;
  char *text = NULL;
  long long layers = 0;
  size_t need = 0;
  sf_status s = sf_params_create(&opts);
  if (s == SF_OK) s = sf_params_set_int(opts, SF_PARAM_INSPECT_ONLY, 1);
  if (s == SF_OK) s = sf_params_set_int(opts, SF_PARAM_COMPONENTS, SF_NET_UNET); /* no tokenizer needed */
  if (s == SF_OK && random_weights) s = sf_params_set_int(opts, SF_PARAM_RANDOM_WEIGHTS, 1);
  if (s == SF_OK && variant) s = sf_params_set_string(opts, SF_PARAM_VARIANT, variant);
  if (s == SF_OK) s = sf_pipeline_load(ctx, dir, opts, &p);
  if (s == SF_OK) s = sf_pipeline_describe(p, SF_FORMAT_JSON, NULL, 0, &need);
  if (s == SF_OK && (text = malloc(need)) != NULL && sf_pipeline_describe(p, SF_FORMAT_JSON, text, need, NULL) == SF_OK) {
    /* {"name": "text_encoder", ..., "config": {..., "num_hidden_layers": 12, ...}}, ... */
    const char *c = strstr(text, "\"name\": \"text_encoder\"");
    const char *next = c ? strstr(c + 1, "\"name\": ") : NULL;
    const char *l = c ? strstr(c, "\"num_hidden_layers\":") : NULL;
    if (l && (next == NULL || l < next)) {
      char *end = NULL;
      long long v = strtoll(l + strlen("\"num_hidden_layers\":"), &end, 10);
      if (end && v > 0) layers = v;
    }
  }
  free(text);
  sf_pipeline_destroy(p);
  sf_params_destroy(opts);
  return layers;
}

/* The job's preview written to path through a temporary file renamed over it, so a viewer
 * never reads a half-written PNG. Returns 0, or 1 after a message. */
static int write_preview(sf_job *job, const char *path, const sf_context *ctx) {
  sf_image *img = NULL;
  sf_status s = sf_job_preview(job, &img);
  if (s != SF_OK) {
    cli_fail("preview", s, ctx);
    return 1;
  }
  char tmp[PATH_CAP + 16];
  snprintf(tmp, sizeof tmp, "%s.part", path);
  s = sf_image_write_png(img, tmp);
  sf_image_destroy(img);
  if (s != SF_OK) {
    cli_fail(tmp, s, NULL);
    remove(tmp);
    return 1;
  }
  if (rename(tmp, path) != 0) {
    fprintf(stderr, "snapfusion: preview: cannot rename %s to %s: %s\n", tmp, path, strerror(errno));
    remove(tmp);
    return 1;
  }
  return 0;
}

/* Status 1 (and a message) when path cannot be written, else 0. */
static int check_writable(const char *path) {
  if (can_write(path)) return 0;
  fprintf(stderr, "snapfusion: cannot write %s: %s (checked before the model loads)\n", path, strerror(errno));
  return CLI_EXIT_FAIL;
}

/* cmd_txt2img's body; the caller frees the LoRA list and the cleaned prompt on every path. */
static int txt2img_run(int argc, char **argv, cli_loras *lora_list, char **prompt_clean) {
  const char *model = NULL, *config = NULL, *prompt = NULL, *negative = NULL, *out = "output.png";
  const char *preview = NULL, *pack = NULL, *lora_dir = NULL;
  const char *config_dir = NULL;
  cli_loras *loras = lora_list;
  const char *init_img = NULL, *taesd = NULL, *tokenizer = NULL, *variant = NULL, *decoder = "vae", *sampler_name = NULL,
             *prediction = NULL;
  long long width = 0, height = 0, steps = 8, seed = 0, threads = 0, batch = 1, clip_skip = 0;
  int seed_random = 0; /* --seed -1: the library draws the first seed; the batch continues from it */
  int weights = SF_WEIGHT_DEFAULT, low_memory = 0;
  double cfg = 7.5, strength = 0.8;
  int karras = 0, quiet = 0, have_strength = 0, have_steps = 0, have_cfg = 0, syntax = SF_PROMPT_SYNTAX_PLAIN;
  const int tty = isatty(STDERR_FILENO);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define TAKE(name) ((strcmp(a, name) == 0) && v != NULL && (i++, 1))
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      txt2img_usage(stdout);
      return 0;
    } else if (TAKE("-m") || TAKE("--model")) model = v;
    else if (TAKE("--random-weights")) config = v;
    else if (TAKE("-p") || TAKE("--prompt")) prompt = v;
    else if (TAKE("-n") || TAKE("--negative")) negative = v;
    else if (TAKE("-W") || TAKE("--width")) {
      if (!cli_parse_int(v, &width) || width < 8 || width > 8192 || width % 8) return bad_arg("-W takes a multiple of 8 from 8 to 8192");
    }
    else if (TAKE("-H") || TAKE("--height")) {
      if (!cli_parse_int(v, &height) || height < 8 || height > 8192 || height % 8) return bad_arg("-H takes a multiple of 8 from 8 to 8192");
    }
    else if (TAKE("--steps")) { if (!cli_parse_int(v, &steps) || steps < 1 || steps > 1000) return bad_arg("--steps takes 1..1000"); have_steps = 1; }
    else if (TAKE("--cfg-scale")) { if (!parse_double(v, &cfg)) return bad_arg("--cfg-scale takes a finite number"); have_cfg = 1; }
    else if (TAKE("--sampler")) sampler_name = v;
    else if (strcmp(a, "--karras") == 0) karras = 1;
    else if (TAKE("--prediction")) prediction = v;
    else if (TAKE("--seed")) {
      char *end = NULL;
      errno = 0;
      if (strcmp(v, "-1") == 0) {
        seed_random = 1;
      } else {
        unsigned long long s = strtoull(v, &end, 10);
        if (!isdigit((unsigned char)*v) || *end != '\0' || errno == ERANGE)
          return bad_arg("--seed takes an unsigned 64-bit integer, or -1 for a random one");
        seed = (long long)s;
        seed_random = 0;
      }
    }
    else if (TAKE("--batch-count")) { if (!cli_parse_int(v, &batch) || batch < 1 || batch > 10000) return bad_arg("--batch-count takes 1..10000"); }
    else if (TAKE("--init-img")) init_img = v;
    else if (TAKE("--strength")) {
      if (!parse_double(v, &strength) || !(strength >= 0 && strength <= 1)) return bad_arg("--strength takes a number in [0, 1]");
      have_strength = 1;
    }
    else if (TAKE("--taesd")) taesd = v;
    else if (TAKE("--tokenizer")) tokenizer = v;
    else if (TAKE("--config")) config_dir = v;
    else if (TAKE("--decoder")) decoder = v;
    else if (TAKE("--clip-skip")) { if (!cli_parse_int(v, &clip_skip) || clip_skip < 0 || clip_skip > 1000) return bad_arg("--clip-skip takes 0..1000"); }
    else if (TAKE("--prompt-syntax")) {
      if (strcmp(v, "plain") == 0) syntax = SF_PROMPT_SYNTAX_PLAIN;
      else if (strcmp(v, "a1111") == 0) syntax = SF_PROMPT_SYNTAX_A1111;
      else return bad_arg("--prompt-syntax takes plain or a1111");
    }
    else if (TAKE("--variant")) variant = v;
    else if (TAKE("--weights")) { if (!cli_parse_weights(v, &weights)) return bad_arg("--weights takes f32, f16 or q8"); }
    else if (TAKE("-t") || TAKE("--threads")) { if (!cli_parse_int(v, &threads) || threads < 1 || threads > 1024) return bad_arg("-t takes 1..1024"); }
    else if (TAKE("-o") || TAKE("--output")) out = v;
    else if (TAKE("--preview")) preview = v;
    else if (TAKE("--pack")) pack = v;
    else if (TAKE("--lora")) {
      if (!cli_lora_add(loras, v)) {
        return bad_arg("--lora takes FILE or FILE:SCALE (a path without tab or newline)");
      }
    }
    else if (TAKE("--lora-dir")) lora_dir = v;
    else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) quiet = 1;
    else if (strcmp(a, "--low-memory") == 0) low_memory = 1;
    else if (v == NULL && takes_value(a)) {
      fprintf(stderr, "snapfusion txt2img: %s needs a value (see --help)\n", a);
      return CLI_EXIT_USAGE;
    } else {
      fprintf(stderr, "snapfusion txt2img: unexpected argument '%s'\n", a);
      return CLI_EXIT_USAGE;
    }
#undef TAKE
  }
  if ((model == NULL) == (config == NULL)) return bad_arg("give exactly one of -m MODEL_DIR and --random-weights CONFIG_DIR");
  if (pack && config) return bad_arg("--pack holds the weights: use -m CONFIG_DIR with it, not --random-weights");
  if (prompt == NULL) return bad_arg("missing -p PROMPT");
  {
    char err[600];
    if (!cli_lora_from_prompt(loras, prompt, lora_dir, prompt_clean, err, sizeof err)) return bad_arg(err);
    prompt = *prompt_clean;
  }
  int out_indexed = 0;
  const char *bad_out = check_output_pattern(out, &out_indexed);
  if (bad_out) return bad_arg(bad_out);
  char probe_name[PATH_CAP];
  if (!output_name(out, out_indexed, batch - 1, batch, probe_name, sizeof probe_name)) return bad_arg("-o is too long");
  if (preview && !has_png_suffix(preview)) return bad_arg("--preview must name a .png file: only PNG is written");
  if (strcmp(decoder, "vae") != 0 && strcmp(decoder, "taesd") != 0) return bad_arg("--decoder takes vae or taesd");
  if (strcmp(decoder, "taesd") == 0 && taesd == NULL) return bad_arg("--decoder taesd needs --taesd DIR");
  if (have_strength && init_img == NULL) return bad_arg("--strength needs --init-img PNG (it is the img2img strength)");
  sf_sampler sampler = SF_SAMPLER_DEFAULT;
  if (sampler_name && (sampler = sf_sampler_from_name(sampler_name)) == SF_SAMPLER_DEFAULT)
    return bad_arg("--sampler takes ddim, pndm, euler, euler_a, dpm++2m or lcm");
  int pred = SF_PREDICTION_DEFAULT;
  if (prediction) {
    if (strcmp(prediction, "epsilon") == 0) pred = SF_PREDICTION_EPSILON;
    else if (strcmp(prediction, "v_prediction") == 0 || strcmp(prediction, "v") == 0) pred = SF_PREDICTION_V;
    else if (strcmp(prediction, "sample") == 0) pred = SF_PREDICTION_SAMPLE;
    else return bad_arg("--prediction takes epsilon, v_prediction or sample");
  }

  /* A typo'd directory or a read-only place fails now, not after the whole generation. */
  for (long long b = 0; b < batch; b++) {
    char path[PATH_CAP];
    output_name(out, out_indexed, b, batch, path, sizeof path);
    if (check_writable(path)) return CLI_EXIT_FAIL;
  }
  if (preview && check_writable(preview)) return CLI_EXIT_FAIL;

  sf_context *ctx = cli_context((int)threads);
  if (ctx == NULL) return CLI_EXIT_FAIL;
  cli_anon_start();
  int rc = 0;
  sf_params *load = NULL, *gen = NULL;
  sf_pipeline *pipe = NULL;
  sf_image *init = NULL;
  sf_status s = sf_params_create(&load);
  if (s == SF_OK) s = sf_params_create(&gen);
  if (s == SF_OK && config) s = sf_params_set_int(load, SF_PARAM_RANDOM_WEIGHTS, 1);
  if (s == SF_OK && variant) s = sf_params_set_string(load, SF_PARAM_VARIANT, variant);
  if (s == SF_OK && weights != SF_WEIGHT_DEFAULT) s = sf_params_set_int(load, SF_PARAM_WEIGHT_TYPE, weights);
  if (s == SF_OK && low_memory) s = sf_params_set_int(load, SF_PARAM_LOW_MEMORY, 1);
  if (s == SF_OK && pack) s = sf_params_set_string(load, SF_PARAM_PACK_PATH, pack);
  if (s == SF_OK && loras->count) s = sf_params_set_string(load, SF_PARAM_LORAS, loras->spec);
  if (s == SF_OK && taesd) s = sf_params_set_string(load, SF_PARAM_TAESD_PATH, taesd);
  if (s == SF_OK && tokenizer) s = sf_params_set_string(load, SF_PARAM_TOKENIZER_PATH, tokenizer);
  if (s == SF_OK && config_dir) s = sf_params_set_string(load, SF_PARAM_CONFIG_PATH, config_dir);
  if (s == SF_OK && !init_img) /* the encoders are only needed for img2img */
    s = sf_params_set_int(load, SF_PARAM_COMPONENTS,
                          SF_NET_TEXT_ENCODER | SF_NET_UNET | SF_NET_VAE_DECODER | SF_NET_TAESD_DECODER);
  if (s != SF_OK) {
    rc = cli_fail("options", s, NULL);
    goto done;
  }
  if (clip_skip > 2) { /* 0..2 suit every text encoder; past that, ask the folder (no network is built) */
    long long layers = text_encoder_layers(ctx, config ? config : model, config != NULL, variant);
    if (layers > 0 && clip_skip > layers + 1) {
      fprintf(stderr, "snapfusion txt2img: --clip-skip %lld: the text encoder has %lld layers: --clip-skip takes 0..%lld (see --help)\n",
              clip_skip, layers, layers + 1);
      rc = CLI_EXIT_USAGE;
      goto done;
    }
  }
  if (init_img) { /* read before the model loads: a wrong path fails at once */
    s = sf_image_read_png(init_img, &init);
    if (s != SF_OK) {
      rc = cli_fail(init_img, s, NULL);
      goto done;
    }
    sf_params_set_init_image(gen, sf_image_pixels(init), sf_image_width(init), sf_image_height(init),
                             sf_image_stride(init));
    if (!width) width = sf_image_width(init);
    if (!height) height = sf_image_height(init);
    sf_params_set_float(gen, SF_PARAM_STRENGTH, strength);
  }
  const char *source = config ? config : model;
  double t0 = now();
  if (!quiet) status_begin(tty, "loading %s%s", source, config ? " (random weights)" : "");
  s = sf_pipeline_load(ctx, source, load, &pipe);
  if (s != SF_OK) {
    rc = cli_fail(source, s, ctx);
    if (tokenizer == NULL && strstr(sf_context_last_error(ctx), "tokenizer/") != NULL)
      fprintf(stderr, "hint: --tokenizer DIR names a CLIP tokenizer folder (vocab.json + merges.txt), e.g. "
                      "../shared/fixtures/public/tokenizer\n");
    goto done;
  }
  double t_load = now() - t0;
  if (!quiet) status_end(tty, "", "loaded", t_load);
  sf_params_set_string(gen, SF_PARAM_PROMPT, prompt);
  if (negative) sf_params_set_string(gen, SF_PARAM_NEGATIVE_PROMPT, negative);
  if (width) sf_params_set_int(gen, SF_PARAM_WIDTH, width);
  if (height) sf_params_set_int(gen, SF_PARAM_HEIGHT, height);
  /* Unset, they take the model's defaults (8 steps at 7.5; LCM models 4 at 8). */
  if (have_steps) sf_params_set_int(gen, SF_PARAM_STEPS, steps);
  if (have_cfg) sf_params_set_float(gen, SF_PARAM_GUIDANCE_SCALE, cfg);
  sf_params_set_int(gen, SF_PARAM_SAMPLER, sampler);
  sf_params_set_int(gen, SF_PARAM_KARRAS_SIGMAS, karras);
  sf_params_set_int(gen, SF_PARAM_PREDICTION_TYPE, pred);
  sf_params_set_int(gen, SF_PARAM_CLIP_SKIP, clip_skip);
  sf_params_set_int(gen, SF_PARAM_PROMPT_SYNTAX, syntax);
  sf_params_set_int(gen, SF_PARAM_DECODER, strcmp(decoder, "taesd") == 0 ? SF_NET_TAESD_DECODER : SF_NET_VAE_DECODER);

  for (long long b = 0; b < batch && rc == 0; b++) {
    int draw = seed_random && b == 0;
    unsigned long long image_seed = (unsigned long long)seed + (unsigned long long)b;
    char image_tag[64] = ""; /* "image 2/4: " when there are several */
    if (batch > 1) snprintf(image_tag, sizeof image_tag, "image %lld/%lld: ", b + 1, batch);
    sf_params_set_int(gen, SF_PARAM_SEED, draw ? SF_SEED_RANDOM : (int64_t)image_seed);
    double ts = now();
    sf_job *job = NULL;
    if (!quiet) {
      if (draw) status_begin(tty, "%sencoding the prompt%s (random seed)", image_tag, init ? " and the init image" : "");
      else status_begin(tty, "%sencoding the prompt%s (seed %llu)", image_tag, init ? " and the init image" : "", image_seed);
    }
    s = sf_job_start(pipe, gen, &job);
    if (s != SF_OK) {
      rc = cli_fail("generation", s, ctx);
      break;
    }
    if (draw) {
      seed = (long long)sf_job_seed(job); /* the next images continue from the drawn seed */
      image_seed = (unsigned long long)seed;
    }
    double t_text = now() - ts, t_unet = 0, t_preview = 0;
    int preview_failed = 0;
    if (!quiet) status_end(tty, image_tag, "encoded", t_text);
    int total = sf_job_steps_total(job);
    while (sf_job_steps_done(job) < total) {
      double t1 = now();
      s = sf_job_step(job);
      if (s != SF_OK) break;
      t_unet += now() - t1;
      if (preview) {
        double t3 = now();
        preview_failed = write_preview(job, preview, ctx);
        t_preview += now() - t3;
        if (preview_failed) break;
      }
      if (!quiet) step_progress(tty, image_tag, sf_job_steps_done(job), total, t_unet + t_preview);
    }
    if (!quiet && tty && s == SF_OK && !preview_failed) { /* (else cli_fail ends the line) */
      fputc('\n', stderr);
      cli_line_open(0);
    }
    sf_image *img = NULL;
    double t2 = now();
    if (preview_failed) {
      sf_job_destroy(job);
      rc = CLI_EXIT_FAIL;
      break;
    }
    if (s == SF_OK) {
      if (!quiet) status_begin(tty, "%sdecoding (%s)", image_tag, strcmp(decoder, "taesd") == 0 ? "TAESD" : "VAE");
      s = sf_job_finish(job, &img);
    }
    double t_dec = now() - t2;
    sf_job_destroy(job);
    if (s != SF_OK) {
      rc = cli_fail("generation", s, ctx);
      break;
    }
    if (!quiet) status_end(tty, image_tag, "decoded", t_dec);
    char path[PATH_CAP];
    output_name(out, out_indexed, b, batch, path, sizeof path);
    s = sf_image_write_png(img, path);
    sf_image_destroy(img);
    if (s != SF_OK) {
      rc = cli_fail(path, s, NULL);
      break;
    }
    int64_t weight_bytes = 0; /* what is resident now (low memory: the decoder) */
    sf_pipeline_get_int(pipe, SF_INFO_WEIGHT_BYTES, &weight_bytes);
    const double weight_mib = (double)weight_bytes / 1048576.0;
    int64_t held = weights; /* the type the pipeline holds (a pack's, or as stored) */
    if (sf_pipeline_get_int(pipe, SF_INFO_WEIGHT_TYPE, &held) != SF_OK) held = weights;
    char preview_time[48] = "";
    if (preview) snprintf(preview_time, sizeof preview_time, "previews %.2f s, ", t_preview);
    fprintf(stderr,
            "wrote %s (seed %llu): load %.2f s, text %.2f s, UNet %.2f s (%.3f s/step x %d), %sdecode %.2f s, "
            "total %.2f s, weights %s%s (%.0f MiB), peak RSS %.0f MiB, peak anonymous %.0f MiB\n",
            path, image_seed, b == 0 ? t_load : 0.0, t_text, t_unet, total ? t_unet / total : 0.0, total,
            preview_time, t_dec, now() - ts + (b == 0 ? t_load : 0.0), cli_weights_name((int)held),
            low_memory ? ", low memory" : pack ? ", mapped from the pack" : "", weight_mib, peak_rss_mib(), cli_peak_anon_bytes() / 1048576.0);
    if (config && b == 0)
      fprintf(stderr, "note: random weights: the image is noise; the run shows the speed and memory of %s\n", config);
  }
done:
  cli_anon_stop();

  sf_image_destroy(init);
  sf_pipeline_destroy(pipe);
  sf_params_destroy(load);
  sf_params_destroy(gen);
  sf_context_destroy(ctx);
  return rc;
}

int cmd_txt2img(int argc, char **argv) {
  cli_loras loras = {0};
  char *prompt_clean = NULL;
  int rc = txt2img_run(argc, argv, &loras, &prompt_clean);
  cli_loras_free(&loras);
  free(prompt_clean);
  return rc;
}
