/*
 * xxh64 (seed 0), the protocol's per-chunk hash, over the bytes of a Uint8Array where they lie
 * (an ArrayBuffer or a SharedArrayBuffer): xxhash-wasm must first copy them into its
 * WebAssembly memory, which costs about as much as the hash, and grows that memory by a chunk's
 * size in every thread that hashes. The algorithm is XXH64 as its specification gives it
 * (https://github.com/Cyan4973/xxHash/blob/dev/doc/xxhash_spec.md); test/xxh64.test.ts checks it
 * against xxhash-wasm. Built by native/build.js; loaded by src/hashing/xxh64.ts when present.
 */
#include <node_api.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PRIME1 0x9E3779B185EBCA87ULL
#define PRIME2 0xC2B2AE3D27D4EB4FULL
#define PRIME3 0x165667B19E3779F9ULL
#define PRIME4 0x85EBCA77C2B2AE63ULL
#define PRIME5 0x27D4EB2F165667C5ULL

static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

/* Little-endian loads at any alignment (memcpy compiles to a plain load on x86 and arm64). */
static inline uint64_t read64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, sizeof v);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap64(v);
#endif
  return v;
}

static inline uint32_t read32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, sizeof v);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap32(v);
#endif
  return v;
}

static inline uint64_t round64(uint64_t acc, uint64_t lane) {
  acc += lane * PRIME2;
  acc = rotl64(acc, 31);
  return acc * PRIME1;
}

static inline uint64_t merge64(uint64_t acc, uint64_t value) {
  acc ^= round64(0, value);
  return acc * PRIME1 + PRIME4;
}

static uint64_t xxh64(const uint8_t *p, size_t length) {
  const uint8_t *const end = p + length;
  uint64_t h;
  if (length >= 32) {
    const uint8_t *const limit = end - 32;
    uint64_t v1 = PRIME1 + PRIME2, v2 = PRIME2, v3 = 0, v4 = -PRIME1;
    do {
      v1 = round64(v1, read64(p));
      v2 = round64(v2, read64(p + 8));
      v3 = round64(v3, read64(p + 16));
      v4 = round64(v4, read64(p + 24));
      p += 32;
    } while (p <= limit);
    h = rotl64(v1, 1) + rotl64(v2, 7) + rotl64(v3, 12) + rotl64(v4, 18);
    h = merge64(h, v1);
    h = merge64(h, v2);
    h = merge64(h, v3);
    h = merge64(h, v4);
  } else {
    h = PRIME5;
  }
  h += (uint64_t)length;
  for (; p + 8 <= end; p += 8) h = rotl64(h ^ round64(0, read64(p)), 27) * PRIME1 + PRIME4;
  if (p + 4 <= end) {
    h = rotl64(h ^ ((uint64_t)read32(p) * PRIME1), 23) * PRIME2 + PRIME3;
    p += 4;
  }
  for (; p < end; p += 1) h = rotl64(h ^ (*p * PRIME5), 11) * PRIME1;
  h ^= h >> 33;
  h *= PRIME2;
  h ^= h >> 29;
  h *= PRIME3;
  h ^= h >> 32;
  return h;
}

/* h64(bytes: Uint8Array): bigint */
static napi_value h64(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc = 1;
  napi_typedarray_type type;
  size_t length;
  void *data;
  napi_value result;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) {
    napi_throw_type_error(env, "ERR_MISSING_ARGS", "missing arguments");
    return NULL;
  }
  if (napi_get_typedarray_info(env, argv[0], &type, &length, &data, NULL, NULL) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected a Uint8Array");
    return NULL;
  }
  if (napi_create_bigint_uint64(env, xxh64(length > 0 ? (const uint8_t *)data : (const uint8_t *)"", length), &result) != napi_ok) return NULL;
  return result;
}

NAPI_MODULE_INIT() {
  napi_value function;
  if (napi_create_function(env, "h64", NAPI_AUTO_LENGTH, h64, NULL, &function) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "h64", function) != napi_ok) return NULL;
  return exports;
}
