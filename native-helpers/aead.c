// ChaCha20-Poly1305 (RFC 8439) for the tunnel data path, on the OpenSSL that Node links statically and
// exports (its EVP_* symbols resolve against the node binary; the headers come from Node's include dir).
//
// Why native: node:crypto builds a cipher object, a KeyObject lookup, an output Buffer and a tag Buffer
// per packet, which on the agent's data path cost more than the cipher itself. Here a context is keyed
// once per session key and reused; each call only sets the nonce, runs the cipher straight into the
// caller's buffer and returns a length: no JS allocation per packet.
//
// Nonce: either a 12-byte Uint8Array or a counter c, meaning 4 zero bytes || c as u64 little-endian
// (the Noise/WireGuard nonce), so the JS side need not write a nonce buffer per packet.
// Associated data: an optional last argument (the tunnel uses none; RFC 8439's test vector does).
// Aliasing: out may be exactly the input region (in place) or disjoint from it; OpenSSL does not
// support partial overlap, and neither do we.
#include "napi-util.h"

#include <errno.h>
#include <stdlib.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define KEY_LEN 32
#define NONCE_LEN 12
#define TAG_LEN 16
// OpenSSL's update takes an int length; datagrams are far smaller anyway.
#define MAX_MSG (1u << 30)

// Marks externals we created, so a foreign external passed by mistake is refused, not dereferenced.
static const napi_type_tag AEAD_TAG = {0x69646c6f63616561ULL, 0x6368616368613230ULL};

typedef struct {
  EVP_CIPHER_CTX *ctx;
} aead_t;

static void aead_finalize(napi_env env, void *data, void *hint) {
  aead_t *a = data;
  EVP_CIPHER_CTX_free(a->ctx);  // also wipes the key schedule
  free(a);
}

static aead_t *arg_aead(napi_env env, napi_value v) {
  bool ok = false;
  void *p = NULL;
  if (napi_check_object_type_tag(env, v, &AEAD_TAG, &ok) != napi_ok || !ok ||
      napi_get_value_external(env, v, &p) != napi_ok || !p) {
    type_error(env, "handle must come from aeadCreate()");
    return NULL;
  }
  return p;
}

static int arg_nonce(napi_env env, napi_value v, uint8_t nonce[NONCE_LEN]) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok) return 0;
  if (t == napi_number) {
    double d;
    if (!arg_num(env, v, 0, 9007199254740991.0, &d, "counter must be an integer in 0..2^53-1")) return 0;
    uint64_t c = (uint64_t)d;
    memset(nonce, 0, 4);
    for (int i = 0; i < 8; i++) nonce[4 + i] = (uint8_t)(c >> (8 * i));
    return 1;
  }
  uint8_t *p;
  size_t len;
  if (!arg_bytes(env, v, &p, &len, "nonce must be a counter or a 12-byte Uint8Array")) return 0;
  if (len != NONCE_LEN) {
    type_error(env, "nonce must be a counter or a 12-byte Uint8Array");
    return 0;
  }
  memcpy(nonce, p, NONCE_LEN);
  return 1;
}

// One seal/open call's arguments, parsed and checked.
typedef struct {
  aead_t *a;
  uint8_t nonce[NONCE_LEN];
  uint8_t *in, *aad;
  size_t in_len, aad_len;
  uint8_t spare[1];  // stands in for a zero-length out, whose data pointer N-API may report as NULL
} call_t;

// Parses (handle, nonce, input, out, outOffset[, aad]) and checks out has room for the input length
// plus `extra` bytes (+16 to seal, -16 to open). Returns the output pointer, or NULL having thrown.
static uint8_t *parse_call(napi_env env, napi_callback_info info, const char *usage, long extra, call_t *c) {
  napi_value argv[6];
  size_t argc = 6, out_len;
  uint8_t *out;
  double off;
  napi_valuetype t = napi_undefined;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 5) return type_error(env, usage), NULL;
  c->aad = NULL;
  c->aad_len = 0;
  if (!(c->a = arg_aead(env, argv[0])) || !arg_nonce(env, argv[1], c->nonce) ||
      !arg_bytes(env, argv[2], &c->in, &c->in_len, "input must be a Uint8Array") ||
      !arg_bytes(env, argv[3], &out, &out_len, "out must be a Uint8Array") ||
      !arg_num(env, argv[4], 0, (double)out_len, &off, "outOffset must be an integer within out"))
    return NULL;
  if (argc > 5 && napi_typeof(env, argv[5], &t) == napi_ok && t != napi_undefined &&
      !arg_bytes(env, argv[5], &c->aad, &c->aad_len, "aad must be a Uint8Array"))
    return NULL;
  if (c->in_len > MAX_MSG || c->aad_len > MAX_MSG) return range_error(env, "input too large"), NULL;
  long need = (long)c->in_len + extra;
  if (need < 0) need = 0;  // open of an input shorter than a tag: the caller reports -1
  if ((double)need > (double)out_len - off) return range_error(env, "out is too small at outOffset"), NULL;
  return out ? out + (size_t)off : c->spare;
}

// aeadCreate(key: Uint8Array(32)) -> handle
static napi_value js_create(napi_env env, napi_callback_info info) {
  napi_value argv[1], out;
  uint8_t *key;
  size_t len;
  if (!get_args(env, info, 1, argv, "aeadCreate(key)") ||
      !arg_bytes(env, argv[0], &key, &len, "key must be a 32-byte Uint8Array"))
    return NULL;
  if (len != KEY_LEN) return type_error(env, "key must be a 32-byte Uint8Array");
  aead_t *a = calloc(1, sizeof *a);
  if (!a || !(a->ctx = EVP_CIPHER_CTX_new())) {
    free(a);
    return throw_errno(env, "aeadCreate", ENOMEM);
  }
  // Keyed once here; per packet only the nonce changes (EVP_CipherInit_ex with NULL cipher and key).
  if (EVP_CipherInit_ex(a->ctx, EVP_chacha20_poly1305(), NULL, key, NULL, 1) != 1) {
    aead_finalize(env, a, NULL);
    napi_throw_error(env, NULL, "aeadCreate: OpenSSL refused chacha20-poly1305");
    return NULL;
  }
  if (napi_create_external(env, a, aead_finalize, NULL, &out) != napi_ok) {
    aead_finalize(env, a, NULL);
    return NULL;
  }
  CHECK(napi_type_tag_object(env, out, &AEAD_TAG));
  return out;
}

// Feeds the associated data, if any: an update with a NULL output authenticates without encrypting.
static int feed_aad(aead_t *a, const call_t *c) {
  int n;
  return c->aad_len == 0 || EVP_CipherUpdate(a->ctx, NULL, &n, c->aad, (int)c->aad_len) == 1;
}

// aeadSeal(handle, nonce, plaintext, out, outOffset[, aad]) -> bytes written (plaintext length + 16)
static napi_value js_seal(napi_env env, napi_callback_info info) {
  call_t c;
  int n = 0, fin = 0;
  napi_value res;
  uint8_t *out = parse_call(env, info, "aeadSeal(handle, nonce, plaintext, out, outOffset[, aad])", TAG_LEN, &c);
  if (!out) return NULL;
  aead_t *a = c.a;
  if (EVP_CipherInit_ex(a->ctx, NULL, NULL, NULL, c.nonce, 1) != 1 || !feed_aad(a, &c) ||
      (c.in_len > 0 && EVP_CipherUpdate(a->ctx, out, &n, c.in, (int)c.in_len) != 1) ||
      EVP_CipherFinal_ex(a->ctx, out + n, &fin) != 1 ||
      EVP_CIPHER_CTX_ctrl(a->ctx, EVP_CTRL_AEAD_GET_TAG, TAG_LEN, out + n + fin) != 1) {
    napi_throw_error(env, NULL, "aeadSeal: OpenSSL failure");
    return NULL;
  }
  CHECK(napi_create_int32(env, n + fin + TAG_LEN, &res));
  return res;
}

// aeadOpen(handle, nonce, ciphertextWithTag, out, outOffset[, aad]) -> plaintext length, or -1 if the
// input is shorter than a tag or does not authenticate (then out's bytes there are wiped).
static napi_value js_open(napi_env env, napi_callback_info info) {
  call_t c;
  uint8_t tag[TAG_LEN];
  int n = 0, fin = 0, result = -1;
  napi_value res;
  uint8_t *out = parse_call(env, info, "aeadOpen(handle, nonce, ciphertext, out, outOffset[, aad])", -TAG_LEN, &c);
  if (!out) return NULL;
  aead_t *a = c.a;
  if (c.in_len >= TAG_LEN) {
    size_t ct_len = c.in_len - TAG_LEN;
    // Copy the tag first: in place nothing overwrites it, but an out region running into the tag would.
    memcpy(tag, c.in + ct_len, TAG_LEN);
    if (EVP_CipherInit_ex(a->ctx, NULL, NULL, NULL, c.nonce, 0) != 1 ||
        EVP_CIPHER_CTX_ctrl(a->ctx, EVP_CTRL_AEAD_SET_TAG, TAG_LEN, tag) != 1 || !feed_aad(a, &c) ||
        (ct_len > 0 && EVP_CipherUpdate(a->ctx, out, &n, c.in, (int)ct_len) != 1)) {
      napi_throw_error(env, NULL, "aeadOpen: OpenSSL failure");
      return NULL;
    }
    if (EVP_CipherFinal_ex(a->ctx, out + n, &fin) == 1) {
      result = n + fin;
    } else {
      OPENSSL_cleanse(out, ct_len);  // unauthenticated plaintext must not be usable by mistake
    }
  }
  CHECK(napi_create_int32(env, result, &res));
  return res;
}

napi_status aead_register(napi_env env, napi_value exports) {
#define FN(name, fn) {name, NULL, fn, NULL, NULL, NULL, napi_enumerable, NULL}
  napi_property_descriptor props[] = {
      FN("aeadCreate", js_create),
      FN("aeadSeal", js_seal),
      FN("aeadOpen", js_open),
  };
#undef FN
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
