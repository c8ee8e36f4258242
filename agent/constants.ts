// Every timer and limit of the agent, in one place, each with the reason for its value.
// Names follow the specs they come from (WireGuard paper section 6, RFC 8445, RFC 4861) where one exists.

// ---- Overlay addressing --------------------------------------------------------------

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

// ---- TAP and MTU ---------------------------------------------------------------------

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

// ---- Tunnels (WireGuard paper section 6.1 names) -------------------------------------

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
/** Minimum time between two accepted handshake initiations from one peer (replayed/flooded inits). */
export const HANDSHAKE_INIT_RATE_MS = 50;
/** Packets buffered per peer while its handshake is in flight; beyond that the oldest are dropped, counted. */
export const MAX_QUEUED_PACKETS_PER_PEER = 1024;
/** Anti-replay window size in bits (RFC 6479 style bitmap), as WireGuard: tolerates reordering on multi-path links. */
export const REPLAY_WINDOW_BITS = 2048;

/** After the host's addresses change, wait this long for the rest of the change (a delete and an add
 *  come a few ms apart) before telling peers where we are now. */
export const ADDRESS_CHANGE_SETTLE_MS = 30;

// ---- Control -------------------------------------------------------------------------

/** Name of the control socket inside the state dir. */
export const CONTROL_SOCKET_NAME = 'control.sock';
/** Name of the identity file inside the state dir. */
export const IDENTITY_FILE_NAME = 'identity.json';
/** How long `status` waits for the agent before saying it does not answer. */
export const CONTROL_TIMEOUT_MS = 3_000;
/** Default UDP port: RELOAD has no fixed one; 4500 is NAT-T's and easy to remember. */
export const DEFAULT_LISTEN_PORT = 4500;
export const DEFAULT_TAP_NAME = 'idloc0';
export const DEFAULT_STATE_DIR = '/var/lib/idloc';

// ---- Added for the native TAP reader (agent/tap/native-tap.ts) -----------------------

/** Bytes per TAP read slot beyond MTU + 14-byte Ethernet header: room for two VLAN tags and a margin, so a
 *  full-size tagged frame is never truncated by read(); slots are then rounded up to 64 bytes (cache lines). */
export const TAP_SLOT_SLACK = 32;
/** Period of the tunnel layer's housekeeping tick (handshake retries, give-ups, keepalives, session expiry):
 *  every timer above is whole seconds plus REKEY_TIMEOUT_JITTER_MS, so a quarter second of granularity
 *  loses nothing, and one tick for all peers costs far less than a timer per peer per event. */
export const TUNNEL_TICK_MS = 250;
