// Cookies and per-source limits for handshakes under load (WireGuard paper section 5.3, wireguard-go's
// device/cookie.go and ratelimiter.go). Wire layouts (0xC3, mac2): agent/tunnel/messages.ts.
//
//   responder (CookieChecker): cookie = MAC(secret, source IP:port), the secret random and replaced every
//     COOKIE_REFRESH_MS; mac2 valid = MAC(cookie, initiation up to mac2). Under load an initiation without
//     a valid mac2 is answered with a cookie reply: the cookie sealed (XChaCha20-Poly1305, xchacha.ts)
//     under BLAKE2s("cookie--" || our static key), with the initiation's mac1 as associated data.
//   initiator (openCookieReply): the reply must answer our pending initiation (its index, its mac1);
//     the cookie is kept for COOKIE_REFRESH_MS and the next initiation carries mac2.
//   SourceLimiter: a token bucket per IPv4 address or IPv6 /64, consulted only for sources that showed a
//     valid mac2 (so they receive where they send from) and before any X25519.
//
// A cookie costs the responder two BLAKE2s and one small AEAD, no state: spoofed floods make it send
// 64-byte replies to 188-byte initiations, never more than they sent.

import { randomBytes } from 'node:crypto';
import { COOKIE_REFRESH_MS, HANDSHAKE_SOURCE_BURST, HANDSHAKE_SOURCE_PER_SECOND, HANDSHAKE_SOURCES_MAX } from '../base/constants.js';
import type { Endpoint } from '../conn/socket.js';
import { sourceKey } from '../conn/rate-limit.js';
import {
  COOKIE_LEN, COOKIE_NONCE_LEN, INIT_MAC1_OFF, INIT_MAC2_OFF, cookieKey, marshalCookieReply, verifyMacAt,
  type CookieReply,
} from './messages.js';
import { xchachaOpen, xchachaSealInto } from './xchacha.js';
import { Blake2sMac } from './blake2s-mac.js';

/** A source as bytes for its cookie: "address|port" (at most 45 + 1 + 5 bytes), written without allocating. */
const SOURCE = new Uint8Array(64);
const COOKIE = new Uint8Array(COOKIE_LEN);
const EMPTY = new Uint8Array(0);
const NONCE_POOL = 256;

function sourceBytes(from: Endpoint): number {
  const a = from.address;
  let n = 0;
  for (let i = 0; i < a.length && n < 56; i++) SOURCE[n++] = a.charCodeAt(i) & 0xff;
  SOURCE[n++] = 0x7c; // '|'
  SOURCE[n++] = from.port >>> 8;
  SOURCE[n++] = from.port & 0xff;
  return n;
}

export class CookieChecker {
  private secret = new Blake2sMac(randomBytes(32));
  private pool = new Uint8Array(0);
  private poolAt = 0;
  private secretAt: number;
  private readonly sealKey: Uint8Array;

  constructor(ownStaticPublic: Uint8Array, now: number) {
    this.sealKey = cookieKey(ownStaticPublic);
    this.secretAt = now;
  }

  /** Whether the initiation's mac2 is what a cookie we handed `from` makes. */
  mac2Valid(msg: Uint8Array, from: Endpoint, now: number): boolean {
    let zero = true;
    for (let i = INIT_MAC2_OFF; i < msg.length; i++) if (msg[i] !== 0) { zero = false; break; }
    if (zero) return false; // no cookie yet: skip the hash
    return verifyMacAt(this.cookieFor(from, now), msg, INIT_MAC2_OFF);
  }

  /** Whether an initiation's mac1 holds (the gate's first check, on every datagram). */
  static mac1(key: Blake2sMac, msg: Uint8Array): boolean {
    return key.verifyAt(msg, INIT_MAC1_OFF);
  }

  /** The 0xC3 answer to an initiation (its sender index and bytes) from `from`. */
  reply(msg: Uint8Array, senderIndex: number, from: Endpoint, now: number): Buffer {
    const b = marshalCookieReply({ receiverIndex: senderIndex, nonce: this.nonce(), encryptedCookie: EMPTY });
    xchachaSealInto(this.sealKey, b.subarray(8, 32), this.cookieFor(from, now), msg.subarray(INIT_MAC1_OFF, INIT_MAC2_OFF), b, 32);
    return b;
  }

  /** 24 random bytes, cut from a pool: one getrandom() per NONCE_POOL replies instead of one each. */
  private nonce(): Uint8Array {
    if (this.poolAt + COOKIE_NONCE_LEN > this.pool.length) { this.pool = randomBytes(NONCE_POOL * COOKIE_NONCE_LEN); this.poolAt = 0; }
    const n = this.pool.subarray(this.poolAt, this.poolAt + COOKIE_NONCE_LEN);
    this.poolAt += COOKIE_NONCE_LEN;
    return n;
  }

  /** MAC(secret, source): valid only until the next call (a shared scratch buffer). */
  private cookieFor(from: Endpoint, now: number): Uint8Array {
    if (now - this.secretAt >= COOKIE_REFRESH_MS) {
      this.secret = new Blake2sMac(randomBytes(32));
      this.secretAt = now;
    }
    this.secret.macInto(SOURCE, sourceBytes(from), COOKIE);
    return COOKIE;
  }
}

/** The cookie in a reply to our initiation whose mac1 was `mac1Sent`, sealed by the holder of the
 *  static key whose cookieKey() is `sealKey`; undefined if it does not open. */
export function openCookieReply(r: CookieReply, sealKey: Uint8Array, mac1Sent: Uint8Array): Uint8Array | undefined {
  const cookie = xchachaOpen(sealKey, r.nonce, r.encryptedCookie, mac1Sent);
  return cookie && cookie.length === COOKIE_LEN ? new Uint8Array(cookie) : undefined;
}

interface Bucket { tokens: number; at: number }

/** Token buckets by source (IPv4 address, IPv6 /64), least recently seen forgotten first. */
export class SourceLimiter {
  private readonly buckets = new Map<string, Bucket>();

  allow(address: string, now: number): boolean {
    const key = sourceKey(address);
    let b = this.buckets.get(key);
    if (b) {
      this.buckets.delete(key); // re-inserted below: Map order is recency order
      b.tokens = Math.min(HANDSHAKE_SOURCE_BURST, b.tokens + ((now - b.at) / 1000) * HANDSHAKE_SOURCE_PER_SECOND);
      b.at = now;
    } else {
      if (this.buckets.size >= HANDSHAKE_SOURCES_MAX) this.buckets.delete(this.buckets.keys().next().value!);
      b = { tokens: HANDSHAKE_SOURCE_BURST, at: now };
    }
    this.buckets.set(key, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  get size(): number { return this.buckets.size; }
}

export { sourceKey } from '../conn/rate-limit.js';
