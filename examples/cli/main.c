#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

typedef struct {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *summary;
} command;

static const command COMMANDS[] = {
    {"info", cmd_info, "describe a diffusers model folder"},
    {"check", cmd_check, "run a fixture set's reference cases against the library"},
    {"tokenize", cmd_tokenize, "print the CLIP token ids of a prompt"},
    {"txt2img", cmd_txt2img, "generate an image from a prompt"},
    {"bench", cmd_bench, "benchmarks of operators and networks against the machine's peak"},
    {"pack", cmd_pack, "prepack a model's weights into one file that loads map in place"},
};

static void usage(FILE *f) {
  fprintf(f, "usage: snapfusion <command> [options]   (snapfusion <command> --help for details)\n\ncommands:\n");
  for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
    fprintf(f, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
  fprintf(f, "\nlibsnapfusion %s\n", sf_version());
}

static int line_open; /* a status line or progress bar waits for its end on stderr */

void cli_line_open(int open) { line_open = open; }

int cli_fail(const char *what, sf_status s, const sf_context *ctx) {
  if (line_open) fputc('\n', stderr);
  line_open = 0;
  const char *msg = ctx ? sf_context_last_error(ctx) : sf_last_error();
  if (msg == NULL || *msg == '\0') msg = sf_last_error();
  fprintf(stderr, "snapfusion: %s: %s%s%s\n", what, sf_status_string(s), *msg ? ": " : "", msg);
  return CLI_EXIT_FAIL;
}

static void log_to_stderr(void *user, sf_log_level level, const char *message) {
  (void)user;
  static const char *names[] = {"debug", "info", "warning", "error"};
  if (level == SF_LOG_ERROR) return; /* errors are printed once by cli_fail */
  if (line_open) fputc('\n', stderr);
  line_open = 0;
  fprintf(stderr, "snapfusion: %s: %s\n", names[level], message);
}

sf_context *cli_context(int threads) {
  sf_context *ctx = NULL;
  sf_status s = sf_context_create(&ctx);
  if (s != SF_OK) {
    cli_fail("cannot create a context", s, NULL);
    return NULL;
  }
  sf_context_set_log_callback(ctx, log_to_stderr, NULL);
  sf_context_set_int(ctx, SF_PARAM_LOG_LEVEL, SF_LOG_WARN);
  if (threads > 0 && (s = sf_context_set_int(ctx, SF_PARAM_THREADS, threads)) != SF_OK) {
    cli_fail("threads", s, ctx);
    sf_context_destroy(ctx);
    return NULL;
  }
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  if (threads > 0 && cpus > 0 && threads > cpus)
    fprintf(stderr, "snapfusion: warning: -t %d is more than the %ld online CPUs: oversubscribed threads make runs much slower\n",
            threads, cpus);
  return ctx;
}

int cli_parse_int(const char *s, long long *out) {
  if (s == NULL || *s == '\0') return 0;
  char *end = NULL;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (*end != '\0' || errno == ERANGE) return 0;
  *out = v;
  return 1;
}

int cli_parse_weights(const char *s, int *out) {
  static const struct {
    const char *name;
    int type;
  } names[] = {{"default", SF_WEIGHT_DEFAULT}, {"f32", SF_WEIGHT_F32}, {"f16", SF_WEIGHT_F16}, {"q8", SF_WEIGHT_Q8}};
  for (size_t i = 0; s != NULL && i < sizeof names / sizeof names[0]; i++)
    if (strcmp(s, names[i].name) == 0) {
      *out = names[i].type;
      return 1;
    }
  return 0;
}

const char *cli_weights_name(int type) {
  return type == SF_WEIGHT_F32 ? "f32" : type == SF_WEIGHT_F16 ? "f16" : type == SF_WEIGHT_Q8 ? "q8" : "as stored";
}

int main(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? CLI_EXIT_USAGE : 0;
  }
  if (strcmp(argv[1], "--version") == 0) {
    printf("snapfusion %s (ABI %d)\n", sf_version(), sf_abi_version());
    return 0;
  }
  if (sf_abi_version() != SF_ABI_VERSION) {
    fprintf(stderr, "snapfusion: built for ABI %d but libsnapfusion has ABI %d\n", SF_ABI_VERSION, sf_abi_version());
    return CLI_EXIT_FAIL;
  }
  for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
    if (strcmp(argv[1], COMMANDS[i].name) == 0) return COMMANDS[i].run(argc - 1, argv + 1);
  fprintf(stderr, "snapfusion: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return CLI_EXIT_USAGE;
}
