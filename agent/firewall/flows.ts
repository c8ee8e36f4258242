// The flow table: the flows this host started (and the fragmented datagrams it let in), so that their
// replies pass inbound with no rule. Fixed capacity, typed arrays, no allocation after construction.
//
// A flow's key: (peer id, kind, a 32-bit word). The peer id is the firewall's number for the peer (the
// tunnel already tied the packet's addresses to that peer, so addresses need not be part of the key); the
// kind is the protocol and IP version; the word is (local port << 16 | remote port) for TCP/UDP, the echo
// identifier for pings, the IP identification for fragments.
//
// Open addressing: a key lives in one of FW_FLOW_PROBE slots from its hash on, and every lookup looks at
// all of them (a slot can be overwritten by another key at any time, so there are no tombstones and an
// empty slot proves nothing). Insertion reuses the key's slot, else takes an empty or expired one, else
// evicts the slot nearest its expiry: a full table always admits the new flow, at the cost of the one
// closest to lapsing anyway.
import { FW_FLOW_CAPACITY, FW_FLOW_PROBE } from '../base/constants.js';

export const KIND_TCP = 1;
export const KIND_UDP = 2;
export const KIND_ECHO = 3;
export const KIND_FRAG = 4;
/** Added to a kind for IPv6, so an IPv4 and an IPv6 flow with the same ports are two flows. */
export const KIND_V6 = 8;

export interface FlowTableStats {
  /** Flows recorded (new keys, not refreshes). */
  added: number;
  /** Flows still live that made room for a new one (the table was full around its slot). */
  evicted: number;
}

export class FlowTable {
  readonly stats: FlowTableStats = { added: 0, evicted: 0 };
  private readonly mask: number;
  private readonly peer: Uint32Array;
  private readonly word: Uint32Array;
  private readonly kind: Uint8Array;
  /** Per-kind state (TCP: opening/established/closing; UDP: replied or not), the caller's to interpret. */
  private readonly state: Uint8Array;
  private readonly expires: Float64Array;

  /** capacity: a power of two (FW_FLOW_CAPACITY unless a test wants a small table). */
  constructor(capacity = FW_FLOW_CAPACITY, private readonly probe = FW_FLOW_PROBE) {
    if (capacity < 1 || (capacity & (capacity - 1)) !== 0) throw new RangeError(`flow table capacity ${capacity} is not a power of two`);
    this.mask = capacity - 1;
    this.peer = new Uint32Array(capacity);
    this.word = new Uint32Array(capacity);
    this.kind = new Uint8Array(capacity);
    this.state = new Uint8Array(capacity);
    this.expires = new Float64Array(capacity);
    if (this.probe > capacity) this.probe = capacity;
  }

  get capacity(): number { return this.mask + 1; }

  /** The slot of a live flow with this key, or -1. */
  find(peer: number, kind: number, word: number, now: number): number {
    const w = word >>> 0;
    let i = hash(peer, kind, w) & this.mask;
    for (let n = 0; n < this.probe; n++, i = (i + 1) & this.mask) {
      if (this.peer[i] === peer && this.word[i] === w && this.kind[i] === kind && this.expires[i]! > now) return i;
    }
    return -1;
  }

  /** Record (or refresh) a flow: live until now + ttlMs, with `state`. Returns its slot. Never refuses. */
  upsert(peer: number, kind: number, word: number, state: number, now: number, ttlMs: number): number {
    const w = word >>> 0;
    const start = hash(peer, kind, w) & this.mask;
    let victim = -1;
    let victimExpires = Infinity;
    let i = start;
    for (let n = 0; n < this.probe; n++, i = (i + 1) & this.mask) {
      if (this.peer[i] === peer && this.word[i] === w && this.kind[i] === kind) {
        this.state[i] = state;
        this.expires[i] = now + ttlMs;
        return i;
      }
      const e = this.peer[i] === 0 ? -Infinity : this.expires[i]!;
      if (e < victimExpires) { victim = i; victimExpires = e; }
    }
    if (victimExpires > now) this.stats.evicted++;
    this.stats.added++;
    this.peer[victim] = peer;
    this.word[victim] = w;
    this.kind[victim] = kind;
    this.state[victim] = state;
    this.expires[victim] = now + ttlMs;
    return victim;
  }

  stateAt(slot: number): number { return this.state[slot]!; }

  /** Move a found flow to `state`, live until now + ttlMs. */
  update(slot: number, state: number, now: number, ttlMs: number): void {
    this.state[slot] = state;
    this.expires[slot] = now + ttlMs;
  }

  /** Drop every flow of a peer (it left): O(capacity), once per departure. */
  forgetPeer(peer: number): void {
    const p = this.peer;
    for (let i = 0; i <= this.mask; i++) if (p[i] === peer) { p[i] = 0; this.expires[i] = 0; }
  }

  /** Flows live at `now` (a scan: for status and tests, not the packet path). */
  live(now: number): number {
    let n = 0;
    for (let i = 0; i <= this.mask; i++) if (this.peer[i] !== 0 && this.expires[i]! > now) n++;
    return n;
  }
}

/** 32-bit mix of the key (multiply-xorshift, as murmur3's finaliser), so that neighbouring ports and
 *  peer ids spread over the table instead of piling into one probe window. */
function hash(peer: number, kind: number, word: number): number {
  let h = Math.imul(peer ^ (kind << 24), 0x9e3779b1) ^ word;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}
