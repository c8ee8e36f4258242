// The uid of the process at the other end of a connected Unix stream socket (SO_PEERCRED, unix(7)),
// for the control socket: who is asking is what the kernel says, not what the request claims.
// peerUid(fd) -> uid (a number); throws on a bad fd or a socket that is not AF_UNIX.
#define _GNU_SOURCE
#include "napi-util.h"

#include <errno.h>
#include <sys/socket.h>

static napi_value js_peer_uid(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) return type_error(env, "peerUid: fd must be a number");
  if (fd < 0) return range_error(env, "peerUid: fd must not be negative");
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return throw_errno(env, "getsockopt(SO_PEERCRED)", errno);
  if (len != sizeof cred) return throw_errno(env, "getsockopt(SO_PEERCRED)", EINVAL);
  napi_value out;
  CHECK(napi_create_uint32(env, (uint32_t)cred.uid, &out));
  return out;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"peerUid", NULL, js_peer_uid, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, 1, props) != napi_ok) return NULL;
  return exports;
}
