// Independent packet builders and a reference checksum for the codec tests. Deliberately written
// differently from agent/idloc/checksum.ts (DataView, modulo arithmetic) so a shared bug cannot hide.

/** RFC 1071 checksum computed as "65535 minus the sum mod 65535" over the concatenated parts. */
export function refChecksum(...parts: Uint8Array[]): number {
  const all = Buffer.concat(parts.map((p) => Buffer.from(p)));
  const padded = all.length % 2 === 0 ? all : Buffer.concat([all, Buffer.alloc(1)]);
  const dv = new DataView(padded.buffer, padded.byteOffset, padded.length);
  let sum = 0;
  for (let i = 0; i < padded.length; i += 2) sum += dv.getUint16(i, false);
  // In ones' complement, a non-zero sum that is a multiple of 65535 is "negative zero" 0xffff.
  let folded = sum % 65535;
  if (folded === 0 && sum !== 0) folded = 65535;
  return 65535 - folded;
}

export function pseudoV4(src: Uint8Array, dst: Uint8Array, proto: number, len: number): Uint8Array {
  return Uint8Array.from([...src, ...dst, 0, proto, len >> 8, len & 0xff]);
}

export function pseudoV6(src: Uint8Array, dst: Uint8Array, nh: number, len: number): Uint8Array {
  return Uint8Array.from([...src, ...dst, (len >>> 24) & 0xff, (len >>> 16) & 0xff, (len >>> 8) & 0xff, len & 0xff, 0, 0, 0, nh]);
}

export const V4_HOST = Uint8Array.of(100, 64, 0, 1);
export const V4_PEER = Uint8Array.of(100, 100, 7, 9);
export const V6_HOST = Uint8Array.from(Buffer.from('fd1d10c0000000000000000000000001', 'hex'));
export const V6_PEER = Uint8Array.from(Buffer.from('fd1d10c0aabbccddeeff001122334455', 'hex'));

export interface V4Opts { src?: Uint8Array; dst?: Uint8Array; proto?: number; df?: boolean; fragOffset8?: number; mf?: boolean; ttl?: number; options?: Uint8Array }

/** IPv4 packet with a correct header checksum around `payload`. */
export function ipv4(payload: Uint8Array, o: V4Opts = {}): Buffer {
  const opts = o.options ?? new Uint8Array(0);
  const hl = 20 + opts.length;
  const b = Buffer.alloc(hl + payload.length);
  b[0] = 0x40 | (hl / 4);
  b.writeUInt16BE(b.length, 2);
  b.writeUInt16BE(0x1234, 4);
  b.writeUInt16BE((o.df ? 0x4000 : 0) | (o.mf ? 0x2000 : 0) | (o.fragOffset8 ?? 0), 6);
  b[8] = o.ttl ?? 64;
  b[9] = o.proto ?? 6;
  b.set(o.src ?? V4_HOST, 12);
  b.set(o.dst ?? V4_PEER, 16);
  b.set(opts, 20);
  b.writeUInt16BE(refChecksum(b.subarray(0, hl)), 10);
  b.set(payload, hl);
  return b;
}

export interface V6Opts { src?: Uint8Array; dst?: Uint8Array; nh?: number; hopLimit?: number }

export function ipv6(payload: Uint8Array, o: V6Opts = {}): Buffer {
  const b = Buffer.alloc(40 + payload.length);
  b[0] = 0x60;
  b.writeUInt16BE(payload.length, 4);
  b[6] = o.nh ?? 6;
  b[7] = o.hopLimit ?? 64;
  b.set(o.src ?? V6_HOST, 8);
  b.set(o.dst ?? V6_PEER, 24);
  b.set(payload, 40);
  return b;
}

/** TCP segment (checksum field zero) with the given flags and raw options (padded with EOL to 4). */
export function tcp(flags: number, options: Uint8Array, data: Uint8Array = new Uint8Array(0)): Buffer {
  const optLen = Math.ceil(options.length / 4) * 4;
  const b = Buffer.alloc(20 + optLen + data.length);
  b.writeUInt16BE(40000, 0);
  b.writeUInt16BE(22, 2);
  b.writeUInt32BE(0x01020304, 4);
  b[12] = ((20 + optLen) / 4) << 4;
  b[13] = flags;
  b.writeUInt16BE(64240, 14);
  b.set(options, 20);
  b.set(data, 20 + optLen);
  return b;
}

/** Writes the correct TCP/UDP/ICMPv6 checksum into the IP packet `p` (at the L4 checksum offset). */
export function fixL4Checksum(p: Buffer, csumOffInL4: number): void {
  const v = p[0]! >> 4;
  const hl = v === 4 ? (p[0]! & 15) * 4 : 40;
  const proto = v === 4 ? p[9]! : p[6]!;
  const l4 = p.subarray(hl, v === 4 ? p.readUInt16BE(2) : 40 + p.readUInt16BE(4));
  l4.writeUInt16BE(0, csumOffInL4);
  const ph = v === 4 ? pseudoV4(p.subarray(12, 16), p.subarray(16, 20), proto, l4.length)
    : pseudoV6(p.subarray(8, 24), p.subarray(24, 40), proto, l4.length);
  l4.writeUInt16BE(refChecksum(ph, l4), csumOffInL4);
}

/** Recomputes from scratch: true when the L4 checksum stored in IP packet `p` is right. */
export function l4ChecksumOk(p: Uint8Array, proto: number): boolean {
  const b = Buffer.from(p);
  const v = b[0]! >> 4;
  const hl = v === 4 ? (b[0]! & 15) * 4 : 40;
  const end = v === 4 ? b.readUInt16BE(2) : 40 + b.readUInt16BE(4);
  const l4 = b.subarray(hl, end);
  const ph = v === 4 ? pseudoV4(b.subarray(12, 16), b.subarray(16, 20), proto, l4.length)
    : pseudoV6(b.subarray(8, 24), b.subarray(24, 40), proto, l4.length);
  return refChecksum(ph, l4) === 0;
}

export function mac(s: string): Uint8Array {
  return Uint8Array.from(s.split(':').map((x) => parseInt(x, 16)));
}
