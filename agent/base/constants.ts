// Every timer and limit of the agent, in one place, each with the reason for its value.
// Names follow the specs they come from (WireGuard paper section 6, RFC 8445, RFC 4861) where one exists.
// Grouped by the floor of the house that uses them (scripts/check-layers.mjs, docs/architecture.md).

// ---- idloc/: identity and overlay addressing (agent/idloc/addresses.ts, identity.ts) ---------------

/** IPv6 overlay prefix fd1d:10c0::/32 ("idloc" in hex-ish); a /32 leaves 96 bits of NodeID in the address,
 *  enough that forging an address means a 2^96 second preimage, and keeps us off the rest of fd00::/8
 *  so a host's own ULA networks keep working. */
export const OVERLAY_IPV6_PREFIX = Uint8Array.of(0xfd, 0x1d, 0x10, 0xc0);
export const OVERLAY_IPV6_PREFIX_LEN = 32;
/** RFC 6598 shared address space, as Tailscale uses: not routed on the internet, rarely used on LANs. */
export const OVERLAY_IPV4_NET = (100 << 24) | (64 << 16); // 100.64.0.0
export const OVERLAY_IPV4_PREFIX_LEN = 10;
/** NodeID is 160 bits as in Kademlia/P2PP, so the overlay's XOR metric has room for 10^6+ nodes. */
export const NODE_ID_BYTES = 20;
/** Name of the identity file inside the state dir. */
export const IDENTITY_FILE_NAME = 'identity.json';

// ---- tap/: the TAP device (agent/tap) ------------------------------------------------------------

/** Locally administered MAC that the agent answers ARP/ND with: every overlay peer "lives" behind it. */
export const VIRTUAL_MAC = Uint8Array.of(0x02, 0x1d, 0x10, 0xc0, 0x00, 0x01);
/** The path MTU we assume between agents: the common Ethernet/internet 1500. */
export const UNDERLAY_MTU = 1500;
/** Worst-case per-packet overhead: outer IPv6 (40) + UDP (8) + data header (16) + AEAD tag (16). */
export const TUNNEL_OVERHEAD = 40 + 8 + 16 + 16;
/** TAP MTU so a tunnelled packet always fits UNDERLAY_MTU (the same 1420 WireGuard chose, for the same reason). */
export const DEFAULT_TAP_MTU = UNDERLAY_MTU - TUNNEL_OVERHEAD;
/** Frames read per native callback: enough to amortise the JS crossing; the read buffer is this x 64 KiB max. */
export const TAP_READ_BATCH = 64;
/** Largest frame the TAP read buffer accepts per slot (with offloads off, MTU + Ethernet header suffices). */
export const TAP_MAX_FRAME = 65550;
/** Bytes per TAP read slot beyond MTU + 14-byte Ethernet header: room for two VLAN tags and a margin, so a
 *  full-size tagged frame is never truncated by read(); slots are then rounded up to 64 bytes (cache lines). */
export const TAP_SLOT_SLACK = 32;

// ---- conn/: datagram sockets, address watch, probe sockets (agent/conn) --------------------------

/** Datagrams per receive callback and per sendmmsg: amortises the crossing into JS like TAP_READ_BATCH. */
export const UDP_BATCH = 64;
/** Kernel receive and send buffers asked for on the agent's socket (native-helpers/udp.c asks the same):
 *  a burst of a few thousand tunnel datagrams waits there while the event loop is busy, instead of being
 *  dropped. A refusal (rmem_max) only costs headroom. */
export const UDP_KERNEL_BUFFER_BYTES = 4 * 1024 * 1024;
/** Receive slot of the native socket: any UDP datagram fits (65507 max), so none is truncated whatever the
*  peers' MTU. The arena is allocated uninitialised, so only pages the kernel actually writes become resident. */
export const UDP_RECV_SLOT_BYTES = 65536;
/** Send arena of the native socket, packed: room for a full batch of tunnel-sized datagrams; a batch flushes
*  early if not. */
export const UDP_SEND_ARENA_BYTES = 256 * 1024;
/** Parsed peer addresses the native socket caches (cleared when full): a flood of spoofed sources costs a
*  re-parse, never memory. */
export const UDP_ENDPOINT_CACHE_MAX = 4096;
/** IPv6 source addresses whose /64 key the rate limiters keep (conn/rate-limit.ts sourceKey; cleared when
 *  full): the same bound, for the same reason. */
export const SOURCE_KEY_CACHE_MAX = 4096;
/** After the host's addresses change, wait this long for the rest of the change (a delete and an add
 *  come a few ms apart) before telling peers where we are now. */
export const ADDRESS_CHANGE_SETTLE_MS = 30;
/** Probe sockets open at once, over all peers (four hole punches in flight): a bound on file descriptors. */
export const PROBE_SOCKETS_MAX = 1_024;
/** A probe socket nothing arrived on is closed after this long: the spray is over within HARD_NAT_SPRAY_DELAY_MS
 *  + 0.3 s, and a hit's triggered checks within a few retransmissions (ICE_CHECK_RTO_MS doubling). Short,
 *  because hole punches to several peers in a row must not run into PROBE_SOCKETS_MAX. */
export const PROBE_SOCKETS_LINGER_MS = 5_000;
/** How often probe sockets are looked at (closed when past their time, reopened fast when in use). */
export const PROBE_SOCKETS_SWEEP_MS = 1_000;
/** The probe socket a tunnel uses is closed after nothing arrived on it for this long (the tunnel's
 *  keepalives come every KEEPALIVE_INTERVAL_MS while it is in use, so four were missed: it moved on). */
export const PROBE_SOCKET_IDLE_MS = 60_000;

// ---- tunnel/: Noise IK sessions and tunnels (WireGuard paper section 6.1 names; agent/tunnel) ----

/** Start a new handshake after this long on one session, so keys never get old (forward secrecy). */
export const REKEY_AFTER_TIME_MS = 120_000;
/** Stop using a session after this long even if rekeying failed: old keys must die. */
export const REJECT_AFTER_TIME_MS = 180_000;
/** Rekey after this many messages; far below 2^64 nonce exhaustion. */
export const REKEY_AFTER_MESSAGES = 2n ** 60n;
/** Hard stop on a session's counter. */
export const REJECT_AFTER_MESSAGES = 2n ** 64n - 2n ** 13n - 1n;
/** Retry an unanswered handshake initiation after this long (plus jitter). */
export const REKEY_TIMEOUT_MS = 5_000;
/** First retry of an unanswered initiation; doubles per retry up to REKEY_TIMEOUT_MS. Much shorter than
 *  WireGuard's fixed 5 s because the first initiation is often lost to a peer that is still starting. */
export const HANDSHAKE_RETRY_INITIAL_MS = 200;
/** Jitter added to retries so two peers initiating at once do not stay in lockstep. */
export const REKEY_TIMEOUT_JITTER_MS = 333;
/** Give up handshaking with a peer after this long with no answer; queued packets are dropped. */
export const REKEY_ATTEMPT_TIME_MS = 90_000;
/** Send a keepalive when nothing else was sent for this long: well under the ~30 s UDP NAT mapping timeout. */
export const KEEPALIVE_INTERVAL_MS = 15_000;
/** A peer we keep sending to but have heard nothing from (not even its 15 s keepalive) for this long is
 *  presumed gone from its endpoint (restarted, moved while idle): start a new handshake. WireGuard's
 *  KEEPALIVE + REKEY_TIMEOUT rule. */
export const PEER_SILENT_MS = KEEPALIVE_INTERVAL_MS + REKEY_TIMEOUT_MS;
/** Data sent for this long with nothing at all heard back (not a packet, not a keepalive) means the path
 *  broke silently, most often a NAT that forgot or changed our mapping: the peer is told to the path keeper
 *  as if our own address had changed (an ICE restart), instead of after PEER_SILENT_MS. A TCP flow hears
 *  ACKs within an RTT, so 1 s is many RTTs; a one-way flow is answered by keepalives (FLOW_ACK_MS); a silence is
 *  reported once until something arrives, and the restart it costs is rate-limited
 *  (ICE_RESTART_MIN_INTERVAL_MS). */
export const PATH_SILENT_MS = 1_000;
/** A peer that receives data and sends nothing back (a one-way flow) answers with a keepalive at least
 *  this often, so its sender hears from it well within PATH_SILENT_MS (tick granularity included: at
 *  most ~0.45 s apart) and a silence means a broken path, not a quiet receiver. 32 bytes per third of a
 *  second, only while data flows in and nothing flows out. */
export const FLOW_ACK_MS = Math.floor(PATH_SILENT_MS / 3);
/** A flow of data towards us (not keepalives) that stops for this long gets one keepalive back, once per
 *  silence: if it stopped because our NAT forgot our mapping (a rebinding), that packet re-creates it
 *  before the sender's TCP backs off far (its retransmissions come ~0.2, 0.6, 1.4 s after the loss), so
 *  the session stalls well under a second; with it goes a CATCH_ME_UP (tunnel/catch-up.ts), so what the
 *  sender sent into the silence comes again at once. A flow that just ended costs two small packets. Checked on
 *  the TUNNEL_TICK_MS tick, so it fires 0.3-0.4 s into the silence. */
export const RECEIVE_SILENT_MS = 300;
/** Unanswered initiations after which the owner is asked where the peer is now (the overlay's locator):
 *  200 + 400 + 800 ms of silence, so a peer that moved is found again in under 2 s, yet one lost packet
 *  or a peer still starting never costs a lookup. */
export const HANDSHAKE_RELOCATE_AFTER_TRIES = 3;
/** Minimum time between two accepted handshake initiations from one peer (replayed/flooded inits). */
export const HANDSHAKE_INIT_RATE_MS = 50;
/** Packets buffered per peer while its handshake is in flight; beyond that the oldest are dropped, counted. */
export const MAX_QUEUED_PACKETS_PER_PEER = 1024;
/** Anti-replay window size in bits (RFC 6479 style bitmap), as WireGuard: tolerates reordering on multi-path links. */
export const REPLAY_WINDOW_BITS = 2048;
/** Period of the tunnel layer's housekeeping tick (handshake retries, give-ups, keepalives, session expiry,
 *  silences): a tenth of a second, because a silence noticed one tick late stalls a session by as much
 *  (RECEIVE_SILENT_MS, PATH_SILENT_MS), while one pass over the peers costs far less than a timer per peer
 *  per event. */
export const TUNNEL_TICK_MS = 100;
/** A packet through a relay does not move a tunnel off a direct endpoint set or heard from this recently
 *  (nat/tunnels.ts roam()): when a path moves from a relay to a direct pair, the peer keeps sending on the
 *  relay for a round trip or so, and those packets must not pull us back. Short, because a peer that really
 *  left the direct path (it moved) reaches us by the relay only after this. */
export const ROAM_DIRECT_HOLD_MS = 2_000;
/** A bridge (tunnels.ts: every datagram also copied to a relay while the direct path is in doubt) ends when
 *  the peer is heard at the tunnel endpoint, or after this: by then the path keeper's restart has found a
 *  direct pair or settled for a relay (ICE_DIRECT_TIMEOUT_MS after its Attach), and copying every datagram
 *  costs the relay's bandwidth. */
export const BRIDGE_MAX_MS = 10_000;
/** Data datagrams each peer keeps references to, to send again once on the path that replaces a silent
 *  one (tunnel/catch-up.ts): a second or so of an interactive flow, or the window a TCP sender had in
 *  flight when a slow path broke; the peer's replay window (2048) takes them all. A power of two. */
export const CATCH_UP_PACKETS_MAX = 32;
/** The peer silent this long when the endpoint moves means the path had broken, and what we sent since
 *  is probably lost: it goes again (catch-up.ts). Longer than a continental round trip plus a delayed
 *  ACK, so a path that merely changed (a relay upgraded to a direct pair) sends no duplicates. */
export const CATCH_UP_SILENCE_MS = 150;

// ---- tunnel/: handshakes under load: the queue, cookies, per-source limits (agent/tunnel/handshake-gate.ts, cookie.ts) ----

/** Handshake messages waiting for their Noise work (one X25519 each for a forgery, five for a real
 *  initiation): at most about a quarter second of it, after which new ones are dropped, counted. */
export const HANDSHAKE_QUEUE_MAX = 256;
/** Queue length at which the responder is "under load" (WireGuard's 1/8 of its queue): from then on an
 *  initiation must carry a valid mac2 (prove it receives at its source address) or gets a cookie reply. */
export const HANDSHAKE_QUEUE_UNDER_LOAD = HANDSHAKE_QUEUE_MAX / 8;
/** Handshake messages taken into the queue within one second that also mean "under load": a steady trickle
 *  the queue keeps up with still costs X25519 each, and the one JS thread is shared with every tunnel.
 *  A busy agent rekeys ~1,000 peers every 2 minutes (~8/s); a restart of all of them fits in a few seconds,
 *  and being under load only costs a legitimate initiator one round trip for its cookie. */
export const HANDSHAKE_UNDER_LOAD_PER_SECOND = 128;
/** Once under load, stay so this long after the last sign of it (WireGuard's UnderLoadAfterTime). */
export const HANDSHAKE_UNDER_LOAD_HOLD_MS = 1_000;
/** Handshake messages given their Noise work per event-loop turn: the loop then polls the socket again, so
 *  transport packets never wait behind more than a few milliseconds of handshakes. */
export const HANDSHAKE_DRAIN_PER_TURN = 8;
/** Handshake messages given their Noise work per second at most (token bucket, this burst): caps the
 *  X25519 time a flood of valid-mac2 initiations from many real addresses can take from the data path
 *  (~5 X25519 of ~0.12 ms each, so under a quarter of the thread). */
export const HANDSHAKE_MAX_PER_SECOND = 400;
/** Per-source limit under load, after a valid mac2 and before any X25519 (WireGuard's ratelimiter):
 *  initiations per second and burst from one IPv4 address or one IPv6 /64 (a host's whole subnet). */
export const HANDSHAKE_SOURCE_PER_SECOND = 20;
export const HANDSHAKE_SOURCE_BURST = 5;
/** Sources whose limit is tracked (least recently seen forgotten first, which only refills their burst):
 *  only sources that proved their address (mac2) get an entry, so spoofing cannot churn it. */
export const HANDSHAKE_SOURCES_MAX = 4_096;
/** The responder's cookie secret changes this often, and an initiator uses a cookie at most this long
 *  (WireGuard's COOKIE_REFRESH_TIME): a leaked cookie is worth two minutes from one address. */
export const COOKIE_REFRESH_MS = 120_000;
/** Cookie replies sent per second at most (token bucket, a tenth of a second of burst): a reply costs a
 *  BLAKE2s, an AEAD and a send, so past ~10,000 forgeries a second the replies, not the checks, would take
 *  the thread. A real initiator past that rate still gets one within a few of its retries. */
export const COOKIE_REPLIES_PER_SECOND = 10_000;
/** Responses that fail to decrypt which one pending initiation still looks at: the real one comes once;
 *  an on-path forger replaying its index gets this many X25519 pairs out of us, not one per datagram. */
export const HANDSHAKE_RESP_TRIES_MAX = 4;

// ---- overlay/: Kademlia routing, lookups and RPC (agent/overlay) ---------------------------------

/** k, the bucket size and replication factor: the Kademlia paper's 20, chosen so that k nodes all leaving
 *  within one refresh interval is vanishingly unlikely; 20 contacts x ~log2(N) buckets stays small. */
export const KADEMLIA_K = 20;
/** α, the lookup parallelism: the paper's 3. More gives little latency back for a lot of extra traffic;
 *  fewer lets one dead or slow contact stall a round. */
export const KADEMLIA_ALPHA = 3;
/** Refresh (look up a random id in) a bucket that saw no lookup for this long: the paper's one hour. */
export const BUCKET_REFRESH_INTERVAL_MS = 3_600_000;
/** Contacts kept per bucket to replace dead ones at once (libtorrent/BEP 5 style replacement cache): under
 *  churn a failed contact is then swapped for a known-live one instead of leaving a hole until refresh. */
export const BUCKET_REPLACEMENT_CACHE_SIZE = 8;
/** Drop a contact after this many consecutive failed RPCs (each already 3 tries, see RPC_MAX_TRIES):
 *  one failure under 5% loss is ~0.1% likely for a live node, two ~1e-6; with a replacement waiting, one. */
export const ROUTING_MAX_FAILURES = 2;
/** A full bucket's least-recently-seen contact heard from within this long is taken as alive without a ping
 *  (the newcomer goes to the replacement cache): saves a ping per new contact in busy top buckets, and a node
 *  seen a minute ago is very likely still there (Kademlia's own reasoning for preferring old contacts). */
export const ROUTING_PING_IF_IDLE_MS = 60_000;
/** Storers re-send the records they hold to the current k closest this often (the paper's tReplicate), so
 *  records follow the k-closest set as nodes join and leave. */
export const DHT_REPLICATE_INTERVAL_MS = 3_600_000;
/** Owners re-store their own records this often: a third of the shortest record lifetime
 *  (LOCATOR_LIFETIME_S, 15 min), so two lost republishes in a row still never let a live host's record
 *  expire. Per-kind lifetimes live with the records (LOCATOR_LIFETIME_S and below). */
export const DHT_REPUBLISH_INTERVAL_MS = 300_000;
/** First retransmission of an unanswered overlay request (hop by hop, as P2PP over UDP): 250 ms is more than
 *  twice a 100 ms wide-area RTT, so a live peer rarely gets a needless duplicate, and a lost datagram costs
 *  a quarter second, not the seconds of a TCP-like RTO. Doubles per try. */
export const RPC_RETRANSMIT_INITIAL_MS = 250;
/** Tries per request (P2PP's 3): 250 + 500 + 1000 ms = 1.75 s before the peer counts as failed; under 5% loss
 *  three lost round trips in a row are ~0.1% likely. */
export const RPC_MAX_TRIES = 3;
/** Responses kept for answering retransmitted requests (so a repeated STORE is not applied twice): longer than
 *  the 1.75 s a requester keeps retrying plus two one-way delays. */
export const RPC_RESPONSE_CACHE_MS = 5_000;
/** Bound on that cache, so a request flood cannot grow it without limit. */
export const RPC_RESPONSE_CACHE_MAX = 4_096;
/** A lookup treats a contact as failed after this long without an answer: a safety net just above the RPC's
 *  own 1.75 s give-up, for query functions that never settle. */
export const LOOKUP_QUERY_TIMEOUT_MS = 2_000;
/** A lookup query unanswered after the RPC's first retransmission interval is a straggler: its datagram
 *  was lost or its node is gone (a live node on a < 250 ms RTT path has answered by then). Its α slot is
 *  freed for the next closest contact and it no longer holds up the end of the lookup; its retries go on
 *  and a late answer is still taken. Without this, a crashed node still listed by others held every
 *  lookup that met it among the k closest for the full 1.75 s retransmission schedule. */
export const LOOKUP_STRAGGLER_MS = RPC_RETRANSMIT_INITIAL_MS;
/** A contact whose RPC timed out after all its tries is "recently unresponsive" for this long: lookups do
 *  not query it and our FIND_NODE/FETCH answers leave it out (as libtorrent and go-libp2p-kad-dht do with
 *  failed peers), so a crashed node stops costing every lookup 1.75 s. A minute covers the time until the
 *  other nodes' own failures drop it from their tables and answers; any message from it clears it sooner,
 *  so a node that was only briefly unreachable is back as soon as it speaks. */
export const OVERLAY_UNRESPONSIVE_MS = 60_000;
/** Bound on that set (oldest forgotten first): a 30% churn wave in a 10,000-node overlay touches far fewer
 *  than this from one node, and a flood of contacts pointing at nowhere cannot grow it without limit. */
export const OVERLAY_UNRESPONSIVE_MAX = 1_024;
/** Overlay lookups whose latency `status` summarises (p50/p90 over the last this many). */
export const RESOLVE_LATENCY_SAMPLES = 1024;
/** Signature checks of records the resolver remembers as done (oldest forgotten first): a record seen again
*  from another storer costs no second Ed25519 verification. */
export const RESOLVE_VERIFIED_CACHE_MAX = 4096;

// ---- overlay/: wire format limits (agent/overlay/codec.ts) ---------------------------------------

/** Largest overlay datagram, sent or accepted: with IPv6 (40) + UDP (8) it is 1448 bytes, under the 1500
 *  UNDERLAY_MTU with room for PPPoE or one more encapsulation, so overlay messages never fragment (a lost
 *  fragment loses the whole message, and many NATs drop fragments outright). */
export const OVERLAY_MAX_DATAGRAM = 1400;
/** Initial TTL of a routed message, i.e. how many times it may be forwarded. idloc's lookups are iterative
 *  (direct, one hop); only ATTACH is relayed, through one or two rendezvous peers, so 8 is ample, and small
 *  enough that a routing loop dies quickly. */
export const OVERLAY_DEFAULT_TTL = 8;
/** Via entries a message may carry (20 bytes each): as many hops as the default TTL allows; a forwarder
 *  that would exceed it drops the message instead, so a loop cannot grow a message without bound. */
export const OVERLAY_MAX_VIA = OVERLAY_DEFAULT_TTL;
/** Destination entries (21 bytes each): an answer's route is the request's Via list reversed plus the
 *  originator, so one more than OVERLAY_MAX_VIA. */
export const OVERLAY_MAX_DESTINATIONS = OVERLAY_MAX_VIA + 1;
/** Contacts in one FIND_NODE/FETCH answer: k, what a Kademlia lookup asks for. At 53 bytes + endpoints each,
 *  k contacts with one IPv4 endpoint fit OVERLAY_MAX_DATAGRAM, k with IPv6 do not: answerers trim the
 *  farthest (codec.ts trimToFit), which an iterative lookup tolerates. */
export const OVERLAY_MAX_CONTACTS = KADEMLIA_K;
/** Endpoints per contact: host IPv4, host IPv6, server-reflexive and relayed covers what ICE gathers for a
 *  typical host; more would crowd other contacts out of the datagram. */
export const OVERLAY_MAX_ENDPOINTS = 4;
/** Signed records per STORE or FETCH answer: a resource holds few records (one per owner and kind), and
 *  each is tens to hundreds of bytes, so more than 16 would not fit a datagram anyway. */
export const OVERLAY_MAX_RECORDS = 16;
/** TLVs a receiver scans in one message, known or skipped: the largest valid message has about 20 (sender,
 *  resource, 16 records); the bound caps the work a crafted datagram of 4-byte empty TLVs can cause. */
export const OVERLAY_MAX_TLVS = 32;
/** Bytes of an ERROR's reason text: it is for logs, not for programs (they read the code). */
export const OVERLAY_MAX_REASON_BYTES = 128;

// ---- overlay/: authenticated messages, cookies, contact admission (agent/overlay/signature.ts, cookies.ts, node-guard.ts) ----

/** Ed25519 public keys kept parsed (agent/base/ed25519.ts), most recently used first: the routing table's
 *  160 x k contacts and the peers fit; a flood of fresh keys only evicts, never grows it. */
export const ED25519_KEY_CACHE_MAX = 4_096;
/** Bytes of an overlay cookie: a MAC of the requester's endpoint truncated to 128 bits, as DTLS and
 *  WireGuard's cookies are: unguessable off-path, small enough to echo in every request. */
export const OVERLAY_COOKIE_BYTES = 16;
/** The cookie secret is replaced this often and the previous one still accepted, so a cookie is good for
 *  2-4 minutes (WireGuard's 120 s): long enough to cover a lookup or a keepalive interval, short enough that
 *  a captured cookie soon stops working. */
export const OVERLAY_COOKIE_ROTATE_MS = 120_000;
/** Cookies we hold for other nodes' endpoints (oldest forgotten first): one per node we talk to; a
 *  forgotten one costs one extra round trip. */
export const OVERLAY_COOKIE_JAR_MAX = 4_096;
/** Times one request is re-sent with a fresh cookie when the answer asks for one: once is the normal case
 *  (first contact, or a rotated secret); a node that keeps asking is broken or hostile. */
export const OVERLAY_COOKIE_RETRIES = 2;
/** Signature checks per source IP per second, with a burst: a node's lookups and keepalives need a few per
 *  second; a forger spends at most this much of our CPU per address (110 us each). */
export const OVERLAY_VERIFY_RATE_PER_SOURCE = 200;
export const OVERLAY_VERIFY_BURST_PER_SOURCE = 400;
/** Signature checks per second over all sources: about 20% of one core at 110 us each, so a spoofed-source
 *  flood cannot take the thread that carries the tunnels. */
export const OVERLAY_VERIFY_RATE_TOTAL = 2_000;
/** Bytes of COOKIE_REQUIRED answers per second (and burst) one address may get: each is no larger than its
 *  request, so this only bounds reflection (a spoofed flood aimed at a victim through us): a real node needs
 *  one answer per responder it first meets, about 200 bytes. */
export const OVERLAY_UNVERIFIED_RATE_BYTES = 4 * 1024;
export const OVERLAY_UNVERIFIED_BURST_BYTES = 16 * 1024;
/** Routing-table contacts that may share one IP address in a bucket, and one public IPv4 /24 (IPv6 /64):
 *  hosts behind one NAT share an address, so not one; servers of one site share a subnet, so 8 of a
 *  bucket's 20; an attacker with one address or one subnet still cannot fill a bucket and eclipse us
 *  (S/Kademlia; BitTorrent's DHT limits per address the same way). Also what one lookup answer may add. */
export const ROUTING_MAX_PER_IP = 2;
export const ROUTING_MAX_PER_SUBNET = 8;
/** Return paths of forwarded requests kept (txid -> the hop it came from), and for how long: an ATTACH
 *  answer comes back within seconds; entries are bounded so a flood of routed requests cannot grow it. */
export const FORWARD_RETURN_PATHS_MAX = 4_096;
export const FORWARD_RETURN_PATH_MS = 10_000;

// ---- overlay/: forwarding and rendezvous (agent/overlay/node-route.ts, node-attach.ts, node-rendezvous.ts) ----

/** A node behind a NAT PINGs each of its rendezvous nodes this often: under the ~30 s after which many UDP
 *  NAT mappings of idle flows expire (the tunnels' KEEPALIVE_INTERVAL_MS, for the same reason), so the
 *  rendezvous can always reach it at the address it last saw it at. */
export const RENDEZVOUS_KEEPALIVE_MS = 15_000;
/** A relay remembers the endpoint a node last sent from this long: nodes behind a NAT (rendezvous clients)
 *  are often not in its routing table, and only that exact endpoint gets through their NAT. Two minutes is
 *  RFC 4787's minimum mapping lifetime (REQ-5) and many keepalive periods; an entry past its mapping costs
 *  one lost datagram, not a wrong delivery (the NAT drops it). */
export const FORWARD_RECENT_SENDER_MS = 120_000;
/** Bound on that map (oldest forgotten first): a rendezvous serves a few clients per node that chose it,
 *  and a flood of invented NodeIDs cannot grow it without limit (~100 bytes per entry). */
export const FORWARD_RECENT_SENDERS_MAX = 4_096;
/** Datagrams per second one source IP address may have relayed (a token bucket), and its burst. An Attach
 *  and its answer are two relayed datagrams (six with every retransmission), so 50/s lets a host, or a
 *  carrier-grade NAT address shared by many, set up several connections a second, while a source can make
 *  us send at most ~70 kB/s (50 x 1400 bytes) to others. Relaying is also never an amplifier: one datagram
 *  out per datagram in, at most 20 bytes larger (our NodeID on the Via list). */
export const FORWARD_RATE_PER_SOURCE = 50;
export const FORWARD_BURST_PER_SOURCE = 100;
/** Sources whose buckets are kept (least recently active forgotten first, which only resets their limit). */
export const FORWARD_RATE_SOURCES_MAX = 4_096;

// ---- overlay/: records, their store and the NodeID puzzle (agent/overlay/records.ts, store.ts, puzzle.ts) ----

/** Leading zero bits the NodeID puzzle asks for by default: 2^16 ≈ 65k SHA-256 on average, ~0.2 s in JS
 *  once per key at start, one hash for every verifier. It will not stop a rich attacker; it prices a
 *  flood of 10^5 Sybil keys at ~6.5·10^9 hashes (hours of one core in JS) while a real host never
 *  notices. Public overlays raise it; every node of one overlay must use the same value. */
export const PUZZLE_DEFAULT_DIFFICULTY = 16;
/** solvePuzzle refuses more: 2^40 hashes would take days in JS, so a larger number is a config mistake. */
export const PUZZLE_MAX_DIFFICULTY = 40;
/** Largest kind-specific value in a record: with the 84-byte header and 64-byte signature a record stays
 *  under 1200 bytes, so one fits in an overlay message inside a 1280-byte IPv6 minimum-MTU datagram
 *  (no IP fragmentation, which NATs and firewalls often drop). */
export const RECORD_MAX_VALUE_BYTES = 1024;
/** Longest lifetime a record may ask for: Kademlia's 24 h expiry, so an abandoned key's names and
 *  claims free themselves within a day. */
export const RECORD_MAX_LIFETIME_S = 86_400;
/** A record created further than this in the future (by our clock) is refused: otherwise a skewed or
 *  malicious clock could outlive RECORD_MAX_LIFETIME_S. Five minutes is Kerberos' default tolerance,
 *  generous for NTP-less hosts yet short against the 24 h lifetime cap. */
export const RECORD_MAX_CLOCK_SKEW_MS = 5 * 60_000;
/** Default lifetimes per kind (owners republish at half of it). Locators change with the network, so
 *  a dead host's stale locator must vanish soon; service offers likewise. IPv4 claims live an hour so a
 *  brief outage does not lose the address; names live the full day, as P2PNS names are meant to persist. */
export const LOCATOR_LIFETIME_S = 900;
export const SERVICE_LIFETIME_S = 900;
export const IPV4_CLAIM_LIFETIME_S = 3_600;
export const NAME_LIFETIME_S = 86_400;
/** ICE candidates in one locator: host candidates for a few interfaces x 2 families, plus srflx and
 *  relay, stays well below 16; 16 x 24 bytes also fits RECORD_MAX_VALUE_BYTES with room to spare. */
export const LOCATOR_MAX_CANDIDATES = 16;
/** Rendezvous peers a NATed host names: it keeps keepalives to "a few"; 8 is plenty and bounds the record. */
export const LOCATOR_MAX_RENDEZVOUS = 8;
/** Endpoints one provider lists in a service record (one per family and transport suffices in practice). */
export const SERVICE_MAX_ENDPOINTS = 8;
/** Longest name: one DNS label, so `<name>.idloc` is a valid DNS name for the agent's DNS responder. */
export const NAME_MAX_LEN = 63;
/** Longest service name ("stun", "turn", "relay", ...). */
export const SERVICE_NAME_MAX_LEN = 32;
/** Highest IPv4 re-derivation `attempt` a claim may use. Each attempt collides with probability
 *  nodes/2^22 (2.4% at 10^5 nodes), so 32 tries fail together with odds ~10^-52; the bound stops one key
 *  from squatting more than 32 addresses of the 4M (the puzzle prices the keys). */
export const IPV4_MAX_CLAIM_ATTEMPT = 31;
/** Records one node stores. A node keeps copies for the resources nearest its NodeID: with k = 20 copies
 *  and a few records per host that is ~100 per node on average, so 20,000 leaves 200x headroom for
 *  skewed id spaces while capping memory at ~25 MB even if every record is full size. When full, a new
 *  entry makes room rather than being refused (store.ts): first records of resources this node is no
 *  longer responsible for, then an entry of the owner holding the most (the most recent such owner), so a
 *  flood of keys churns its own entries while the few records each long-lived owner holds stay. */
export const STORE_MAX_RECORDS = 20_000;
/** Entries one owner key may hold on one node. A host writes 1 locator, 1 IPv4 claim, a few names and
 *  service offers, and their resource ids scatter over the id space, so any one node sees few of them;
 *  32 is generous for that yet stops one key from filling a node's store. A locator never meets it: the
 *  owner's newest other entry makes room. */
export const STORE_MAX_RECORDS_PER_OWNER = 32;
/** Entries one resource may hold (one per owner): only SERVICE resources have more than one live owner,
 *  and a FETCH answer carries at most OVERLAY_MAX_RECORDS of them; twice that keeps a choice of providers
 *  while a key flood on "turn" cannot grow one resource without bound. When full, a new owner's entry
 *  replaces the newest entry of the owner holding the most overall, so providers that were there first
 *  stay. */
export const STORE_MAX_RECORDS_PER_RESOURCE = 2 * OVERLAY_MAX_RECORDS;
/** Resources a full store inspects per new entry (a clock hand over the resources) looking for one it is
 *  no longer responsible for, before it evicts by owner: bounded work per put (each look is one
 *  routing-table closest()), and the hand moves on, so every resource is looked at in turn. */
export const STORE_EVICT_SCAN = 8;
/** Responsibility slack: a node stores a resource only if fewer than this many times k of the contacts it
 *  knows are closer to the resource than itself (responsibility.ts). The k closest are who holds a record;
 *  views differ by a few contacts between nodes (churn, a contact not yet learned), so twice k never
 *  refuses a real replica while a node far from the resource, which knows a full bucket (k) or more of
 *  contacts nearer to it, plus its nearer neighbours, refuses. */
export const RESPONSIBILITY_SLACK = 2;

// ---- overlay/: membership and record hand-off (agent/overlay/node-membership.ts, node-publish.ts) ----

/** First wait before retrying a join no bootstrap answered (each attempt already spends the RPC's 1.75 s of
 *  retransmissions), and before re-joining after the routing table emptied: a bootstrap booting at the same
 *  moment (a site's hosts powering up together) is in within a second or two, one that is down is not
 *  hammered. Doubles per failed attempt. */
export const OVERLAY_JOIN_RETRY_INITIAL_MS = 1_000;
/** Cap of that doubling: a node left alone still joins within ~30 s of a bootstrap coming back, for a few
 *  pings per bootstrap per half minute. */
export const OVERLAY_JOIN_RETRY_MAX_MS = 30_000;
/** Endpoints of contacts that left the routing table, tried with the bootstraps on a re-join: the table
 *  empties mostly when our own network went away, and when it returns the bootstrap may be gone while the
 *  nodes we knew are not. A full bucket's worth (k) covers a small overlay whole. */
export const OVERLAY_FORMER_CONTACTS = KADEMLIA_K;
/** Wait after a contact enters the routing table before handing it the records it should now hold
 *  (Kademlia's store on join): contacts arrive in bursts (each FIND_NODE answer brings up to k), and one
 *  pass over the store then serves the whole burst; 100 ms still gets a newcomer its records well within
 *  a second of it showing up. */
export const DHT_HANDOFF_DELAY_MS = 100;
/** Claim attempts ipv4Of looks up at once: nearly every key holds attempt 0 (a collision is 2.4% likely
 *  even at 10^5 nodes), so the first batch almost always has it, and 4 fetches in parallel cost one
 *  lookup's latency; a key with no claim costs 8 rounds instead of 32. */
export const IPV4_OF_BATCH = 4;
/** Disjoint lookup paths a quorum read (IPv4 claims, names, service providers) takes to the k closest
 *  storers of a resource (S/Kademlia's d): no node is asked by two paths, so a node that lies about
 *  contacts can mislead only the path it is on, and the storers reached are counted once. Three paths
 *  run in parallel (latency of one lookup, three times the queries); S/Kademlia found most of the gain in
 *  the first few paths. */
export const RESOLVE_DISJOINT_PATHS = 3;

// ---- nat/: STUN on the agent's socket and netcheck (agent/nat/stun-*.ts, netcheck.ts) ------------

/** First retransmission of an unanswered STUN Binding request (our own transactions: netcheck, ICE checks).
 *  RFC 8489 recommends 500 ms for unknown paths; the servers and peers we ask are agents a LAN or one
 *  continent away (RTT well under 100 ms), and a lost request should cost a tenth of a second, not half of
 *  one (Tailscale's netcheck re-sends at 100 ms too). A longer path just gets a harmless duplicate: the
 *  retransmission carries the same transaction id and either answer completes it. Doubles per transmission. */
export const STUN_RTO_INITIAL_MS = 100;
/** Transmissions per request: at 0, 100, 300 and 700 ms, given up at 1.5 s (the last wait is the doubled
 *  RTO, like RFC 8489's Rm). RFC 8489's 7 transmissions take 39.5 s, far longer than netcheck or an ICE
 *  check should wait; under 5% loss each way four lost round trips in a row are ~1e-4 likely (0.0975^4),
 *  under 10% ~1e-3. */
export const STUN_MAX_TRANSMITS = 4;
/** Our own STUN transactions in flight at once: RFC 8445's default check-list limit is 100 pairs, netcheck
 *  uses a handful; beyond this a request fails at once, so a runaway caller cannot grow the table. */
export const STUN_MAX_PENDING = 256;
/** STUN servers one netcheck asks: two with different IP addresses tell the mapping apart; a few more only
 *  help when some are down. Bounds the datagrams one netcheck can send. */
export const NETCHECK_MAX_SERVERS = 8;
/** netcheck again this often (and on every address change): a NAT's mapping behaviour or public address
 *  can change (DHCP renew, another uplink) without any local address changing. */
export const NETCHECK_INTERVAL_MS = 5 * 60_000;
/** netcheck had nobody to ask (the first node, alone) or no answer: try again after this long. */
export const NETCHECK_RETRY_MS = 10_000;
/** Our netcheck requests are padded (RFC 5780 PADDING) to this many bytes: an agent answers an unverified
 *  source with no more than it sent, and its longest answer to a netcheck request is a success from an
 *  agent with a second port over IPv6: XOR-MAPPED-ADDRESS, RESPONSE-ORIGIN and OTHER-ADDRESS of 24 bytes
 *  each, header and FINGERPRINT (100; 64 over IPv4, like a 420 to CHANGE-REQUEST). */
export const STUN_PADDED_REQUEST_BYTES = 100;
/** A public agent answers STUN from a second UDP socket on its port + this (RFC 5780 CHANGE-REQUEST
 *  "change port", and plain Binding requests there), so one server tells a client whether its NAT's
 *  mapping and filtering depend on the destination port. A fixed offset, so an operator knows which port
 *  to open beside --listen (4500 and 4501 by default); 1 because the port above a chosen one is the one
 *  most likely free beside it. The port is announced in OTHER-ADDRESS: clients do not assume it. */
export const STUN_CHANGE_PORT_OFFSET = 1;
/** Transmissions of netcheck's change-port filtering test (the answer comes from the server's other port):
 *  a NAT that filters by port never lets it through, and every netcheck behind one (most home routers)
 *  waits for the test to give up before the mapping test to that port (which opens the filter) may
 *  start: two transmissions give up after 300 ms, not STUN_MAX_TRANSMITS' 1.5 s. A lost pair of round
 *  trips only misreports filtering, which nothing but the report uses. */
export const NETCHECK_PORT_FILTER_TRANSMITS = 2;
/** Bytes per second, and burst, that the STUN endpoint answers one unverified address with: netcheck sends
 *  a few requests per server, ICE a few dozen checks per pair (~100 bytes each), birthday probing up to
 *  256 checks from one host at once (~25 KB); a flood of forged requests aimed at one victim gets no more. */
export const STUN_UNVERIFIED_RATE_BYTES = 4 * 1024;
export const STUN_UNVERIFIED_BURST_BYTES = 32 * 1024;
/** Addresses whose STUN byte budgets are kept (least recently active forgotten first, which only refills
 *  that budget: each refill was paid for by requests at least as large as the answers). */
export const STUN_UNVERIFIED_SOURCES_MAX = 4_096;
/** A source that answered one of our STUN transactions from where we sent it counts as verified this
 *  long (it proved return routability: our random transaction id reached it), a netcheck interval. */
export const STUN_VERIFIED_MS = NETCHECK_INTERVAL_MS;
/** Sources remembered as verified that way (oldest forgotten first): ICE peers and netcheck servers. */
export const STUN_VERIFIED_MAX = 1_024;
/** netcheck got an answer but from one server only, so the mapping is unknown (a host that joined while
 *  the overlay was filling its table): asked again this soon, NETCHECK_MAPPING_RETRIES times, so the NAT
 *  type that birthday probing and port prediction go by is known before the first hole punch. */
export const NETCHECK_MAPPING_RETRY_MS = 2_000;
export const NETCHECK_MAPPING_RETRIES = 3;

// ---- nat/: ICE over the overlay's Attach, port prediction, birthday probing (agent/nat/attach.ts, ice.ts, traversal.ts) ----

/** An Attach offer or answer older (or newer) than this by our clock is refused: a relayed round trip with
 *  retransmissions takes under 2 s, the rest is for clocks a few seconds apart (NTP keeps them far closer);
 *  within it, the replay cache (attach-guard.ts) refuses a blob acted on once. */
export const ATTACH_MAX_AGE_MS = 30_000;
/** Candidates in one Attach: host addresses of a few interfaces, a server-reflexive and a relayed one. */
export const ATTACH_MAX_CANDIDATES = 12;
/** Attach blobs remembered (sender key, tie-breaker) for ATTACH_MAX_AGE_MS after their `created`, so a
 *  replay under a new overlay transaction is refused. Offers per key are limited (below), so filling it
 *  within the window takes about ATTACH_REPLAY_CACHE_MAX / ATTACH_OFFERS_PEER_PER_S / window ≈ 136 minted
 *  keys; the oldest entry gives way then, and its replay could still aim checks at its own sender only. */
export const ATTACH_REPLAY_CACHE_MAX = 4_096;
/** Offers acted on per sender key: a burst of ATTACH_OFFERS_PEER_BURST, then ATTACH_OFFERS_PEER_PER_S. A
 *  genuine peer offers once per reach (retries ICE_DIRECT_RETRY_MS apart), two or three when both sides
 *  start at once. Keys tracked: ATTACH_GUARD_MAX_PEERS, least recently active forgotten first. */
export const ATTACH_OFFERS_PEER_BURST = 4;
export const ATTACH_OFFERS_PEER_PER_S = 1;
export const ATTACH_GUARD_MAX_PEERS = 1_024;
/** Relayed candidates checked per Attach and address family: a peer has one TURN allocation, with a relayed
 *  address of each family at most (RFC 8656). They are the candidates whose address is not the peer's own
 *  (the TURN server's), so capped to one check schedule per family. */
export const ATTACH_MAX_RELAY_CANDIDATES = 1;
/** Public host or srflx candidates of the other address family than the one the Attach's path observed,
 *  checked per Attach: a dual-stack peer is seen at one family only (the one its rendezvous registration
 *  used), yet its IPv6 host address is the best pair there is (no NAT), and its IPv4 srflx the only one
 *  an IPv4 peer has. Unobserved, so capped: two checks' schedules per offer, under the same per-key offer
 *  rate as everything else. */
export const ATTACH_MAX_OTHER_FAMILY_CANDIDATES = 2;
/** Between the first checks to successive remote candidates (RFC 8445's Ta is 50 ms for the Internet at
 *  large; we pace far fewer pairs, and a faster start is what makes the first packet quick). */
export const ICE_CHECK_PACING_MS = 10;
/** A connectivity check is retransmitted on this schedule: 50 ms, doubling, ICE_CHECK_MAX_TRANSMITS sends
 *  (0, 50, 150, 350, 750, 1550 ms): the other side's first checks, which open its NAT for ours, start about
 *  one overlay round trip after ours, so early retransmissions are what get through. */
export const ICE_CHECK_RTO_MS = 50;
export const ICE_CHECK_MAX_TRANSMITS = 6;
/** No direct pair by then: fall back to a relay (the "a relayed path within 2 s"), while checks go
 *  on in the background. */
export const ICE_DIRECT_TIMEOUT_MS = 1_500;
/** An ICE restart (fresh candidates, a new Attach through the peer's rendezvous nodes) with one peer at
 *  most this often: a link that flaps, or a silent path reported again, cannot storm the overlay; a change
 *  inside the interval is not lost but runs once when it ends; one restart per peer runs at a time. Above the far side's Attach rate
 *  (ATTACH_OFFERS_PEER_PER_S), so a restart is never refused there for coming too soon. */
export const ICE_RESTART_MIN_INTERVAL_MS = 2_000;
/** After a restart that found no path (it ran mid-move, before the new uplink was up), the next may come
 *  this soon: one restart per peer runs at a time and a failed one took its Attach timeout, so this
 *  still bounds a flapping link to a few restarts per second per peer, none in parallel. */
export const ICE_RESTART_AFTER_FAILURE_MS = 250;
/** Before an ICE restart our new public mapping is asked of this many STUN servers at once (rendezvous
 *  nodes first); the first answer is the srflx candidate offered. A full netcheck (every server, every
 *  retransmission) follows in the background: a restart must not wait for its slowest server. */
export const ICE_RESTART_STUN_SERVERS = 3;
/** The restart waits at most this long for that answer, then offers what it has (host candidates and
 *  checks from the new address still open our NAT towards the peer). */
export const ICE_RESTART_STUN_WAIT_MS = 300;
/** Rendezvous nodes a host behind a NAT keeps keepalives to and names in its locator: Attach for it is
 *  sent through all of them at once, so one dead rendezvous costs nothing; three is RELOAD's "a few". */
export const RENDEZVOUS_COUNT = 3;
/** Fewer public members (bootstraps, STUN and relay providers) known than RENDEZVOUS_COUNT: the providers
 *  are asked again this soon, RENDEZVOUS_PROVIDER_RETRIES times per netcheck, rather than at the next
 *  netcheck. A member that joined after ours (a dual-stack relay for an IPv6-only host, say) is then a
 *  rendezvous within seconds; bounded, since each ask PINGs the records' unknown candidates. */
/** Reasons kept for status about peers whose Attach offer shared no address family with us (one per
 *  peer, from signed offers); cleared when full, since status loses only a sentence. */
export const TRAVERSAL_ANSWERED_REASONS_MAX = 1024;
/** `idloc-agent ping`s waiting for their pong, over all peers: the control socket asks one at a time per
 *  client; a full table refuses the next ping rather than forget one. */
export const TUNNEL_PINGS_PENDING_MAX = 256;
/** A ping to a peer with no session yet (found just now, its handshake under way) is tried again this
 *  often until its time is up. */
export const TUNNEL_PING_RETRY_MS = 50;
/** --metrics: scrapes served at once, and how long one may take to send its request (a scraper asks
 *  every few seconds; anything slower or more is not one). */
export const METRICS_MAX_CONNECTIONS = 16;
export const METRICS_REQUEST_TIMEOUT_MS = 5_000;
export const RENDEZVOUS_PROVIDER_RETRY_MS = 3_000;
export const RENDEZVOUS_PROVIDER_RETRIES = 5;
/** With a relayed candidate on either side, the offerer waits this long for a pair: a direct pair usually
 *  answers within a round trip, the relayed pair needs the relay's permission for the peer (one more round
 *  trip to the TURN server) and the peer's next retransmitted check — well inside 2 s. */
export const ICE_RELAY_TIMEOUT_MS = 2_000;
/** A peer on a relay (or with no path) gets Attach + ICE again after this long, doubling up to
 *  ICE_DIRECT_RETRY_MAX_MS, and moves to a direct pair if one answers: NATs change (reboots, another
 *  uplink) and a relay costs latency and the relay's bandwidth. */
export const ICE_DIRECT_RETRY_MS = 30_000;
/** A direct path that broke under a move and ended on a relay (the bridge, path-keeper.ts) is tried again
 *  this soon, doubling up to ICE_DIRECT_RETRY_MS: what blocked the new pair is usually brief (an uplink
 *  still coming up, a NAT mapping not yet made), and the user is waiting on a relay meanwhile. */
export const BRIDGE_DIRECT_RETRY_MS = 2_000;
export const ICE_DIRECT_RETRY_MAX_MS = 10 * 60_000;
/** A relayed ICE pair that answers first waits this long for a direct pair to answer too: a direct pair's
 *  checks can trail by a round trip and a retransmission (50 ms), and a relay costs latency for the
 *  tunnel's whole life, so a short wait is worth it. */
export const ICE_RELAY_GRACE_MS = 250;
/** ICE sessions one agent keeps at once (each holds credentials and a few pending checks). */
export const ICE_MAX_SESSIONS = 256;
/** A session lingers this long after it finished, answering the other side's late checks (RFC 8445 keeps
 *  answering for the life of the pair). */
export const ICE_SESSION_LINGER_MS = 30_000;
/** Predicted ports an Attach offers behind a sequentially allocating symmetric NAT: each new destination
 *  contacted since the netcheck takes one, so a window of several absorbs a few; the peer checks each
 *  (paced ICE_CHECK_PACING_MS), so more would slow its checks to the real candidates. */
export const PORT_PREDICTION_COUNT = 8;
/** Largest gap between two mappings netcheck saw that still reads as "in order": a sequential NAT hands
 *  out the next ports to other hosts' flows too, so small gaps are normal; random ports are far apart. */
export const PORT_PREDICTION_MAX_STEP = 16;
/** Birthday probing against a NAT that maps every destination to a random port (nat/probe-sockets.ts):
 *  the hard side opens PROBE_SOCKETS_COUNT sockets towards the peer's public endpoint, the easy side sends
 *  HARD_NAT_SPRAY_COUNT checks to random ports of the hard side's address. With 256 mappings among ~64 Ki
 *  ports, 2048 probes miss them all with probability e^(-8) (0.03%); 256 is what a Linux host opens without
 *  strain (the default fd limit is 1024). */
export const PROBE_SOCKETS_COUNT = 256;
export const HARD_NAT_SPRAY_COUNT = 2048;
/** The spray goes out HARD_NAT_SPRAY_BURST checks every HARD_NAT_SPRAY_INTERVAL_MS (~6,400 packets/s of
 *  ~100 bytes for 0.3 s: well under what a NAT's conntrack or a home uplink notices), starting
 *  HARD_NAT_SPRAY_DELAY_MS after the easy side has both sides' parameters, so the hard side's sockets (opened
 *  when it has the answer, an overlay hop later) have mapped their ports before the probes arrive. */
export const HARD_NAT_SPRAY_BURST = 64;
export const HARD_NAT_SPRAY_INTERVAL_MS = 10;
export const HARD_NAT_SPRAY_DELAY_MS = 200;
/** Birthday probing (a spray, or opening probe sockets towards a peer) at most once per peer and per
 *  address every HARD_NAT_SPRAY_PEER_INTERVAL_MS, and HARD_NAT_SPRAYS_BURST at once overall, refilled at
 *  HARD_NAT_SPRAYS_PER_MIN: one reach needs one spray (a miss has probability e^-8), a background retry
 *  comes ICE_DIRECT_RETRY_MS later; a flood of offers gets no more than ~140 probes/s out of us. */
export const HARD_NAT_SPRAY_PEER_INTERVAL_MS = 10_000;
export const HARD_NAT_SPRAYS_BURST = 4;
export const HARD_NAT_SPRAYS_PER_MIN = 4;
/** Connectivity checks (each up to ICE_CHECK_MAX_TRANSMITS datagrams) per peer: a burst of
 *  ICE_PEER_CHECK_BURST (one Attach's ATTACH_MAX_CANDIDATES and its triggered checks), refilled at
 *  ICE_PEER_CHECKS_PER_S; and overall ICE_CHECK_BURST, ICE_CHECKS_PER_S (a few dozen peers punching at once). */
export const ICE_PEER_CHECK_BURST = 32;
export const ICE_PEER_CHECKS_PER_S = 4;
export const ICE_CHECK_BURST = 512;
export const ICE_CHECKS_PER_S = 64;
/** Triggered checks one session sends (to sources of verified checks not yet checked): a probe that lands
 *  makes one or two; more means someone who knows the password is pointing us elsewhere. */
export const ICE_MAX_TRIGGERED = 16;

// ---- nat/: the TURN client and relay (agent/nat/turn-*.ts, RFC 8656) -----------------------------

/** TURN's well-known port (RFC 8656 section 3, same as STUN's), used when a server is named without one. */
export const TURN_DEFAULT_PORT = 3478;
/** First retransmission of an unanswered TURN request: RFC 8489's recommended initial RTO for UDP. Unlike
 *  overlay RPCs (250 ms, to peers a hop away), a TURN server may be far away and busy, and a duplicate
 *  Allocate costs it state; 500 ms is over twice a bad wide-area RTT. Doubles per try. */
export const TURN_RTO_INITIAL_MS = 500;
/** Transmissions per TURN request: at 0, 0.5, 1.5 and 3.5 s, given up at 7.5 s (the last wait is the last
 *  doubled RTO). RFC 8489's 7 tries take 39.5 s, far longer than an agent should wait before deciding a
 *  relay is unusable; under 10% loss each way four lost round trips in a row are ~1e-4 likely. */
export const TURN_MAX_TRANSMISSIONS = 4;
/** Refresh the allocation this long before it expires (RFC 8656 section 7: "about one minute"), or at half
 *  its lifetime if that is shorter, so one refresh lost to its full 7.5 s of retries still leaves time. */
export const TURN_REFRESH_MARGIN_S = 60;
/** After a refresh (allocation, permission or channel) failed, try again this soon while it has not yet
 *  expired: a server that was briefly unreachable keeps our relay, a dead one costs a few requests. */
export const TURN_REFRESH_RETRY_MS = 5_000;
/** Re-send CreatePermission and re-bind channels this often: permissions last a fixed 5 minutes (RFC 8656
 *  section 9) and cannot be asked for longer; a minute of margin covers a lost refresh and its retries.
 *  Channels last 10 minutes but a ChannelBind also refreshes its permission, so they share this period. */
export const TURN_PERMISSION_REFRESH_MS = 240_000;
/** Permission lifetime fixed by RFC 8656 section 9; after it a permission whose refreshes all failed is
 *  forgotten (the server forgot it too). */
export const TURN_PERMISSION_LIFETIME_MS = 300_000;
/** Channel binding lifetime fixed by RFC 8656 section 12. */
export const TURN_CHANNEL_LIFETIME_MS = 600_000;
/** 438 Stale Nonce answers in a row a request retries with the fresh nonce: one is normal (the nonce
 *  expired), two is a server churning nonces; more would be a loop. */
export const TURN_STALE_NONCE_RETRIES = 2;
/** close() waits this long for the answer to its Refresh(lifetime 0); the server frees the allocation at
 *  its expiry anyway, so shutting an agent down is never held up by a dead relay. */
export const TURN_CLOSE_TIMEOUT_MS = 2_000;
/** STUN attributes the TURN client scans in one message: coturn's answers carry under 10; the bound caps
 *  the work a datagram of 4-byte empty attributes can cause. */
export const TURN_MAX_STUN_ATTRIBUTES = 32;
/** A failed or lost TURN allocation is tried again after this long (the server may be restarting). */
export const TURN_REALLOCATE_RETRY_MS = 10_000;
/** The TURN client checks its server this often (a Binding request): a NAT mapping towards the server must
 *  not idle out (the same ~30 s as RENDEZVOUS_KEEPALIVE_MS), and a server that stopped answering is noticed
 *  within about this plus TURN's retransmissions (~7.5 s), so peers carried by it move to another path. */
export const TURN_KEEPALIVE_MS = 10_000;
/** Bytes of a TURN provider's vouch for its server (HMAC-SHA256 cut short, agent/nat/service-proof.ts):
 *  160 bits, so forging one without the secret is out of reach; it fits one pseudo-candidate. */
export const TURN_VOUCH_BYTES = 20;
/** scrypt cost of the vouch key derived from the TURN secret (r = 8: 32 MiB, ~0.1 s, once per agent). The
 *  vouch is public, so each guess at the secret from it costs this, where guessing from a captured
 *  Allocate costs one HMAC-SHA1. */
export const TURN_VOUCH_SCRYPT_N = 2 ** 15;
/** Service providers whose endpoint is checked by a PING per lookup ("stun", "relay": the record owner must
 *  answer there): netcheck asks at most NETCHECK_MAX_SERVERS, rendezvous wants RENDEZVOUS_COUNT; a flood of
 *  planted records costs a bounded number of PINGs. */
export const SERVICE_PROVIDERS_CHECKED_MAX = 8;
/** Credentials minted from --turn-secret are valid this long (the expiry is in the username, RFC-draft TURN
 *  REST API): coturn checks it on every request, refreshes included, so an allocation lives at most this
 *  long before a new one (with new credentials) takes over; a day is what such services commonly hand out. */
export const TURN_CREDENTIAL_LIFETIME_S = 24 * 3600;
/** Addresses the TURN relay remembers as directly reachable; on overflow the set starts over (they are
*  re-learnt from the next check or handshake), which bounds memory against a flood of spoofed sources. */
export const TURN_DIRECT_PEERS_MAX = 4096;
/** Relayed candidates of peers remembered (to tell a tunnel through a peer's TURN relay from a direct one):
 *  a few per peer with a TURN server; beyond the bound new ones are not noted (status then says direct). */
export const PEERS_TURN_RELAYS_MAX = 4096;

// ---- nat/: the peer relay: tunnel datagrams through an overlay member (agent/nat/peer-relay-*.ts) ----

/** Largest payload of a peer relay frame: the frame (22 bytes of header at most) must fit one UDP datagram
 *  (65,507 bytes over IPv4); tunnel datagrams are the TAP MTU plus 32 bytes. */
export const PEER_RELAY_MAX_PAYLOAD = 65_507 - 22;
/** Bytes per second one source IP address may have relayed through us, and its burst: a peer relay is the
 *  last resort (both sides behind NATs no check gets through, no TURN server), so it carries an ssh session
 *  or a call (~100 kbit/s) many times over, while a relay node cannot be made to spend more than ~32 Mbit/s
 *  of its uplink per source. Over the limit: dropped and counted, as a congested link would. */
export const PEER_RELAY_RATE_BYTES = 4 * 1024 * 1024;
export const PEER_RELAY_BURST_BYTES = 1024 * 1024;
/** Sources whose peer relay byte buckets are kept (least recently active forgotten first, which only resets
*  their limit): a flood of spoofed sources costs a bounded table. */
export const PEER_RELAY_SOURCES_MAX = 4_096;
/** Senders a relay names by handle at once (least recently used forgotten first: its next frame gets a new
 *  handle, and the tunnel inside roams to it on the next authenticated packet). */
export const PEER_RELAY_HANDLES_MAX = 4_096;
/** A handle unused this long is forgotten: tunnels send a keepalive well within it (KEEPALIVE_INTERVAL_MS). */
export const PEER_RELAY_HANDLE_IDLE_MS = 180_000;
/** Routes through peer relays a client agent keeps (virtual endpoints; oldest forgotten first). */
export const PEER_RELAY_ROUTES_MAX = 4_096;
/** A sender proves its source to a relay again this often while it sends through it: the relay forwards
 *  only from sources the overlay verified recently, and a rendezvous client's keepalives
 *  (RENDEZVOUS_KEEPALIVE_MS) are what keep a client verified, so a window that holds for them holds for us. */
export const PEER_RELAY_REVERIFY_MS = RENDEZVOUS_KEEPALIVE_MS;
/** Frames held towards a relay while our first proof to it runs (one overlay round trip): a handshake
 *  initiation and its retry, or a few packets; the rest are dropped and counted, as a queue would. */
export const PEER_RELAY_PENDING_MAX = 8;

// ---- nat/: standby paths on a host with several uplinks (agent/nat/standby.ts, conn/uplinks.ts) ----

/** Uplinks a host keeps standby paths on, besides the one in use: Wi-Fi + LTE + a wire is three; a table
 *  bounded by what a host can have plugged in. */
export const STANDBY_UPLINKS_MAX = 4;
/** A standby path not (or no longer) answered is probed this often: opening it takes a packet from each
 *  side through its own NAT, and one lost probe should cost a second, not a keepalive interval. */
export const STANDBY_PROBE_MS = 1_000;
/** An answered standby path is probed this often: like the tunnels' KEEPALIVE_INTERVAL_MS, well inside the
 *  ~30 s after which home routers forget an idle UDP mapping. */
export const STANDBY_KEEPALIVE_MS = 15_000;
/** A standby path answered within this long is trusted to take the traffic at once (two keepalive rounds
 *  and a probe: one lost round does not make it stale). */
export const STANDBY_FRESH_MS = 2 * STANDBY_KEEPALIVE_MS + STANDBY_PROBE_MS;
/** Our public mapping on each uplink is asked of a STUN server this often (and on every change of
 *  uplinks): the offer we send peers names it. */
export const STANDBY_REMAP_MS = 60_000;
/** How often the standby paths are looked after; also the granularity of STANDBY_PROBE_MS. */
export const STANDBY_TICK_MS = 250;
/** A flow towards us stopped (tunnels' RECEIVE_SILENT_MS): the active path is probed, and if this passes
 *  with no answer the traffic moves to a fresh standby. A few round trips of a continental path: long
 *  enough that a live path answers, short enough that the move comes before TCP has backed off far. */
export const STANDBY_CHECK_MS = 250;
/** Once the active path's round trip is known (a PROBE on it every STANDBY_KEEPALIVE_MS), the silence check
 *  waits this many round trips instead, down to STANDBY_CHECK_MIN_MS: a LAN-like path answers in a
 *  millisecond, and each millisecond waited is a millisecond of stall. */
export const STANDBY_CHECK_RTTS = 4;
/** The shortest silence check: room for the peer's event loop being busy (a handshake, a GC pause). Too
 *  short costs a needless move to the standby and a failback STANDBY_FAILBACK_MS later, not a stall. */
export const STANDBY_CHECK_MIN_MS = 80;
/** Traffic moved off an uplink goes back to it once its own standby probes have been answered for this
 *  long: the preferred (cheaper, first) uplink wins again, and a path that flaps does not flip every probe. */
export const STANDBY_FAILBACK_MS = 5_000;
/** Answers to a peer's offers (packets to an address the peer names) are sent at most this often per
 *  peer: an authenticated peer still cannot make us send a stream to somebody else. */
export const STANDBY_OFFER_ANSWER_MIN_MS = 500;

// ---- dns/: the DNS responder for .idloc names (agent/dns) -----------------------------------------

/** The DNS port (RFC 1035): resolvers and systemd-resolved send to 53 and take no other for a server. */
export const DNS_PORT = 53;
/** Largest UDP answer without EDNS (RFC 1035 4.2.1); longer ones go out truncated (TC) and the client asks
 *  again over TCP. */
export const DNS_UDP_PLAIN_MAX = 512;
/** Largest UDP answer with EDNS, whatever bigger size the client offers, and what our OPT record offers:
 *  DNS Flag Day 2020's value, which fits a 1280-byte IPv6 path without fragments (a peer may ask across
 *  the tunnel); anything bigger goes over TCP. */
export const DNS_EDNS_UDP_MAX = 1_232;
/** A query is one question plus an OPT record with a few options; even padded to 128-byte blocks (RFC 8467)
 *  it stays far under this. Longer messages are dropped, counted, before they are decoded. */
export const DNS_QUERY_MAX_BYTES = 1_232;
/** A DNS message over TCP is at most what its 2-byte length prefix can say (RFC 1035 4.2.2): the bound on
 *  an upstream's answer we relay, and on what a connection may make us buffer. */
export const DNS_TCP_MESSAGE_MAX = 65_535;
/** .idloc answers (and "no such name") kept: a host asks for a handful of names; 1,024 bounds the memory
 *  (about 200 bytes each) a client asking for random names can take, and the oldest go first. */
export const DNS_CACHE_MAX_ENTRIES = 1_024;
/** An answer is kept, and handed out, for the rest of its records' lifetime but at most this long: a name
 *  given up, or an IPv4 address re-derived after a claim collision, shows in every cache within 5 min,
 *  and a name in use costs one overlay lookup per 5 min. */
export const DNS_ANSWER_MAX_TTL_S = 300;
/** "No such name" is kept this long (and is the SOA minimum we send, RFC 2308): a retrying app does not
 *  start a lookup per try, and a name registered a moment ago is found a few seconds later. */
export const DNS_NEGATIVE_TTL_S = 5;
/** A .idloc lookup unanswered this long gets SERVFAIL (not cached): under glibc's 5 s retry, so the
 *  client reads an answer before it gives up, and above a lookup that retries RPCs on a lossy path. */
export const DNS_LOOKUP_TIMEOUT_MS = 4_000;
/** Distinct .idloc names looked up at once (queries for a name already being looked up wait for that
 *  lookup): each is an overlay lookup, so a flood of random names cannot start a lookup storm; beyond
 *  it, SERVFAIL, counted. */
export const DNS_LOOKUPS_IN_FLIGHT_MAX = 32;
/** Queries forwarded upstream and not answered yet; each holds a socket: beyond it they are dropped,
 *  counted (the client asks again). */
export const DNS_FORWARD_IN_FLIGHT_MAX = 256;
/** Wait this long for one upstream before asking the next: well inside glibc's 5 s per try, so a second
 *  upstream is asked before the client gives up. */
export const DNS_FORWARD_TIMEOUT_MS = 2_000;
/** Upstreams taken from resolv.conf, in order: glibc reads no more than 3 (MAXNS) either. */
export const DNS_UPSTREAMS_MAX = 3;
/** TCP connections open at once: a resolver uses one or two; the rest are closed at once, counted. */
export const DNS_TCP_CONNECTIONS_MAX = 64;
/** A TCP connection with no query for this long is closed (RFC 7766 6.2.3 leaves it to the server): long
 *  enough for a client's next query, short enough that idle connections cannot hold every slot. */
export const DNS_TCP_IDLE_MS = 10_000;
/** Queries one TCP connection may have unanswered at once (RFC 7766 pipelining); more are dropped, counted. */
export const DNS_TCP_PIPELINE_MAX = 16;
/** resolvectl normally answers in milliseconds; a hung D-Bus must not hold the agent's start or exit longer. */
export const DNS_RESOLVECTL_TIMEOUT_MS = 5_000;

// ---- agent: finding and admitting peers (agent/discovery.ts, peers.ts) ---------------------------

/** Packets held per unknown destination while its lookup runs: a TCP SYN and its retries, or a few pings,
 *  fit; a flood to an unresolvable address cannot hold more than this each. */
export const LOOKUP_QUEUE_PER_DEST = 16;
/** Destinations looked up at once: each costs a few overlay RPCs; beyond this new ones are refused
 *  (ICMP unreachable, counted) rather than let a scan of 100.64/10 turn into a lookup storm. */
export const LOOKUP_MAX_PENDING = 64;
/** A lookup that has not found the peer by now answers the app with ICMP unreachable. Overlay RPCs give up
 *  after ~1.75 s (250 ms x 3 tries with backoff) per hop; 5 s covers a few hops of retries on a lossy path
 *  while staying under TCP's first SYN retransmission timeouts adding up to a failed connect. */
export const LOOKUP_TIMEOUT_MS = 5_000;
/** After a failed lookup, packets to that address get ICMP unreachable at once for this long, so a
 *  retrying app (ping, a SYN every second) does not start a lookup per packet. */
export const LOOKUP_NEGATIVE_CACHE_MS = 1_000;
/** Peers met through the overlay (found by lookup or accepted from a handshake) one agent keeps: bounds
 *  memory and the work a flood of fresh keys can cause; the puzzle prices each key. */
export const MAX_OVERLAY_PEERS = 1_024;
/** An overlay peer that completed a handshake but has exchanged no inner packet this long after it was
 *  admitted is removed: a real peer handshakes because it has a packet to send (its first arrives with the
 *  handshake, or after ICE's few seconds), while a key that only handshakes would hold a slot for nothing. */
export const OVERLAY_PEER_NO_DATA_MS = 30_000;
/** An overlay peer heard from not at all (not even its KEEPALIVE_INTERVAL_MS keepalives) this long is removed:
 *  by then every session with it has expired (REJECT_AFTER_TIME_MS), so its tunnel holds nothing but a slot;
 *  either side's next packet finds the other again (a lookup here, a handshake there). */
export const OVERLAY_PEER_QUIET_MS = REJECT_AFTER_TIME_MS;
/** How often overlay peers are checked against the two bounds above: a few seconds late costs nothing. */
export const OVERLAY_PEER_SWEEP_MS = 5_000;
/** Lookups started on behalf of other peers (a newcomer's IPv4 claim, a silent peer's locator) at once, and
 *  waiting beyond that: admissions cost one each, so a burst of strangers cannot start a lookup storm;
 *  past the queue they are dropped, counted (the peer's next IPv4 packet asks again). */
export const PEER_LOOKUPS_IN_FLIGHT = 16;
export const PEER_LOOKUPS_QUEUED = 256;
/** IPv4 packets held per newly met peer while its IPv4 claim is looked up (its first pings or SYN). */
export const IPV4_PENDING_PER_PEER = 16;
/** First-packet lookups whose latency `status` summarises. */
export const DISCOVERY_LATENCY_SAMPLES = 256;

// ---- agent: control socket, CLI defaults (agent/control.ts, cli.ts, config.ts) -------------------

/** Name of the control socket inside the state dir. */
export const CONTROL_SOCKET_NAME = 'control.sock';
/** How long the CLI waits for the agent's answer: `resolve` and `register` run overlay lookups, which on a
 *  lossy path may spend a few RPC timeouts (LOOKUP_TIMEOUT_MS); status answers at once. */
export const CONTROL_TIMEOUT_MS = 10_000;
/** A control request is one short JSON line; 64 KiB is far above any real one (a name, a query, a few
 *  STUN servers) and bounds what a permitted but buggy client can make the agent buffer. */
export const CONTROL_MAX_REQUEST_BYTES = 65_536;
/** Names `register` kept in the state dir, re-registered at every start (agent/names-state.ts). */
export const NAMES_FILE_NAME = 'names.json';
/** The NodeID puzzle's solution for this key and difficulty, so a start does not solve it again (about
 *  2^difficulty hashes: 0.1-0.5 s at 16 bits, and it grows with the difficulty). */
export const PUZZLE_FILE_NAME = 'puzzle.json';
/** Names one host keeps and republishes: a host needs a handful; 16 bounds the file and the start-up
 *  registrations, and leaves room under STORE_MAX_RECORDS_PER_OWNER for the host's locator, IPv4 claim,
 *  service records and tombstones. */
export const NAMES_MAX_KEPT = 16;
/** Default UDP port: RELOAD has no fixed one; 4500 is NAT-T's and easy to remember. */
export const DEFAULT_LISTEN_PORT = 4500;
export const DEFAULT_TAP_NAME = 'idloc0';
export const DEFAULT_STATE_DIR = '/var/lib/idloc';

// ---- private overlays: the shared secret (agent/base/overlay-secret.ts, nat/admission.ts) ----------

/** An overlay secret is 32 random bytes: BLAKE2s's key size, and WireGuard's preshared key size. */
export const OVERLAY_SECRET_BYTES = 32;
/** Secrets held at once: the one sent with and the one being rotated out (or in). More would only widen
 *  the window in which a retired secret still opens the overlay. */
export const OVERLAY_SECRETS_MAX = 2;
/** The tag on overlay and relay datagrams: a 128-bit keyed BLAKE2s, as WireGuard's mac1. Forging one is a
 *  2^-128 guess per datagram. */
export const ADMISSION_TAG_BYTES = 16;
// ---- firewall/: inbound rules by identity, flow tracking (agent/firewall) ----

/** Rules one firewall holds: far above any hand-written policy (a few dozen), and a bound on the work a
 *  generated or corrupt file can cause when every peer's policy is compiled from them. */
export const FW_MAX_RULES = 1_024;
/** Flows tracked at once, over all peers (a power of two: the table is indexed by hash & mask). About 18
 *  bytes each, so 288 KiB; 16 flows for each of MAX_OVERLAY_PEERS peers, and far more for a few busy ones.
 *  A full table evicts (the flow nearest its expiry first), so it never refuses a new outbound flow. */
export const FW_FLOW_CAPACITY = 16_384;
/** Slots looked at per flow, from its hash on (linear probing without tombstones): a lookup costs at most
 *  this many compares, and a full table chooses the flow it evicts among this many. */
export const FW_FLOW_PROBE = 8;
/** An outbound SYN not yet answered: RFC 5382 REQ-5's 4-minute transitory timeout, longer than any
 *  connect() gives up after (Linux: about 2 minutes of SYN retries). */
export const FW_TCP_OPENING_MS = 240_000;
/** An established TCP connection, idle: RFC 5382 REQ-5's floor for NATs, 2 h 4 min, so a connection kept
 *  alive by TCP keepalives at their default (first probe after 2 h) survives. conntrack's 5 days would let
 *  dead flows hold slots for nothing; eviction keeps a full table admitting newcomers either way. */
export const FW_TCP_ESTABLISHED_MS = 7_440_000;
/** After a FIN either way: RFC 5382's transitory 4 minutes again, room for the other half to close. */
export const FW_TCP_CLOSING_MS = 240_000;
/** After a RST either way: conntrack's 10 s for a closed connection, so a late segment still passes. */
export const FW_TCP_RESET_MS = 10_000;
/** A UDP flow with no reply yet: conntrack's 30 s, enough for a DNS query and its retries. */
export const FW_UDP_UNREPLIED_MS = 30_000;
/** A UDP flow that was answered: RFC 4787 REQ-5's floor of 2 minutes (conntrack's udp_timeout_stream), four
 *  times WireGuard's 25 s keepalive and the 15-30 s keepalives of SIP/RTP and QUIC. */
export const FW_UDP_REPLIED_MS = 120_000;
/** An ICMP echo (ping) we sent: conntrack's 30 s; a reply later than that is not one anyone waits for. */
export const FW_ICMP_ECHO_MS = 30_000;
/** A fragmented datagram whose first fragment was let in: its other fragments, by IP identification, pass
 *  for this long. They arrive within milliseconds; well under Linux's 30 s reassembly time, since any
 *  reassembly still incomplete by then has long been given up on by the app. */
export const FW_FRAGMENT_MS = 10_000;
/** IPv6 extension headers walked before the upper-layer header: real packets carry one or two; a chain of
 *  more is dropped as malformed, a bound on the work one packet can cause. */
export const FW_IPV6_EXT_HEADERS_MAX = 8;
// ---- cert/: certificates, the CA and revocation (agent/cert) ----------------------------------------

/** Groups one certificate names (Nebula-style membership tags a firewall rule can match): a host is in a
 *  handful; 8 keeps the certificate under CERT_MAX_BYTES with every field at its longest. */
export const CERT_MAX_GROUPS = 8;
/** Longest group name, the rule of service names (a lowercase label), so a group reads like a name. */
export const CERT_GROUP_MAX_LEN = 32;
/** Largest encoded certificate: 3 + 32 + 32 + 20 + 16 + (1 + 63) + 1 + 8 x (1 + 32) + 64 = 496 bytes at
 *  most, so one fits a handshake payload or an overlay record (RECORD_MAX_VALUE_BYTES) with room left. */
export const CERT_MAX_BYTES = 512;
/** Longest validity `ca sign` and `ca init` issue: ten years bounds what a stolen but unrevoked key buys,
 *  and keeps u64 seconds far from any overflow in the verifier's arithmetic. */
export const CERT_MAX_VALIDITY_S = 10 * 365 * 86_400;
/** Shortest validity: below a minute a certificate expires before it reaches the host. */
export const CERT_MIN_VALIDITY_S = 60;
/** A member certificate's default validity: a year, renewed yearly as TLS certificates were, short enough
 *  that a lost host drops out even if nobody revokes it. */
export const CERT_DEFAULT_VALIDITY_S = 365 * 86_400;
/** A CA's default validity: the longest allowed, since renewing the CA means re-issuing every member. */
export const CERT_CA_DEFAULT_VALIDITY_S = CERT_MAX_VALIDITY_S;
/** notBefore is set this far before the signing time, so a verifier whose clock is a little behind the
 *  CA's accepts a freshly issued certificate (RECORD_MAX_CLOCK_SKEW_MS' five minutes, for the same reason). */
export const CERT_BACKDATE_S = 5 * 60;
/** `ca sign` warns when the certificate it issues or the CA itself expires within this window: a week is
 *  time to renew before hosts drop out of the overlay. */
export const CERT_EXPIRY_WARNING_S = 7 * 86_400;
/** Keys one revocation list holds: 256 x 32 bytes is an 8 KiB list, which every member can fetch and keep;
 *  an overlay that revokes more should re-key its CA. Larger than one overlay record, so publishing it
 *  takes more than one record or a record kind of its own. */
export const CERT_MAX_REVOKED = 256;
/** The CA's files inside its directory (agent/cert/ca.ts): the secret key (0600), the public self-signed
 *  certificate every member needs (0644) and the signed revocation list (0644). */
export const CA_KEY_FILE_NAME = 'ca.key';
export const CA_CERT_FILE_NAME = 'ca.crt';
export const CA_REVOCATION_FILE_NAME = 'revoked.crl';
/** How often the overlay names a firewall rule mentions are looked up again: a name moves only when its
 *  registration lapses or is handed over (NAME_TTL scale), so a minute keeps rules current at a few lookups
 *  per name per minute. */
export const FW_NAME_REFRESH_MS = 60_000;
/** A newly met peer starts a lookup of the rule names not found yet, at most this often: a peer holding
 *  one is let in within a lookup of meeting it, and a stream of strangers costs one lookup per name per
 *  2 s at most. */
export const FW_NAME_RETRY_MS = 2_000;
