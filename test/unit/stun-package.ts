// The `stun` package (CommonJS, no type declarations), typed for the tests that check the agent's STUN and
// TURN codec against an implementation it shares no code with.
import { createHmac } from 'node:crypto';
import { createRequire } from 'node:module';

/** A message being built by the `stun` package. */
export interface StunOutgoing {
  addAttribute(type: number, ...args: unknown[]): unknown;
  /** HMAC-SHA1 over the message so far; `key` is the HMAC key as is (a Buffer for long-term credentials). */
  addMessageIntegrity(key: Buffer | string): boolean;
  addFingerprint(): boolean;
  toBuffer(): Buffer;
  readonly transactionId: Buffer;
}
export interface StunDecoded {
  readonly type: number;
  readonly transactionId: Buffer;
  getAttribute(type: number): { value: unknown } | undefined;
}
export interface StunPackage {
  createMessage(type: number, transaction?: Buffer): StunOutgoing;
  decode(b: Buffer): StunDecoded;
  validateMessageIntegrity(msg: StunDecoded, key: Buffer | string): boolean;
  constants: Record<string, number>;
}
export const stunPackage = createRequire(import.meta.url)('stun') as StunPackage;

/** MESSAGE-INTEGRITY checked over the bytes as received (RFC 8489 section 14.5), for messages that carry
 *  attributes the package does not know: its own check re-encodes only the attributes it understood. */
export function integrityHolds(raw: Buffer, key: Buffer | string): boolean {
  for (let off = 20; off + 4 <= raw.length;) {
    const type = raw.readUInt16BE(off), len = raw.readUInt16BE(off + 2);
    if (type === 0x0008) {
      if (len !== 20 || off + 24 > raw.length) return false;
      const head = Buffer.from(raw.subarray(0, off));
      head.writeUInt16BE(off + 24 - 20, 2);
      return createHmac('sha1', key).update(head).digest().equals(raw.subarray(off + 4, off + 24));
    }
    off += 4 + ((len + 3) & ~3);
  }
  return false;
}
