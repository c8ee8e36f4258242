// Small N-API argument and error helpers shared by tap.c, aead.c and udp.c. The rule: a helper that
// returns 0 has thrown a TypeError/RangeError, so no bad value from JS reaches a syscall or OpenSSL. Static inline so each translation unit gets its own copy and no symbol is exported.
#ifndef IDLOC_NAPI_UTIL_H
#define IDLOC_NAPI_UTIL_H

#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define CHECK(call) \
  do {              \
    if ((call) != napi_ok) return NULL; \
  } while (0)

static inline napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_value m, e, code, num;
  if (napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m) != napi_ok) return NULL;
  if (napi_create_string_utf8(env, uv_err_name(-err), NAPI_AUTO_LENGTH, &code) != napi_ok) return NULL;
  if (napi_create_error(env, code, m, &e) != napi_ok) return NULL;
  if (napi_create_int32(env, -err, &num) == napi_ok) napi_set_named_property(env, e, "errno", num);
  napi_throw(env, e);
  return NULL;
}

static inline napi_value type_error(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

static inline napi_value range_error(napi_env env, const char *msg) {
  napi_throw_range_error(env, NULL, msg);
  return NULL;
}

static inline int get_args(napi_env env, napi_callback_info info, size_t n, napi_value *argv, const char *usage) {
  size_t argc = n;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return 0;
  if (argc < n) type_error(env, usage);
  return argc >= n;
}

// An integer in [min, max] (doubles, so counters up to 2^53 fit).
static inline int arg_num(napi_env env, napi_value v, double min, double max, double *out, const char *msg) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= min && d <= max) || d != (double)(int64_t)d) {
    type_error(env, msg);
    return 0;
  }
  *out = d;
  return 1;
}

// Any Uint8Array (Buffers included); data already points at the view's first byte.
static inline int arg_bytes(napi_env env, napi_value v, uint8_t **data, size_t *len, const char *msg) {
  bool is_ta = false;
  napi_typedarray_type type;
  void *p;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta ||
      napi_get_typedarray_info(env, v, &type, len, &p, NULL, NULL) != napi_ok || type != napi_uint8_array) {
    type_error(env, msg);
    return 0;
  }
  *data = p;
  return 1;
}

static inline int arg_typed(napi_env env, napi_value v, napi_typedarray_type want, size_t need, void **data,
                            const char *msg) {
  bool is_ta = false;
  napi_typedarray_type type;
  size_t len;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta ||
      napi_get_typedarray_info(env, v, &type, &len, data, NULL, NULL) != napi_ok || type != want || len < need) {
    type_error(env, msg);
    return 0;
  }
  return 1;
}


#endif
