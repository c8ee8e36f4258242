// Peer relay frames: relaying through an overlay peer (RELOAD's TUNNEL idea, RFC 6940 section 6.5.2, cut
// down to one datagram per frame) for when no direct pair and no TURN relay works. The relay is a publicly
// reachable agent that a host behind a NAT keeps as a rendezvous node (its keepalives hold the NAT mapping
// open); it forwards opaque datagrams (tunnel messages, already end-to-end encrypted) and sees ciphertext.
//
//   0      1      2                                     2+len(id)
//   +------+------+-------------------------------------+----------------------------------------
//   | 0xD3 | kind | id: a NodeID (20 bytes) or a handle |  payload: one datagram, opaque to the relay
//   |      |      |     (4 bytes, big-endian)           |  (a tunnel message; at most PEER_RELAY_MAX_PAYLOAD)
//   +------+------+-------------------------------------+----------------------------------------
//
//   kind 1 TO_CLIENT    sender -> relay   id = NodeID of the relay's rendezvous client to deliver to
//   kind 2 FROM_PEER    relay -> client   id = handle: the relay's name for the sender's address
//   kind 3 TO_PEER      client -> relay   id = a handle from FROM_PEER: send the payload back to it
//   kind 4 FROM_CLIENT  relay -> sender   id = NodeID of the client the payload comes from
//
// Senders are named by handle, not by a claimed NodeID: the relay knows only the address a frame came
// from, and the tunnel inside authenticates the peer end to end. A client is named by NodeID because that
// is what the sender knows of it (its locator lists the rendezvous nodes it keeps).
import { NODE_ID_BYTES, PEER_RELAY_MAX_PAYLOAD } from '../base/constants.js';
import { getU32, setU32 } from '../base/binary.js';

export const MSG_PEER_RELAY = 0xd3;
export const PR_TO_CLIENT = 1;
export const PR_FROM_PEER = 2;
export const PR_TO_PEER = 3;
export const PR_FROM_CLIENT = 4;

const HANDLE_BYTES = 4;

/** A parsed frame. `id` and `payload` are views into the datagram: valid only while it is. */
export interface PeerRelayFrame {
  kind: number;
  /** NodeID for TO_CLIENT / FROM_CLIENT. */
  nodeId: Uint8Array;
  /** Handle for FROM_PEER / TO_PEER. */
  handle: number;
  payload: Uint8Array;
}

const EMPTY = new Uint8Array(0);

export function newPeerRelayFrame(): PeerRelayFrame {
  return { kind: 0, nodeId: EMPTY, handle: 0, payload: EMPTY };
}

function idLength(kind: number): number {
  if (kind === PR_TO_CLIENT || kind === PR_FROM_CLIENT) return NODE_ID_BYTES;
  if (kind === PR_FROM_PEER || kind === PR_TO_PEER) return HANDLE_BYTES;
  return -1;
}

/** Parse into `out` (reused on the relay's hot path); false for anything malformed. */
export function parsePeerRelay(b: Uint8Array, out: PeerRelayFrame): boolean {
  if (b.length < 2 || b[0] !== MSG_PEER_RELAY) return false;
  const kind = b[1]!;
  const n = idLength(kind);
  if (n < 0 || b.length < 2 + n + 1) return false; // an empty payload carries nothing: malformed
  if (b.length - 2 - n > PEER_RELAY_MAX_PAYLOAD) return false;
  out.kind = kind;
  if (n === NODE_ID_BYTES) {
    out.nodeId = b.subarray(2, 2 + n);
    out.handle = 0;
  } else {
    out.nodeId = EMPTY;
    out.handle = getU32(b, 2);
  }
  out.payload = b.subarray(2 + n);
  return true;
}

/** A frame around `payload`. `id` is a NodeID for TO_CLIENT / FROM_CLIENT, a handle otherwise. */
export function marshalPeerRelay(kind: number, id: Uint8Array | number, payload: Uint8Array): Buffer {
  const n = idLength(kind);
  if (n < 0) throw new Error(`unknown peer relay kind ${kind}`);
  if (payload.length === 0 || payload.length > PEER_RELAY_MAX_PAYLOAD) throw new Error(`peer relay payload of ${payload.length} bytes`);
  const out = Buffer.allocUnsafe(2 + n + payload.length);
  out[0] = MSG_PEER_RELAY;
  out[1] = kind;
  if (typeof id === 'number') {
    if (n !== HANDLE_BYTES) throw new Error(`peer relay kind ${kind} takes a ${n}-byte id`);
    if (!Number.isInteger(id) || id < 0 || id > 0xffffffff) throw new Error('peer relay handle must be a u32');
    setU32(out, 2, id);
  } else {
    if (id.length !== n) throw new Error(`peer relay kind ${kind} takes a ${n}-byte id`);
    out.set(id, 2);
  }
  out.set(payload, 2 + n);
  return out;
}
