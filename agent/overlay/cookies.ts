// Return-routability cookies for overlay requests (the idea of DTLS's HelloVerifyRequest, IKEv2's and
// WireGuard's cookies), stateless on the answering side:
//
//   requester ── request, no cookie, padded (PADDING) ───────────────> responder
//             <── ERROR COOKIE_REQUIRED + COOKIE = MAC(secret, requester's endpoint), never larger ──
//   requester ── the same request, COOKIE inside the signed part ─────> responder: MAC matches `from`,
//                                                                       signature holds -> answered, and
//                                                                       the sender proved its key there
//
// cookie = first 16 bytes of HMAC-SHA256(secret, "ip|port" as the responder sees it). The secret is drawn
// at random and replaced every OVERLAY_COOKIE_ROTATE_MS; the previous one is still accepted. Nothing is kept
// per requester, so a spoofed-source flood costs the responder a MAC and an answer no larger than the
// request, sent to the spoofed address: no amplification, no state.
//
// The jar is the requester's side: the last cookie each endpoint gave us, bounded (oldest forgotten).
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { OVERLAY_COOKIE_BYTES, OVERLAY_COOKIE_JAR_MAX, OVERLAY_COOKIE_ROTATE_MS } from '../base/constants.js';
import { endpointKey, type Endpoint } from '../conn/socket.js';

export class CookieMinter {
  private current = randomBytes(32);
  private previous = randomBytes(32);
  private rotatedAt: number;

  constructor(private readonly now: () => number, private readonly rotateMs = OVERLAY_COOKIE_ROTATE_MS) {
    this.rotatedAt = now();
  }

  mint(e: Endpoint): Uint8Array {
    this.rotate();
    return mac(this.current, e);
  }

  /** True if `cookie` is one we minted for `e` with the current or the previous secret. */
  check(e: Endpoint, cookie: Uint8Array | undefined): boolean {
    if (!cookie || cookie.length !== OVERLAY_COOKIE_BYTES) return false;
    this.rotate();
    return same(mac(this.current, e), cookie) || same(mac(this.previous, e), cookie);
  }

  private rotate(): void {
    const t = this.now();
    if (t - this.rotatedAt < this.rotateMs) return;
    // after a long pause both secrets are stale: nothing minted two periods ago is still good
    this.previous = t - this.rotatedAt < 2 * this.rotateMs ? this.current : randomBytes(32);
    this.current = randomBytes(32);
    this.rotatedAt = t;
  }
}

function mac(secret: Buffer, e: Endpoint): Uint8Array {
  return new Uint8Array(createHmac('sha256', secret).update(endpointKey(e)).digest().subarray(0, OVERLAY_COOKIE_BYTES));
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Cookies other nodes gave us, by their endpoint. */
export class CookieJar {
  private readonly cookies = new Map<string, Uint8Array>();

  constructor(private readonly max = OVERLAY_COOKIE_JAR_MAX) {}

  get(e: Endpoint): Uint8Array | undefined {
    return this.cookies.get(endpointKey(e));
  }

  set(e: Endpoint, cookie: Uint8Array): void {
    const k = endpointKey(e);
    this.cookies.delete(k);
    this.cookies.set(k, Uint8Array.from(cookie));
    if (this.cookies.size > this.max) this.cookies.delete(this.cookies.keys().next().value!);
  }

  get size(): number {
    return this.cookies.size;
  }
}
