/*
 * SHA-256 whose state lives in a JavaScript Uint8Array, so it can be saved and taken up again:
 * OpenSSL's SHA256_Update (with the CPU's SHA instructions where it has them: about 0.6 CPU-seconds
 * per GiB here, against about 2.5 for hash-wasm's WebAssembly) over OpenSSL's public SHA256_CTX.
 * Node carries OpenSSL and exports these functions to addons; the struct is declared here as
 * openssl/sha.h declares it (unchanged since OpenSSL 0.9.8) so that only node_api.h is needed.
 * Built by native/build.js; src/hashing/sha256-states.ts reads and writes the struct.
 */
#include <node_api.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
  uint32_t h[8];
  uint32_t Nl, Nh;
  uint32_t data[16];
  uint32_t num, md_len;
} openssl_sha256_ctx;

_Static_assert(sizeof(openssl_sha256_ctx) == 112, "SHA256_CTX is 112 bytes");

int SHA256_Init(openssl_sha256_ctx *ctx);
int SHA256_Update(openssl_sha256_ctx *ctx, const void *data, size_t length);
int SHA256_Final(unsigned char *digest, openssl_sha256_ctx *ctx);

/* The bytes of a Uint8Array argument (on an ArrayBuffer or a SharedArrayBuffer), or throws. */
static int bytes_of(napi_env env, napi_value value, size_t at_least, uint8_t **data, size_t *length) {
  napi_typedarray_type type;
  napi_value backing;
  size_t offset;
  void *start;
  if (napi_get_typedarray_info(env, value, &type, length, &start, &backing, &offset) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected a Uint8Array");
    return 0;
  }
  if (*length < at_least) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "the Uint8Array is too short");
    return 0;
  }
  *data = start;
  return 1;
}

/* Reads `count` Uint8Array arguments: the state first (112 bytes at least), then the others. */
static int args_of(napi_env env, napi_callback_info info, size_t count, uint8_t **data, size_t *lengths) {
  napi_value argv[2];
  size_t argc = 2;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < count) {
    napi_throw_type_error(env, "ERR_MISSING_ARGS", "missing arguments");
    return 0;
  }
  for (size_t i = 0; i < count; i++) {
    if (!bytes_of(env, argv[i], i == 0 ? sizeof(openssl_sha256_ctx) : 0, &data[i], &lengths[i])) return 0;
  }
  return 1;
}

/* init(state): a new hash in `state`. */
static napi_value init(napi_env env, napi_callback_info info) {
  uint8_t *data[1];
  size_t lengths[1];
  if (args_of(env, info, 1, data, lengths)) SHA256_Init((openssl_sha256_ctx *)data[0]);
  return NULL;
}

/* update(state, bytes): hashes `bytes` into `state`. */
static napi_value update(napi_env env, napi_callback_info info) {
  uint8_t *data[2];
  size_t lengths[2];
  if (args_of(env, info, 2, data, lengths)) SHA256_Update((openssl_sha256_ctx *)data[0], data[1], lengths[1]);
  return NULL;
}

/* final(state, digest): the digest of everything hashed into `state`, into `digest` (32 bytes). */
static napi_value final(napi_env env, napi_callback_info info) {
  uint8_t *data[2];
  size_t lengths[2];
  if (!args_of(env, info, 2, data, lengths)) return NULL;
  if (lengths[1] < 32) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "the digest needs 32 bytes");
    return NULL;
  }
  SHA256_Final(data[1], (openssl_sha256_ctx *)data[0]);
  return NULL;
}

NAPI_MODULE_INIT() {
  const napi_property_descriptor functions[] = {
    {"init", NULL, init, NULL, NULL, NULL, napi_enumerable, NULL},
    {"update", NULL, update, NULL, NULL, NULL, napi_enumerable, NULL},
    {"final", NULL, final, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof functions / sizeof functions[0], functions) != napi_ok) return NULL;
  return exports;
}
