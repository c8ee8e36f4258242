// The `stun` package (CommonJS, no type declarations), typed for the tests that check the agent's STUN and
// TURN codec against an implementation it shares no code with.
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
