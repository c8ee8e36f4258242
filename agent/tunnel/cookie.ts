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
import { isIPv4 } from 'node:net';
import { COOKIE_REFRESH_MS, HANDSHAKE_SOURCE_BURST, HANDSHAKE_SOURCE_PER_SECOND, HANDSHAKE_SOURCES_MAX } from '../base/constants.js';
import type { Endpoint } from '../conn/socket.js';
import {
  COOKIE_LEN, COOKIE_NONCE_LEN, INIT_MAC1_OFF, INIT_MAC2_OFF, computeMac1, cookieKey, marshalCookieReply, verifyMacAt,
  type CookieReply,
} from './messages.js';
import { xchachaOpen, xchachaSeal } from './xchacha.js';

const utf8 = new TextEncoder();

export class CookieChecker {
  private secret = randomBytes(32);
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

  /** The 0xC3 answer to an initiation (its sender index and bytes) from `from`. */
  reply(msg: Uint8Array, senderIndex: number, from: Endpoint, now: number): Buffer {
    const nonce = randomBytes(COOKIE_NONCE_LEN);
    const encryptedCookie = xchachaSeal(this.sealKey, nonce, this.cookieFor(from, now), msg.subarray(INIT_MAC1_OFF, INIT_MAC2_OFF));
    return marshalCookieReply({ receiverIndex: senderIndex, nonce, encryptedCookie });
  }

  private cookieFor(from: Endpoint, now: number): Uint8Array {
    if (now - this.secretAt >= COOKIE_REFRESH_MS) {
      this.secret = randomBytes(32);
      this.secretAt = now;
    }
    return computeMac1(this.secret, utf8.encode(`${from.address}|${from.port}`));
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

/** An IPv4 address as it is (IPv4-mapped IPv6 included); an IPv6 address by its /64, which one host or
 *  one site holds whole, so a host cannot multiply its limit by changing the low 64 bits. */
export function sourceKey(address: string): string {
  const a = address.split('%')[0]!.toLowerCase();
  const mapped = a.startsWith('::ffff:') ? a.slice(7) : a;
  if (isIPv4(mapped)) return mapped;
  const [head = '', tail] = a.split('::');
  const hi = head ? head.split(':') : [];
  const lo = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? hi : [...hi, ...Array<string>(Math.max(0, 8 - hi.length - lo.length)).fill('0'), ...lo];
  return groups.slice(0, 4).map((g) => parseInt(g || '0', 16).toString(16)).join(':') + '::/64';
}
