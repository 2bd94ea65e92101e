/* The public API as a user sees it: only snapfusion.h and the shared library. */
#include <snapfusion.h>

#include "test.h"

typedef struct {
  int calls;
  sf_log_level last_level;
  char last[256];
} log_sink;

static void on_log(void *user, sf_log_level level, const char *msg) {
  log_sink *s = user;
  s->calls++;
  s->last_level = level;
  snprintf(s->last, sizeof s->last, "%s", msg);
}

static void test_versions(void) {
  CHECK(strcmp(sf_version(), SF_VERSION_STRING) == 0);
  CHECK_EQ_INT(sf_abi_version(), SF_ABI_VERSION);
  CHECK_EQ_INT(sf_version_number(), SF_VERSION_MAJOR * 10000 + SF_VERSION_MINOR * 100 + SF_VERSION_PATCH);
}

static void test_status_strings(void) {
  for (int s = 0; s <= SF_ERR_NOT_FOUND; s++) {
    const char *str = sf_status_string((sf_status)s);
    CHECK(str != NULL && *str != '\0' && strcmp(str, "unknown status") != 0);
  }
  CHECK(strcmp(sf_status_string((sf_status)9999), "unknown status") == 0);
}

static void test_params(void) {
  sf_params *p = NULL;
  CHECK_EQ_INT(sf_params_create(&p), SF_OK);
  int64_t i = 0;
  double f = 0;
  const char *s = NULL;
  CHECK_EQ_INT(sf_params_get_int(p, SF_PARAM_STEPS, &i), SF_ERR_NOT_FOUND);
  CHECK_EQ_INT(sf_params_set_int(p, SF_PARAM_STEPS, 8), SF_OK);
  CHECK_EQ_INT(sf_params_get_int(p, SF_PARAM_STEPS, &i), SF_OK);
  CHECK_EQ_INT(i, 8);
  /* wrong type for the key is refused with a message */
  CHECK_EQ_INT(sf_params_set_float(p, SF_PARAM_STEPS, 1.5), SF_ERR_INVALID_ARGUMENT);
  CHECK(strstr(sf_last_error(), "int") != NULL);
  CHECK_EQ_INT(sf_params_set_int(p, (sf_param)4242, 1), SF_ERR_INVALID_ARGUMENT);
  CHECK_EQ_INT(sf_params_set_float(p, SF_PARAM_GUIDANCE_SCALE, 7.5), SF_OK);
  CHECK_EQ_INT(sf_params_get_float(p, SF_PARAM_GUIDANCE_SCALE, &f), SF_OK);
  CHECK(f == 7.5);
  char prompt[32] = "a cat";
  CHECK_EQ_INT(sf_params_set_string(p, SF_PARAM_PROMPT, prompt), SF_OK);
  prompt[0] = 'X'; /* params keep their own copy */
  CHECK_EQ_INT(sf_params_get_string(p, SF_PARAM_PROMPT, &s), SF_OK);
  CHECK(s && strcmp(s, "a cat") == 0);
  CHECK_EQ_INT(sf_params_set_string(p, SF_PARAM_PROMPT, "a dog"), SF_OK);
  CHECK_EQ_INT(sf_params_get_string(p, SF_PARAM_PROMPT, &s), SF_OK);
  CHECK(s && strcmp(s, "a dog") == 0);
  CHECK_EQ_INT(sf_params_set_string(p, SF_PARAM_PROMPT, NULL), SF_ERR_INVALID_ARGUMENT);
  CHECK_EQ_INT(sf_params_unset(p, SF_PARAM_STEPS), SF_OK);
  CHECK_EQ_INT(sf_params_get_int(p, SF_PARAM_STEPS, &i), SF_ERR_NOT_FOUND);
  CHECK_EQ_INT(sf_params_get_int(NULL, SF_PARAM_STEPS, &i), SF_ERR_INVALID_ARGUMENT);
  CHECK_EQ_INT(sf_params_create(NULL), SF_ERR_INVALID_ARGUMENT);
  sf_params_destroy(p);
  sf_params_destroy(NULL);
}

static void test_context(void) {
  sf_context *ctx = NULL;
  CHECK_EQ_INT(sf_context_create(&ctx), SF_OK);
  CHECK(ctx != NULL);
  int64_t threads = 0;
  CHECK_EQ_INT(sf_context_get_int(ctx, SF_PARAM_THREADS, &threads), SF_OK);
  CHECK(threads >= 1);
  CHECK_EQ_INT(sf_context_set_int(ctx, SF_PARAM_THREADS, 3), SF_OK);
  CHECK_EQ_INT(sf_context_get_int(ctx, SF_PARAM_THREADS, &threads), SF_OK);
  CHECK_EQ_INT(threads, 3);
  CHECK_EQ_INT(sf_context_set_int(ctx, SF_PARAM_THREADS, 1), SF_OK);

  log_sink sink = {0};
  CHECK_EQ_INT(sf_context_set_log_callback(ctx, on_log, &sink), SF_OK);
  CHECK_EQ_INT(sf_context_set_int(ctx, SF_PARAM_LOG_LEVEL, 99), SF_ERR_INVALID_ARGUMENT);
  /* the failure is reported three ways: status, context message, log callback */
  CHECK(strstr(sf_context_last_error(ctx), "log level") != NULL);
  CHECK(strstr(sf_last_error(), "log level") != NULL);
  CHECK(sink.calls == 1 && sink.last_level == SF_LOG_ERROR && strstr(sink.last, "log level") != NULL);
  CHECK_EQ_INT(sf_context_set_int(ctx, SF_PARAM_PROMPT, 1), SF_ERR_INVALID_ARGUMENT);
  CHECK_EQ_INT(sf_context_set_log_callback(ctx, NULL, NULL), SF_OK);

  /* two contexts are independent */
  sf_context *other = NULL;
  CHECK_EQ_INT(sf_context_create(&other), SF_OK);
  CHECK(strcmp(sf_context_last_error(other), "") == 0);
  sf_context_destroy(other);
  sf_context_destroy(ctx);
  sf_context_destroy(NULL);
  CHECK_EQ_INT(sf_context_create(NULL), SF_ERR_INVALID_ARGUMENT);
  CHECK_EQ_INT(sf_context_set_int(NULL, SF_PARAM_THREADS, 1), SF_ERR_INVALID_ARGUMENT);
  CHECK(strcmp(sf_context_last_error(NULL), "") == 0);
}

int main(void) {
  test_versions();
  test_status_strings();
  test_params();
  test_context();
  TEST_MAIN_END();
}
