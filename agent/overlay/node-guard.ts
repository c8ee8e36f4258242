// What every overlay message must show before it may change anything (routing table, endpoints, stored
// data, forwarding state), in the order that makes a forged one cheapest to drop:
//
//   request from `from`   COOKIE minted for `from`? ─ no ─> answer COOKIE_REQUIRED (never larger than the
//                         │                                  request: requests without a cookie are padded;
//                         │                                  within the address's byte budget)
//                         ├─ per-source and total verification budget ─ over ─> dropped
//                         ├─ SIGNATURE by SENDER's key ─ bad ─> dropped
//                         └─ NodeID puzzle of SENDER ─ fails ─> answered, but never admitted as a contact
//   answer from `from`    a request of ours in flight to `from` with that transaction id? (else dropped,
//                         before any crypto) ─> budget ─> SIGNATURE ─> may enter the table at `from`
//
// What that proves: a verified request was written by the key's holder (signature) after it received a
// datagram we sent to `from` (the cookie, which the signature covers): the key lives at `from`, and an
// off-path attacker can neither claim another node's key nor have us answer a spoofed address with more
// than it sent. A verified answer was written by the key's holder for our random 64-bit transaction id,
// which only a receiver of our request to `from` can know. Nothing weaker (a claimed SENDER, a Via entry,
// a contact in someone's answer) ever puts a node in the table or moves its endpoint.
import {
  OVERLAY_UNVERIFIED_BURST_BYTES, OVERLAY_UNVERIFIED_RATE_BYTES, OVERLAY_VERIFY_BURST_PER_SOURCE,
  OVERLAY_VERIFY_RATE_PER_SOURCE, OVERLAY_VERIFY_RATE_TOTAL, FORWARD_RATE_SOURCES_MAX, PUZZLE_DEFAULT_DIFFICULTY,
} from '../base/constants.js';
import { ed25519Verify } from '../base/ed25519.js';
import { PerSourceRateLimit } from '../conn/rate-limit.js';
import type { Endpoint } from '../conn/socket.js';
import { verifyOverlayMessage, type OverlayMessage } from './codec.js';
import { CookieJar, CookieMinter } from './cookies.js';
import { verifyPuzzle } from './puzzle.js';

export type RequestVerdict =
  /** Signed, from where the cookie says: act on it; `admit` if its NodeID puzzle holds too. */
  | { ok: true; admit: boolean }
  /** No valid cookie: answer COOKIE_REQUIRED with `cookie`, and nothing else. */
  | { ok: false; cookie: Uint8Array }
  /** Forged or over budget: drop (counted under `reason`). */
  | { ok: false; cookie?: undefined; reason: string };

export interface GuardOptions {
  now: () => number;
  puzzleDifficulty?: number;
  reject: (reason: string) => void;
}

export class NodeGuard {
  /** Cookies we mint for requesters. */
  readonly minter: CookieMinter;
  /** Cookies responders minted for us. */
  readonly jar = new CookieJar();
  private readonly perSource: PerSourceRateLimit;
  private readonly total: PerSourceRateLimit;
  private readonly unverifiedBytes: PerSourceRateLimit;
  private readonly difficulty: number;

  constructor(private readonly o: GuardOptions) {
    this.minter = new CookieMinter(o.now);
    this.difficulty = o.puzzleDifficulty ?? PUZZLE_DEFAULT_DIFFICULTY;
    this.perSource = new PerSourceRateLimit({
      ratePerSecond: OVERLAY_VERIFY_RATE_PER_SOURCE, burst: OVERLAY_VERIFY_BURST_PER_SOURCE,
      maxSources: FORWARD_RATE_SOURCES_MAX, now: o.now,
    });
    this.total = new PerSourceRateLimit({
      ratePerSecond: OVERLAY_VERIFY_RATE_TOTAL, burst: OVERLAY_VERIFY_RATE_TOTAL, maxSources: 1, now: o.now,
    });
    this.unverifiedBytes = new PerSourceRateLimit({
      ratePerSecond: OVERLAY_UNVERIFIED_RATE_BYTES, burst: OVERLAY_UNVERIFIED_BURST_BYTES, maxSources: FORWARD_RATE_SOURCES_MAX, now: o.now,
    });
  }

  /** May `bytes` more go to `to`, an address that has not shown our cookie (its byte budget)? */
  mayAnswerUnverified(to: Endpoint, bytes: number): boolean {
    return this.unverifiedBytes.allowFrom(to.address, bytes);
  }

  /** A request that arrived straight from its sender (or, routed, at its first forwarder). */
  request(b: Uint8Array, m: OverlayMessage, from: Endpoint): RequestVerdict {
    if (!this.minter.check(from, m.cookie)) {
      this.o.reject(m.cookie ? 'cookie-invalid' : 'cookie-missing');
      return { ok: false, cookie: this.minter.mint(from) };
    }
    if (!this.signed(b, m, from)) return { ok: false, reason: 'dropped' };
    const admit = verifyPuzzle(m.sender.publicKey, m.sender.puzzleNonce ?? 0n, this.difficulty);
    if (!admit) this.o.reject('sender-no-puzzle');
    return { ok: true, admit };
  }

  /** An answer to a request of ours (the caller checked one is in flight to `from`). */
  answer(b: Uint8Array, m: OverlayMessage, from: Endpoint): boolean {
    return this.signed(b, m, from);
  }

  /** Whether a verified sender's NodeID puzzle holds (what a contact needs besides its signature). */
  puzzleHolds(m: OverlayMessage): boolean {
    return verifyPuzzle(m.sender.publicKey, m.sender.puzzleNonce ?? 0n, this.difficulty);
  }

  private signed(b: Uint8Array, m: OverlayMessage, from: Endpoint): boolean {
    if (!this.perSource.allowFrom(from.address) || !this.total.allow('')) { this.o.reject('verify-rate-limited'); return false; }
    if (!verifyOverlayMessage(b, m, ed25519Verify)) { this.o.reject('bad-signature'); return false; }
    return true;
  }
}
