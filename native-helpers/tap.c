// idloc_tap: the few syscalls Node cannot make itself to drive a Linux TAP device.
// Reading happens here in batches so one JS call handles many frames; everything above the
// syscalls (framing, stats, policy) stays in agent/tap/native-tap.ts.
#include "napi-util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

// One active reader per fd. Readers live in a per-env list so stopReading/close can find them
// and the env cleanup hook can release them when a worker or the process goes away.
typedef struct state state_t;

typedef struct reader {
  struct reader *next;
  state_t *st;
  napi_env env;
  int fd;
  int stopped;
  uv_poll_t poll;
  napi_ref buf_ref, offsets_ref, lengths_ref, cb_ref;
  napi_async_context async_ctx;
  uint8_t *base;
  uint32_t *offsets, *lengths;
  uint32_t max_frames, slot_size;
} reader_t;

struct state {
  reader_t *readers;
  int pending_closes;  // stopped readers whose uv handle libuv has not finished closing
  int cleaning;
  napi_async_cleanup_hook_handle hook;
};

// Argument helpers (napi-util.h and below) return 0 and throw a TypeError when arguments are missing
// or have the wrong type, so no bad value from JS reaches a syscall.
static int arg_int(napi_env env, napi_value v, int32_t min, int32_t *out, const char *msg) {
  napi_valuetype t;
  double d;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number ||
      napi_get_value_double(env, v, &d) != napi_ok || !(d >= min && d <= INT32_MAX) ||
      d != (double)(int32_t)d) {
    type_error(env, msg);
    return 0;
  }
  *out = (int32_t)d;
  return 1;
}

static int arg_ifname(napi_env env, napi_value v, char out[IFNAMSIZ], int allow_empty) {
  napi_valuetype t;
  size_t len = 0;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_string ||
      napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok || len >= IFNAMSIZ ||
      (!allow_empty && len == 0)) {
    type_error(env, "interface name must be a string of at most 15 bytes");
    return 0;
  }
  napi_get_value_string_utf8(env, v, out, IFNAMSIZ, &len);
  return 1;
}

static int arg_u32array(napi_env env, napi_value v, uint32_t need, uint32_t **data, const char *msg) {
  bool is_ta = false;
  napi_typedarray_type type;
  size_t len;
  void *p;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta ||
      napi_get_typedarray_info(env, v, &type, &len, &p, NULL, NULL) != napi_ok ||
      type != napi_uint32_array || len < need) {
    type_error(env, msg);
    return 0;
  }
  *data = p;
  return 1;
}

static state_t *get_state(napi_env env) {
  void *s = NULL;
  napi_get_instance_data(env, &s);
  return s;
}

static reader_t *find_reader(state_t *st, int fd) {
  for (reader_t *r = st->readers; r; r = r->next)
    if (r->fd == fd) return r;
  return NULL;
}

// A worker's env teardown unloads this library; Node waits for the async cleanup hook to be removed
// first, so we remove it only once every close callback (code in this library) has run.
static void finish_cleanup(state_t *st) {
  napi_remove_async_cleanup_hook(st->hook);
  free(st);
}

static void on_poll_closed(uv_handle_t *h) {
  reader_t *r = h->data;
  state_t *st = r->st;
  free(r);
  if (--st->pending_closes == 0 && st->cleaning) finish_cleanup(st);
}

// Unlinks and releases a reader. The struct itself is freed only once libuv has closed the
// handle, because stop may be called from inside the reader's own JS callback.
static void stop_reader(state_t *st, reader_t *r) {
  if (r->stopped) return;
  r->stopped = 1;
  for (reader_t **pp = &st->readers; *pp; pp = &(*pp)->next)
    if (*pp == r) { *pp = r->next; break; }
  uv_poll_stop(&r->poll);
  napi_delete_reference(r->env, r->buf_ref);
  napi_delete_reference(r->env, r->offsets_ref);
  napi_delete_reference(r->env, r->lengths_ref);
  napi_delete_reference(r->env, r->cb_ref);
  napi_async_destroy(r->env, r->async_ctx);
  st->pending_closes++;
  uv_close((uv_handle_t *)&r->poll, on_poll_closed);
}

// Calls the JS callback from a libuv callback: needs its own handle scope, and an exception
// thrown by the callback has no JS caller to land in, so it is raised as uncaught.
static void call_back(reader_t *r, int32_t value) {
  napi_env env = r->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, arg, result;
  if (napi_get_reference_value(env, r->cb_ref, &cb) == napi_ok && cb &&
      napi_get_global(env, &recv) == napi_ok /* make_callback wants an object receiver */ && napi_create_int32(env, value, &arg) == napi_ok) {
    if (napi_make_callback(env, r->async_ctx, recv, cb, 1, &arg, &result) != napi_ok) {
      bool pending = false;
      napi_value exc;
      napi_is_exception_pending(env, &pending);
      if (pending && napi_get_and_clear_last_exception(env, &exc) == napi_ok) napi_fatal_exception(env, exc);
    }
  }
  napi_close_handle_scope(env, scope);
}

static void on_readable(uv_poll_t *h, int status, int events) {
  reader_t *r = h->data;
  if (r->stopped) return;
  int err = status < 0 ? -status : 0;
  uint32_t n = 0;
  while (!err && n < r->max_frames) {
    ssize_t got = read(r->fd, r->base + (size_t)n * r->slot_size, r->slot_size);
    if (got > 0) {
      r->offsets[n] = n * r->slot_size;
      r->lengths[n] = (uint32_t)got;
      n++;
    } else if (got < 0 && errno == EINTR) {
      continue;
    } else if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      break;
    } else {
      err = got == 0 ? EPIPE : errno;  // a TAP fd never reports EOF while the device exists
    }
  }
  // Deliver what was read before reporting an error; the callback may stop us in between.
  if (n > 0) call_back(r, (int32_t)n);
  if (err && !r->stopped) {
    call_back(r, -err);
    stop_reader(r->st, r);
  }
}

static napi_value js_open(napi_env env, napi_callback_info info) {
  napi_value argv[1], out, v;
  char name[IFNAMSIZ] = {0};
  if (!get_args(env, info, 1, argv, "open(name)") || !arg_ifname(env, argv[0], name, 1)) return NULL;
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, "open /dev/net/tun", errno);
  struct ifreq ifr = {0};
  // IFF_NO_PI: frames come bare, without the 4-byte packet-info prefix we would only strip again.
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  memcpy(ifr.ifr_name, name, IFNAMSIZ);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "TUNSETIFF", e);
  }
  ifr.ifr_name[IFNAMSIZ - 1] = 0;
  CHECK(napi_create_object(env, &out));
  CHECK(napi_create_int32(env, fd, &v));
  CHECK(napi_set_named_property(env, out, "fd", v));
  CHECK(napi_create_string_utf8(env, ifr.ifr_name, NAPI_AUTO_LENGTH, &v));
  CHECK(napi_set_named_property(env, out, "name", v));
  return out;
}

// Interface configuration goes through any socket; an AF_INET datagram one always exists.
static int ifreq_ioctl(const char *name, unsigned long req, struct ifreq *ifr) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return -errno;
  memcpy(ifr->ifr_name, name, IFNAMSIZ);
  int rc = ioctl(s, req, ifr) < 0 ? -errno : 0;
  close(s);
  return rc;
}

static napi_value js_set_mtu(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char name[IFNAMSIZ] = {0};
  int32_t mtu;
  if (!get_args(env, info, 2, argv, "setMtu(name, mtu)")) return NULL;
  if (!arg_ifname(env, argv[0], name, 0) || !arg_int(env, argv[1], 68, &mtu, "mtu must be an integer >= 68"))
    return NULL;
  struct ifreq ifr = {0};
  ifr.ifr_mtu = mtu;
  int rc = ifreq_ioctl(name, SIOCSIFMTU, &ifr);
  return rc < 0 ? throw_errno(env, "SIOCSIFMTU", -rc) : NULL;
}

static napi_value js_set_up(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  char name[IFNAMSIZ] = {0};
  if (!get_args(env, info, 1, argv, "setUp(name)") || !arg_ifname(env, argv[0], name, 0)) return NULL;
  struct ifreq ifr = {0};
  int rc = ifreq_ioctl(name, SIOCGIFFLAGS, &ifr);
  if (rc < 0) return throw_errno(env, "SIOCGIFFLAGS", -rc);
  ifr.ifr_flags |= IFF_UP;
  rc = ifreq_ioctl(name, SIOCSIFFLAGS, &ifr);
  return rc < 0 ? throw_errno(env, "SIOCSIFFLAGS", -rc) : NULL;
}

static napi_value js_get_mac(napi_env env, napi_callback_info info) {
  napi_value argv[1], out;
  char name[IFNAMSIZ] = {0};
  void *data;
  if (!get_args(env, info, 1, argv, "getMac(name)") || !arg_ifname(env, argv[0], name, 0)) return NULL;
  struct ifreq ifr = {0};
  int rc = ifreq_ioctl(name, SIOCGIFHWADDR, &ifr);
  if (rc < 0) return throw_errno(env, "SIOCGIFHWADDR", -rc);
  CHECK(napi_create_buffer_copy(env, 6, ifr.ifr_hwaddr.sa_data, &data, &out));
  return out;
}

static napi_value js_start_reading(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  if (!get_args(env, info, 7, argv, "startReading(fd, buf, offsets, lengths, maxFrames, slotSize, callback)")) return NULL;
  int32_t fd, max_frames, slot_size;
  void *base;
  size_t buf_len;
  bool is_buf = false;
  uint32_t *offsets, *lengths;
  napi_valuetype t;
  if (!arg_int(env, argv[0], 0, &fd, "fd must be a non-negative integer") ||
      !arg_int(env, argv[4], 1, &max_frames, "maxFrames must be a positive integer") ||
      !arg_int(env, argv[5], 1, &slot_size, "slotSize must be a positive integer"))
    return NULL;
  if (napi_is_buffer(env, argv[1], &is_buf) != napi_ok || !is_buf ||
      napi_get_buffer_info(env, argv[1], &base, &buf_len) != napi_ok)
    return type_error(env, "buf must be a Buffer");
  uint64_t need = (uint64_t)max_frames * (uint64_t)slot_size;
  if (need > buf_len || need > UINT32_MAX) {  // offsets are 32-bit
    napi_throw_range_error(env, NULL, "buf is smaller than maxFrames * slotSize (or that exceeds 4 GiB)");
    return NULL;
  }
  if (!arg_u32array(env, argv[2], (uint32_t)max_frames, &offsets, "offsets must be a Uint32Array of >= maxFrames") ||
      !arg_u32array(env, argv[3], (uint32_t)max_frames, &lengths, "lengths must be a Uint32Array of >= maxFrames"))
    return NULL;
  if (napi_typeof(env, argv[6], &t) != napi_ok || t != napi_function) return type_error(env, "callback must be a function");

  state_t *st = get_state(env);
  if (!st) return NULL;
  if (find_reader(st, fd)) return throw_errno(env, "startReading", EBUSY);
  uv_loop_t *loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  reader_t *r = calloc(1, sizeof *r);
  if (!r) return throw_errno(env, "startReading", ENOMEM);
  r->st = st;
  r->env = env;
  r->fd = fd;
  r->base = base;
  r->offsets = offsets;
  r->lengths = lengths;
  r->max_frames = (uint32_t)max_frames;
  r->slot_size = (uint32_t)slot_size;
  int rc = uv_poll_init(loop, &r->poll, fd);
  if (rc < 0) {
    free(r);
    return throw_errno(env, "uv_poll_init", -rc);
  }
  r->poll.data = r;
  napi_value resource_name;
  // The references keep the memory we write into alive for as long as the poll can fire.
  if (napi_create_reference(env, argv[1], 1, &r->buf_ref) != napi_ok ||
      napi_create_reference(env, argv[2], 1, &r->offsets_ref) != napi_ok ||
      napi_create_reference(env, argv[3], 1, &r->lengths_ref) != napi_ok ||
      napi_create_reference(env, argv[6], 1, &r->cb_ref) != napi_ok ||
      napi_create_string_utf8(env, "idloc_tap:read", NAPI_AUTO_LENGTH, &resource_name) != napi_ok ||
      napi_async_init(env, NULL, resource_name, &r->async_ctx) != napi_ok) {
    r->next = st->readers;  // let stop_reader unwind whatever was created
    st->readers = r;
    stop_reader(st, r);
    return NULL;
  }
  r->next = st->readers;
  st->readers = r;
  rc = uv_poll_start(&r->poll, UV_READABLE, on_readable);
  if (rc < 0) {
    stop_reader(st, r);
    return throw_errno(env, "uv_poll_start", -rc);
  }
  return NULL;
}

static napi_value js_stop_reading(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!get_args(env, info, 1, argv, "stopReading(fd)")) return NULL;
  if (!arg_int(env, argv[0], 0, &fd, "fd must be a non-negative integer")) return NULL;
  state_t *st = get_state(env);
  reader_t *r = st ? find_reader(st, fd) : NULL;
  if (r) stop_reader(st, r);
  return NULL;
}

static napi_value js_write_frames(napi_env env, napi_callback_info info) {
  napi_value argv[2], out;
  int32_t fd;
  bool is_array = false;
  uint32_t count;
  if (!get_args(env, info, 2, argv, "writeFrames(fd, frames)")) return NULL;
  if (!arg_int(env, argv[0], 0, &fd, "fd must be a non-negative integer")) return NULL;
  if (napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array) return type_error(env, "frames must be an array");
  CHECK(napi_get_array_length(env, argv[1], &count));
  uint32_t written = 0;
  for (uint32_t i = 0; i < count; i++) {
    napi_value el;
    bool is_ta = false;
    napi_typedarray_type type;
    size_t len;
    void *data;
    CHECK(napi_get_element(env, argv[1], i, &el));
    if (napi_is_typedarray(env, el, &is_ta) != napi_ok || !is_ta ||
        napi_get_typedarray_info(env, el, &type, &len, &data, NULL, NULL) != napi_ok || type != napi_uint8_array)
      return type_error(env, "frames must be Uint8Arrays");
    ssize_t rc;
    do rc = write(fd, data, len);
    while (rc < 0 && errno == EINTR);
    if (rc >= 0) {
      written++;
      continue;
    }
    // A full queue or a downed device loses the frame, as a NIC would; the caller counts it.
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS || errno == EIO || errno == ENETDOWN) continue;
    return throw_errno(env, "write", errno);
  }
  CHECK(napi_create_uint32(env, written, &out));
  return out;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!get_args(env, info, 1, argv, "close(fd)")) return NULL;
  if (!arg_int(env, argv[0], 0, &fd, "fd must be a non-negative integer")) return NULL;
  // The poll must leave epoll before the fd number can be reused by someone else.
  state_t *st = get_state(env);
  reader_t *r = st ? find_reader(st, fd) : NULL;
  if (r) stop_reader(st, r);
  if (close(fd) < 0 && errno != EINTR) return throw_errno(env, "close", errno);
  return NULL;
}

static void cleanup(napi_async_cleanup_hook_handle hook, void *arg) {
  state_t *st = arg;
  st->cleaning = 1;
  while (st->readers) stop_reader(st, st->readers);
  if (st->pending_closes == 0) finish_cleanup(st);
}

NAPI_MODULE_INIT() {
  state_t *st = calloc(1, sizeof *st);
  if (!st || napi_set_instance_data(env, st, NULL, NULL) != napi_ok ||
      napi_add_async_cleanup_hook(env, cleanup, st, &st->hook) != napi_ok) {
    free(st);
    napi_throw_error(env, NULL, "idloc_tap: init failed");
    return NULL;
  }
#define FN(name, fn) {name, NULL, fn, NULL, NULL, NULL, napi_enumerable, NULL}
  napi_property_descriptor props[] = {
      FN("open", js_open),           FN("setMtu", js_set_mtu),
      FN("setUp", js_set_up),        FN("getMac", js_get_mac),
      FN("startReading", js_start_reading), FN("stopReading", js_stop_reading),
      FN("writeFrames", js_write_frames),   FN("close", js_close),
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}
