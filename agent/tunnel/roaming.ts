// Where a tunnel sends: the peer's endpoint, and how it moves (tunnels.ts calls these on its PeerState).
//
//   roam     WireGuard's rule: the endpoint follows the last authenticated packet's source, with one
//            exception. While a path moves from a relay to a direct pair, the peer's packets still in
//            flight on the relay (or sent before it heard from us on the new pair) would pull us back; so a
//            relayed source does not replace a direct endpoint set or heard from within
//            ROAM_DIRECT_HOLD_MS. A peer that really left the direct path goes silent on it, and the next
//            relayed packet after the hold moves us.
//   bridge   while a direct path is in doubt (we moved, or it went silent) and the path keeper looks for a
//            new pair, every datagram also goes to a relay: the same ciphertext, so the peer's replay
//            window drops whichever copy comes second. It ends when the peer is heard at the endpoint, when
//            the endpoint becomes a relay, or after BRIDGE_MAX_MS. The first thing sent on the relay is a
//            FOLLOW_ME, a tunnel control message (plaintext below CONTROL_BELOW), sent again every tick
//            until anything is heard from the peer (one datagram can be lost, or dropped by a relay that
//            had not verified our new source yet, and a receiving side may have nothing else to send):
//   follow   a FOLLOW_ME from the peer moves our endpoint to where it came from at once, past the hold:
//            only the peer has the session's keys, and the counter forbids a replay.
//
// FOLLOW_ME (8 bytes of plaintext in a 0xC4 data message):
//    0      1      2      3      4                  8
//   +------+------+------+------+------------------+
//   | 0x04 | 0    | 0    | 0    | 0 (u32)          |
//   +------+------+------+------+------------------+
import { BRIDGE_MAX_MS, ROAM_DIRECT_HOLD_MS } from '../base/constants.js';
import type { Endpoint } from '../conn/socket.js';
import { CTRL_FOLLOW_ME, FOLLOW_ME_BYTES, endpointOf, type PeerState, type RelayedPaths, type TunnelStats } from './tunnel-peer.js';

export const FOLLOW_ME: Uint8Array = (() => { const b = new Uint8Array(FOLLOW_ME_BYTES); b[0] = CTRL_FOLLOW_ME; return b; })();

export function isFollowMe(pt: Uint8Array): boolean {
  return pt.length === FOLLOW_ME_BYTES && pt[0] === CTRL_FOLLOW_ME && pt[1] === 0 && pt[2] === 0 && pt[3] === 0
    && pt[4] === 0 && pt[5] === 0 && pt[6] === 0 && pt[7] === 0;
}

/** An authenticated packet from `from` (see the top). True: the endpoint moved there. */
export function roam(p: PeerState, from: Endpoint, now: number, paths: RelayedPaths | undefined, stats: TunnelStats): boolean {
  const e = p.endpoint;
  // Heard at the endpoint, or moved to a new one: a bridge has done its work.
  if (e && e.address === from.address && e.port === from.port) { p.endpointFreshAt = now; p.bridge = undefined; return false; }
  if (e && paths && now - p.endpointFreshAt < ROAM_DIRECT_HOLD_MS && paths.isRelayed(from) && !paths.isRelayed(e)) {
    stats.roamHeld++;
    return false;
  }
  p.bridge = undefined;
  if (e) stats.roamed++;
  // The interface we send out of is our side's choice (a standby uplink after a failover), not the peer's.
  p.endpoint = endpointOf(from.address, from.port, e?.via);
  p.endpointFreshAt = now;
  return true;
}

/** The peer's FOLLOW_ME from `from`: answer there, whatever the hold says. */
export function follow(p: PeerState, from: Endpoint, now: number, stats: TunnelStats): void {
  stats.followed++;
  p.endpoint = endpointOf(from.address, from.port, p.endpoint?.via);
  p.endpointFreshAt = now;
  p.bridge = undefined;
}

/** Start copying to `via`; false when there is nothing to bridge (no endpoint, or a relay already). */
export function startBridge(p: PeerState, via: Endpoint, now: number, paths: RelayedPaths | undefined): boolean {
  if (!p.endpoint || paths?.isRelayed(p.endpoint)) return false;
  p.bridge = endpointOf(via.address, via.port, undefined);
  p.bridgeSince = now;
  p.bridgeUntil = now + BRIDGE_MAX_MS;
  return true;
}

/** The bridge whose FOLLOW_ME has had no answer yet: nothing heard from the peer since it began. */
export function bridgeUnanswered(p: PeerState, now: number): Endpoint | undefined {
  return bridgeFor(p, now) !== undefined && p.lastReceivedAt <= p.bridgeSince ? p.bridge : undefined;
}

/** The bridge to copy a datagram to now, if any (a lapsed one is ended here). */
export function bridgeFor(p: PeerState, now: number): Endpoint | undefined {
  if (p.bridge !== undefined && now >= p.bridgeUntil) p.bridge = undefined;
  return p.bridge;
}
