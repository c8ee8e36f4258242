// Byte strings: hex text and equality, the one copy every floor uses.

/** Lowercase hex of the bytes (a view's own bytes, not its whole buffer). */
export function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

/** Exactly `bytes` bytes from hex text (either case), else undefined. */
export function fromHex(s: string, bytes: number): Uint8Array | undefined {
  if (s.length !== bytes * 2 || !/^[0-9a-fA-F]+$/.test(s)) return undefined;
  return new Uint8Array(Buffer.from(s, 'hex'));
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && equalAt(a, 0, b, 0, a.length);
}

/** a[aOff .. aOff+n) equals b[bOff .. bOff+n): for packet paths, which compare in place instead of taking
 *  subarrays (each one an allocation). False if either range runs past its array. */
export function equalAt(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number, n: number): boolean {
  if (aOff < 0 || bOff < 0 || aOff + n > a.length || bOff + n > b.length) return false;
  for (let i = 0; i < n; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}
