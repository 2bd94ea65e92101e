/* The snapfusion command-line tool: one file per subcommand. */
#ifndef SF_CLI_H
#define SF_CLI_H

#include <snapfusion.h>

/* Exit codes: 0 success, 1 failure of the work itself, 2 bad command line. */
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

int cmd_info(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_txt2img(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_pack(int argc, char **argv);

/* Prints "snapfusion: <what>: <library message>" to stderr; returns CLI_EXIT_FAIL. */
int cli_fail(const char *what, sf_status s, const sf_context *ctx);
/* Tells the log and error printers that stderr's current line is unfinished (a status
 * line or a progress bar on a terminal): they start a new line first. */
void cli_line_open(int open);
/* A context with the thread count (<= 0: default) and warnings sent to stderr; warns (one
 * line, the run goes on) when threads > 0 exceeds the online CPUs. */
sf_context *cli_context(int threads);
/* Parses an integer option value; returns 0 on a malformed or out-of-range value. */
int cli_parse_int(const char *s, long long *out);
/* Peak anonymous (dirty, not file-backed) memory of the process, sampled every 20 ms from
 * /proc/self/smaps_rollup between start and stop (memsample.c). */
void cli_anon_start(void);
double cli_peak_anon_bytes(void);
void cli_anon_stop(void);

/* --weights f32|f16|q8|default -> sf_weight_type; 0 for anything else (and *out untouched). */
int cli_parse_weights(const char *s, int *out);
/* "f32", "f16", "q8" or "as stored". */
const char *cli_weights_name(int type);

#endif
