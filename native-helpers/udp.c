// idloc_net UDP: the agent's one datagram socket, owned here so datagrams move in batches —
// recvmmsg fills up to `slots` datagrams per wake-up and JS gets one callback per batch; sendmmsg sends
// a whole batch JS queued in one syscall. node:dgram costs a syscall, a libuv request, a Buffer and a
// JS callback per datagram, which was ~15% of the agent's CPU at a few hundred Mbit/s.
//
// Memory is JS-owned (as in tap.c) and referenced from here for as long as the socket lives:
//   recv arena   slot i at i * slot_size; meta per delivered datagram (RECV_STRIDE words), dense:
//                [len, family (4|6), port, slot, addr0, addr1, addr2, addr3]
//   send arena   packed by JS; meta per queued datagram (SEND_STRIDE):
//                [offset, len, family, port, addr0..addr3, ifindex]
//                ifindex != 0: the datagram leaves through that interface whatever the routing table
//                prefers (IP_PKTINFO), with that interface's address as its source. A multihomed host
//                keeps a standby path on its second uplink this way, through the same socket and port,
//                so the NAT mapping it keeps open is the one its traffic takes when the first uplink goes.
//   stats        Float64Array, cumulative, exact to 2^53:
//                [received, sent, sendErrors, dropped (EAGAIN on send), truncated, recvErrors]
// IPv4 addresses are one host-order u32 in addr0; IPv6 addresses are four host-order words, most
// significant first. A socket bound to an IPv6 address ("::" by default) is dual-stack (IPV6_V6ONLY
// off): IPv4 peers arrive as ::ffff:a.b.c.d and are reported here as family 4, and family-4 sends go
// out as v4-mapped, so JS sees one socket and one address format per family. A socket bound to an IPv4
// address stays IPv4 only; a family-6 send on it is counted as a send error.
#define _GNU_SOURCE  // recvmmsg, sendmmsg, SO_RCVBUFFORCE
#include "napi-util.h"

// aead.c registers its functions on the same exports object.
napi_status aead_register(napi_env env, napi_value exports);

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RECV_STRIDE 8
#define SEND_STRIDE 9
#define MAX_SLOTS 1024
#define BUFFER_BYTES (4 * 1024 * 1024)

enum { ST_RECEIVED, ST_SENT, ST_SEND_ERRORS, ST_DROPPED, ST_TRUNCATED, ST_RECV_ERRORS, ST_COUNT };

typedef struct net_state net_state_t;

typedef struct usock {
  struct usock *next;
  net_state_t *st;
  napi_env env;
  uint32_t id;
  int fd;
  int family;  // AF_INET or AF_INET6 (dual-stack)
  int closed;
  uv_poll_t poll;
  napi_ref rbuf_ref, rmeta_ref, sbuf_ref, smeta_ref, stats_ref, cb_ref;
  napi_async_context async_ctx;
  uint32_t *rmeta, *smeta, rslots, sslots;
  uint8_t *sbase;
  size_t slen;
  double *stats;
  // Preallocated once: recvmmsg/sendmmsg headers, their iovecs and address storage.
  struct mmsghdr *rmsgs, *smsgs;
  struct iovec *riov, *siov;
  struct sockaddr_storage *raddr, *saddr;
  uint8_t *sctrl;  // one IP_PKTINFO control message per send slot
} usock_t;

// Room for either family's packet-info control message.
#define CTRL_BYTES CMSG_SPACE(sizeof(struct in6_pktinfo))

struct net_state {
  usock_t *socks;
  uint32_t next_id;
  int pending_closes;  // closed sockets whose uv handle libuv has not finished closing
  int cleaning;
  napi_async_cleanup_hook_handle hook;
};

static net_state_t *get_state(napi_env env) {
  void *s = NULL;
  napi_get_instance_data(env, &s);
  return s;
}

static usock_t *find_sock(napi_env env, napi_value v) {
  double id;
  if (!arg_num(env, v, 1, UINT32_MAX, &id, "socket id must be a positive integer")) return NULL;
  net_state_t *st = get_state(env);
  for (usock_t *s = st ? st->socks : NULL; s; s = s->next)
    if (s->id == (uint32_t)id) return s;
  return NULL;
}

static void free_sock(usock_t *s) {
  free(s->rmsgs);
  free(s->smsgs);
  free(s->riov);
  free(s->siov);
  free(s->raddr);
  free(s->saddr);
  free(s->sctrl);
  free(s);
}

// Node waits for the async cleanup hook's removal before unloading this library, so it is removed
// only after every close callback (code in this library) has run. Same scheme as tap.c.
static void finish_cleanup(net_state_t *st) {
  napi_remove_async_cleanup_hook(st->hook);
  free(st);
}

static void on_poll_closed(uv_handle_t *h) {
  usock_t *s = h->data;
  net_state_t *st = s->st;
  free_sock(s);
  if (--st->pending_closes == 0 && st->cleaning) finish_cleanup(st);
}

// Unlinks, closes the fd and releases JS references. The struct lives until libuv has closed the
// handle, because close may be called from inside this socket's own receive callback.
static void close_sock(net_state_t *st, usock_t *s) {
  if (s->closed) return;
  s->closed = 1;
  for (usock_t **pp = &st->socks; *pp; pp = &(*pp)->next)
    if (*pp == s) { *pp = s->next; break; }
  napi_ref *refs[] = {&s->rbuf_ref, &s->rmeta_ref, &s->sbuf_ref, &s->smeta_ref, &s->stats_ref, &s->cb_ref};
  for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++)
    if (*refs[i]) napi_delete_reference(s->env, *refs[i]);
  if (s->async_ctx) napi_async_destroy(s->env, s->async_ctx);
  st->pending_closes++;
  // uv_close takes the fd out of epoll synchronously; only then may its number be freed for reuse.
  uv_close((uv_handle_t *)&s->poll, on_poll_closed);
  close(s->fd);
}

// Calls JS from a libuv callback: own handle scope; an exception has no JS caller to land in, so it
// is raised as uncaught (as a throwing 'message' listener on a dgram socket would be).
static void call_back(usock_t *s, int32_t value) {
  napi_env env = s->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, arg, result;
  if (napi_get_reference_value(env, s->cb_ref, &cb) == napi_ok && cb && napi_get_global(env, &recv) == napi_ok &&
      napi_create_int32(env, value, &arg) == napi_ok) {
    if (napi_make_callback(env, s->async_ctx, recv, cb, 1, &arg, &result) != napi_ok) {
      bool pending = false;
      napi_value exc;
      napi_is_exception_pending(env, &pending);
      if (pending && napi_get_and_clear_last_exception(env, &exc) == napi_ok) napi_fatal_exception(env, exc);
    }
  }
  napi_close_handle_scope(env, scope);
}

static void put_addr(uint32_t *m, const struct sockaddr_storage *ss) {
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    m[1] = 4;
    m[2] = ntohs(a->sin_port);
    m[4] = ntohl(a->sin_addr.s_addr);
    m[5] = m[6] = m[7] = 0;
  } else if (IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)ss)->sin6_addr)) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    m[1] = 4;
    m[2] = ntohs(a->sin6_port);
    m[4] = ntohl(a->sin6_addr.s6_addr32[3]);
    m[5] = m[6] = m[7] = 0;
  } else {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    m[1] = 6;
    m[2] = ntohs(a->sin6_port);
    for (int w = 0; w < 4; w++) m[4 + w] = ntohl(a->sin6_addr.s6_addr32[w]);
  }
}

// 0: the socket cannot reach that family (an IPv6 destination on an IPv4 socket).
static socklen_t get_addr(const uint32_t *m, struct sockaddr_storage *ss, int sock_family) {
  memset(ss, 0, sizeof(struct sockaddr_in6));
  if (m[0] == 4 && sock_family == AF_INET) {
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)m[1]);
    a->sin_addr.s_addr = htonl(m[2]);
    return sizeof *a;
  }
  if (sock_family != AF_INET6) return 0;
  struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
  a->sin6_family = AF_INET6;
  a->sin6_port = htons((uint16_t)m[1]);
  if (m[0] == 4) {
    a->sin6_addr.s6_addr32[2] = htonl(0xffff);
    a->sin6_addr.s6_addr32[3] = htonl(m[2]);
  } else {
    for (int w = 0; w < 4; w++) a->sin6_addr.s6_addr32[w] = htonl(m[2 + w]);
  }
  return sizeof *a;
}

// The interface a datagram must leave through (0: wherever the routing table sends it). The kernel then
// routes by the routes through that interface only and takes its address as the source.
static void set_out_interface(struct msghdr *mh, uint8_t *ctrl, uint32_t family, uint32_t ifindex) {
  if (ifindex == 0) {
    mh->msg_control = NULL;
    mh->msg_controllen = 0;
    return;
  }
  memset(ctrl, 0, CTRL_BYTES);
  mh->msg_control = ctrl;
  struct cmsghdr *c = (struct cmsghdr *)ctrl;
  if (family == 4) {
    mh->msg_controllen = CMSG_SPACE(sizeof(struct in_pktinfo));
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
    ((struct in_pktinfo *)CMSG_DATA(c))->ipi_ifindex = (int)ifindex;
  } else {
    mh->msg_controllen = CMSG_SPACE(sizeof(struct in6_pktinfo));
    c->cmsg_level = IPPROTO_IPV6;
    c->cmsg_type = IPV6_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(struct in6_pktinfo));
    ((struct in6_pktinfo *)CMSG_DATA(c))->ipi6_ifindex = ifindex;
  }
}

// One recvmmsg per wake-up: the poll is level-triggered, so anything left fires again next loop
// iteration, after the TAP side had its turn.
static void on_readable(uv_poll_t *h, int status, int events) {
  usock_t *s = h->data;
  if (s->closed) return;
  if (status < 0) {
    // libuv stops the poll on POLLERR. Unconnected UDP without IP_RECVERR should never get there, but
    // if it does, clear the socket error and keep listening: the agent has only this one socket.
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &el);
    s->stats[ST_RECV_ERRORS]++;
    uv_poll_start(&s->poll, UV_READABLE, on_readable);
    return;
  }
  for (uint32_t i = 0; i < s->rslots; i++) {  // the kernel overwrote these on the last call
    s->rmsgs[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_storage);
    s->rmsgs[i].msg_hdr.msg_flags = 0;
  }
  int got;
  do got = recvmmsg(s->fd, s->rmsgs, s->rslots, MSG_DONTWAIT, NULL);
  while (got < 0 && errno == EINTR);
  if (got <= 0) {
    // Unconnected UDP sockets see no ICMP errors (no IP_RECVERR), so anything but EAGAIN is rare
    // (ENOMEM); count it and let the next wake-up try again.
    if (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK) s->stats[ST_RECV_ERRORS]++;
    return;
  }
  uint32_t n = 0;
  for (int i = 0; i < got; i++) {
    struct msghdr *mh = &s->rmsgs[i].msg_hdr;
    // A datagram larger than a slot arrives cut short; half a packet is worse than none.
    if (mh->msg_flags & MSG_TRUNC) { s->stats[ST_TRUNCATED]++; continue; }
    // Meta stays dense even when a truncated datagram is skipped; the data stays in its own slot
    // (m[3] says which), so nothing is copied.
    uint32_t *m = s->rmeta + (size_t)n * RECV_STRIDE;
    m[0] = s->rmsgs[i].msg_len;
    m[3] = (uint32_t)i;
    put_addr(m, &s->raddr[i]);
    n++;
  }
  s->stats[ST_RECEIVED] += n;
  if (n > 0) call_back(s, (int32_t)n);
}

// udpOpen(address, port, recvBuf, recvMeta, recvSlots, slotSize, sendBuf, sendMeta, sendSlots, stats, cb)
//   -> { id, address, port }
static napi_value js_open(napi_env env, napi_callback_info info) {
  napi_value argv[11], out, v;
  if (!get_args(env, info, 11, argv,
                "udpOpen(address, port, recvBuf, recvMeta, recvSlots, slotSize, sendBuf, sendMeta, sendSlots, stats, cb)"))
    return NULL;
  char addr[64] = {0};
  size_t alen = 0;
  double port, rslots, slot_size, sslots;
  uint8_t *rbase, *sbase;
  size_t rlen, slen;
  void *rmeta, *smeta, *stats;
  napi_valuetype t;
  struct sockaddr_storage ss = {0};
  struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
  int family;
  if (napi_get_value_string_utf8(env, argv[0], addr, sizeof addr, &alen) != napi_ok)
    return type_error(env, "address must be a string");
  if (inet_pton(AF_INET, addr, &sin->sin_addr) == 1) family = AF_INET;
  else if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1) family = AF_INET6;
  else return type_error(env, "address must be an IPv4 or IPv6 address");
  ss.ss_family = (sa_family_t)family;
  if (!arg_num(env, argv[1], 0, 65535, &port, "port must be an integer in 0..65535") ||
      !arg_num(env, argv[4], 1, MAX_SLOTS, &rslots, "recvSlots must be an integer in 1..1024") ||
      !arg_num(env, argv[5], 1, 65536, &slot_size, "slotSize must be an integer in 1..65536") ||
      !arg_num(env, argv[8], 1, MAX_SLOTS, &sslots, "sendSlots must be an integer in 1..1024") ||
      !arg_bytes(env, argv[2], &rbase, &rlen, "recvBuf must be a Uint8Array") ||
      !arg_typed(env, argv[3], napi_uint32_array, (size_t)rslots * RECV_STRIDE, &rmeta, "recvMeta is too small") ||
      !arg_bytes(env, argv[6], &sbase, &slen, "sendBuf must be a Uint8Array") ||
      !arg_typed(env, argv[7], napi_uint32_array, (size_t)sslots * SEND_STRIDE, &smeta, "sendMeta is too small") ||
      !arg_typed(env, argv[9], napi_float64_array, ST_COUNT, &stats, "stats must be a Float64Array of >= 6"))
    return NULL;
  if ((size_t)rslots * (size_t)slot_size > rlen) return range_error(env, "recvBuf is smaller than recvSlots * slotSize");
  if (napi_typeof(env, argv[10], &t) != napi_ok || t != napi_function) return type_error(env, "cb must be a function");
  net_state_t *st = get_state(env);
  if (!st) return NULL;

  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  int off = 0;
  if (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "setsockopt(IPV6_V6ONLY)", e);
  }
  // 4 MiB so bursts queue instead of dropping while the event loop is busy. As root, the FORCE
  // variants pass net.core.[rw]mem_max; otherwise the plain ones take what the limit allows.
  // Failure only costs headroom, so it is ignored.
  int bytes = BUFFER_BYTES;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) < 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof bytes) < 0)
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
  socklen_t sl = family == AF_INET ? sizeof *sin : sizeof *sin6;
  if (family == AF_INET) sin->sin_port = htons((uint16_t)port);
  else sin6->sin6_port = htons((uint16_t)port);
  if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "bind", e);
  }

  usock_t *s = calloc(1, sizeof *s);
  uint32_t nr = (uint32_t)rslots, ns = (uint32_t)sslots;
  if (!s || !(s->rmsgs = calloc(nr, sizeof *s->rmsgs)) || !(s->riov = calloc(nr, sizeof *s->riov)) ||
      !(s->raddr = calloc(nr, sizeof *s->raddr)) || !(s->smsgs = calloc(ns, sizeof *s->smsgs)) ||
      !(s->siov = calloc(ns, sizeof *s->siov)) || !(s->saddr = calloc(ns, sizeof *s->saddr)) ||
      !(s->sctrl = calloc(ns, CTRL_BYTES))) {
    if (s) free_sock(s);
    close(fd);
    return throw_errno(env, "udpOpen", ENOMEM);
  }
  s->st = st;
  s->env = env;
  s->fd = fd;
  s->family = family;
  s->id = ++st->next_id;
  s->rmeta = rmeta;
  s->smeta = smeta;
  s->stats = stats;
  s->rslots = nr;
  s->sslots = ns;
  s->sbase = sbase;
  s->slen = slen;
  // Receive headers never change except the lengths the kernel writes back: build them once.
  for (uint32_t i = 0; i < nr; i++) {
    s->riov[i] = (struct iovec){.iov_base = rbase + (size_t)i * (size_t)slot_size, .iov_len = (size_t)slot_size};
    s->rmsgs[i].msg_hdr = (struct msghdr){.msg_name = &s->raddr[i], .msg_iov = &s->riov[i], .msg_iovlen = 1};
  }
  for (uint32_t i = 0; i < ns; i++)
    s->smsgs[i].msg_hdr = (struct msghdr){.msg_name = &s->saddr[i], .msg_iov = &s->siov[i], .msg_iovlen = 1};

  uv_loop_t *loop;
  int rc = napi_get_uv_event_loop(env, &loop) == napi_ok ? uv_poll_init(loop, &s->poll, fd) : UV_EINVAL;
  if (rc < 0) {
    free_sock(s);
    close(fd);
    return throw_errno(env, "uv_poll_init", -rc);
  }
  s->poll.data = s;
  s->next = st->socks;
  st->socks = s;
  napi_value resource_name;
  // The references keep the memory we read and write alive for as long as the socket is open.
  if (napi_create_reference(env, argv[2], 1, &s->rbuf_ref) != napi_ok ||
      napi_create_reference(env, argv[3], 1, &s->rmeta_ref) != napi_ok ||
      napi_create_reference(env, argv[6], 1, &s->sbuf_ref) != napi_ok ||
      napi_create_reference(env, argv[7], 1, &s->smeta_ref) != napi_ok ||
      napi_create_reference(env, argv[9], 1, &s->stats_ref) != napi_ok ||
      napi_create_reference(env, argv[10], 1, &s->cb_ref) != napi_ok ||
      napi_create_string_utf8(env, "idloc_net:udp", NAPI_AUTO_LENGTH, &resource_name) != napi_ok ||
      napi_async_init(env, NULL, resource_name, &s->async_ctx) != napi_ok) {
    close_sock(st, s);
    return NULL;
  }
  rc = uv_poll_start(&s->poll, UV_READABLE, on_readable);
  if (rc < 0) {
    close_sock(st, s);
    return throw_errno(env, "uv_poll_start", -rc);
  }
  if (family == AF_INET) inet_ntop(AF_INET, &sin->sin_addr, addr, sizeof addr);
  else inet_ntop(AF_INET6, &sin6->sin6_addr, addr, sizeof addr);
  CHECK(napi_create_object(env, &out));
  CHECK(napi_create_uint32(env, s->id, &v));
  CHECK(napi_set_named_property(env, out, "id", v));
  CHECK(napi_create_string_utf8(env, addr, NAPI_AUTO_LENGTH, &v));
  CHECK(napi_set_named_property(env, out, "address", v));
  CHECK(napi_create_uint32(env, ntohs(family == AF_INET ? sin->sin_port : sin6->sin6_port), &v));
  CHECK(napi_set_named_property(env, out, "port", v));
  return out;
}

// udpSend(id, count) -> datagrams the kernel took. Sends send-meta entries 0..count-1 with sendmmsg.
// Per-datagram errors (no route, EPERM, too big) are counted and skipped; EAGAIN (send buffer full)
// drops the rest of the batch, as a full NIC queue would. Nothing here throws on network conditions.
static napi_value js_send(napi_env env, napi_callback_info info) {
  napi_value argv[2], res;
  double count;
  if (!get_args(env, info, 2, argv, "udpSend(id, count)")) return NULL;
  usock_t *s = find_sock(env, argv[0]);
  if (!s) return NULL;  // closed (or a thrown TypeError)
  if (!arg_num(env, argv[1], 0, s->sslots, &count, "count must be an integer within sendSlots")) return NULL;
  uint32_t n = 0, sent = 0;
  for (uint32_t j = 0; j < (uint32_t)count; j++) {
    const uint32_t *m = s->smeta + (size_t)j * SEND_STRIDE;
    if ((size_t)m[0] + m[1] > s->slen) return range_error(env, "send meta points outside sendBuf");
    // Kept dense: a datagram this socket's family cannot carry is counted and left out of the batch.
    socklen_t sl = get_addr(m + 2, &s->saddr[n], s->family);
    if (sl == 0) { s->stats[ST_SEND_ERRORS]++; continue; }
    s->siov[n] = (struct iovec){.iov_base = s->sbase + m[0], .iov_len = m[1]};
    s->smsgs[n].msg_hdr.msg_namelen = sl;
    set_out_interface(&s->smsgs[n].msg_hdr, s->sctrl + (size_t)n * CTRL_BYTES, m[2], m[8]);
    n++;
  }
  uint32_t i = 0;
  while (i < n) {
    int rc = sendmmsg(s->fd, s->smsgs + i, n - i, 0);
    if (rc > 0) {
      i += (uint32_t)rc;
      sent += (uint32_t)rc;
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
      s->stats[ST_DROPPED] += n - i;
      break;
    } else {
      s->stats[ST_SEND_ERRORS]++;  // sendmmsg reports the first failing datagram's error: skip it
      i++;
    }
  }
  s->stats[ST_SENT] += sent;
  CHECK(napi_create_uint32(env, sent, &res));
  return res;
}

// udpClose(id): idempotent; safe from inside the socket's own callback.
static napi_value js_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv, "udpClose(id)")) return NULL;
  usock_t *s = find_sock(env, argv[0]);
  if (s) close_sock(s->st, s);
  return NULL;
}

static void cleanup(napi_async_cleanup_hook_handle hook, void *arg) {
  net_state_t *st = arg;
  st->cleaning = 1;
  while (st->socks) close_sock(st, st->socks);
  if (st->pending_closes == 0) finish_cleanup(st);
}

NAPI_MODULE_INIT() {
  net_state_t *st = calloc(1, sizeof *st);
  if (!st || napi_set_instance_data(env, st, NULL, NULL) != napi_ok ||
      napi_add_async_cleanup_hook(env, cleanup, st, &st->hook) != napi_ok) {
    free(st);
    napi_throw_error(env, NULL, "idloc_net: init failed");
    return NULL;
  }
#define FN(name, fn) {name, NULL, fn, NULL, NULL, NULL, napi_enumerable, NULL}
  napi_property_descriptor props[] = {
      FN("udpOpen", js_open),
      FN("udpSend", js_send),
      FN("udpClose", js_close),
  };
#undef FN
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok ||
      aead_register(env, exports) != napi_ok)
    return NULL;
  return exports;
}
