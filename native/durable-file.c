/*
 * writeNewFile(path: string, bytes: Uint8Array, mode: number): Promise<void>
 *
 * Creates `path` exclusively with `mode`, writes all of `bytes` to it and closes it, durable on
 * success (opened with O_DSYNC; an empty file, which has no write, is fdatasynced): the open, the
 * writes and the close in one task on libuv's pool, where fs calls from JavaScript take one hop
 * through the pool each. A failure rejects with an Error carrying `errno` (positive) and
 * `syscall`; a file it created is left for the caller to remove.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <node_api.h>

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref bytes_ref;
  char *path;
  const uint8_t *data;
  size_t length;
  int mode;
  int error;
  const char *syscall;
} Job;

static void run(napi_env env, void *data) {
  (void)env;
  Job *job = data;
  int fd = open(job->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_DSYNC, (mode_t)job->mode);
  if (fd < 0) {
    job->error = errno;
    job->syscall = "open";
    return;
  }
  size_t written = 0;
  while (written < job->length) {
    ssize_t n = pwrite(fd, job->data + written, job->length - written, (off_t)written);
    if (n < 0) {
      if (errno == EINTR) continue;
      job->error = errno;
      job->syscall = "write";
      break;
    }
    written += (size_t)n;
  }
  if (job->error == 0 && job->length == 0 && fdatasync(fd) != 0) {
    job->error = errno;
    job->syscall = "fdatasync";
  }
  if (close(fd) != 0 && job->error == 0 && errno != EINTR) {
    job->error = errno;
    job->syscall = "close";
  }
}

static void complete(napi_env env, napi_status status, void *data) {
  Job *job = data;
  napi_value outcome;
  if (status != napi_ok) {
    job->error = ECANCELED;
    job->syscall = "open";
  }
  if (job->error == 0) {
    napi_get_undefined(env, &outcome);
    napi_resolve_deferred(env, job->deferred, outcome);
  } else {
    napi_value message, errno_value, syscall_value;
    napi_create_string_utf8(env, strerror(job->error), NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, NULL, message, &outcome);
    napi_create_int32(env, job->error, &errno_value);
    napi_set_named_property(env, outcome, "errno", errno_value);
    napi_create_string_utf8(env, job->syscall, NAPI_AUTO_LENGTH, &syscall_value);
    napi_set_named_property(env, outcome, "syscall", syscall_value);
    napi_reject_deferred(env, job->deferred, outcome);
  }
  napi_delete_reference(env, job->bytes_ref);
  napi_delete_async_work(env, job->work);
  free(job->path);
  free(job);
}

static napi_value write_new_file(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  size_t argc = 3;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3) {
    napi_throw_type_error(env, "ERR_MISSING_ARGS", "missing arguments");
    return NULL;
  }
  size_t path_length;
  if (napi_get_value_string_utf8(env, argv[0], NULL, 0, &path_length) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected a path string");
    return NULL;
  }
  napi_typedarray_type type;
  size_t length;
  void *bytes;
  if (napi_get_typedarray_info(env, argv[1], &type, &length, &bytes, NULL, NULL) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected a Uint8Array");
    return NULL;
  }
  int32_t mode;
  if (napi_get_value_int32(env, argv[2], &mode) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected a mode number");
    return NULL;
  }
  Job *job = calloc(1, sizeof(Job));
  char *path = malloc(path_length + 1);
  if (job == NULL || path == NULL) {
    free(job);
    free(path);
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  napi_get_value_string_utf8(env, argv[0], path, path_length + 1, &path_length);
  job->path = path;
  job->data = bytes;
  job->length = length;
  job->mode = mode;
  napi_value promise, name;
  if (napi_create_reference(env, argv[1], 1, &job->bytes_ref) != napi_ok ||
      napi_create_promise(env, &job->deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, "ferry:writeNewFile", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, run, complete, job, &job->work) != napi_ok ||
      napi_queue_async_work(env, job->work) != napi_ok) {
    /* Not reached in practice; the half-made job is leaked rather than half freed. */
    napi_throw_error(env, NULL, "could not queue writeNewFile");
    return NULL;
  }
  return promise;
}

NAPI_MODULE_INIT() {
  napi_value function;
  if (napi_create_function(env, "writeNewFile", NAPI_AUTO_LENGTH, write_new_file, NULL, &function) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "writeNewFile", function) != napi_ok) return NULL;
  return exports;
}
