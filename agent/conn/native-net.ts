// Loader for the idloc_net N-API addon (native-helpers/udp.c + aead.c): batched UDP and
// ChaCha20-Poly1305 on Node's own OpenSSL. Optional by design: callers fall back to node:dgram and
// node:crypto when it is not built (another OS, a source checkout without a compiler).

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Opaque per-key AEAD context (an N-API external). */
export type AeadHandle = { readonly __aead: unique symbol };

/** The addon's surface; see the C files for the buffer layouts. */
export interface NetAddon {
  aeadCreate(key: Uint8Array): AeadHandle;
  /** Returns bytes written at out[outOffset]: plaintext length + 16. */
  aeadSeal(h: AeadHandle, nonce: number | Uint8Array, plaintext: Uint8Array, out: Uint8Array, outOffset: number, aad?: Uint8Array): number;
  /** Returns the plaintext length, or -1 if the input does not authenticate (or is shorter than a tag). */
  aeadOpen(h: AeadHandle, nonce: number | Uint8Array, ciphertext: Uint8Array, out: Uint8Array, outOffset: number, aad?: Uint8Array): number;
  udpOpen(
    address: string, port: number,
    recvBuf: Uint8Array, recvMeta: Uint32Array, recvSlots: number, slotSize: number,
    sendBuf: Uint8Array, sendMeta: Uint32Array, sendSlots: number,
    stats: Float64Array, callback: (count: number) => void,
  ): { id: number; address: string; port: number };
  /** Sends send-meta entries 0..count-1; returns how many the kernel took (the rest are in stats). */
  udpSend(id: number, count: number): number;
  udpClose(id: number): void;
}

const ADDON_REL = join('native-helpers', 'build', 'Release', 'idloc_net.node');

let cached: NetAddon | null | undefined;

/** The addon, or undefined when it is not built. IDLOC_NO_NATIVE_NET=1 forces the fallbacks (tests, A/B runs).
 *  Walks up from this file so it works from dist/agent/nat (compiled) as well as agent/nat (source). */
export function loadNetAddon(): NetAddon | undefined {
  if (cached !== undefined) return cached ?? undefined;
  cached = null;
  if (process.env.IDLOC_NO_NATIVE_NET === '1') return undefined;
  for (let dir = dirname(fileURLToPath(import.meta.url)), i = 0; i < 5; i++, dir = dirname(dir)) {
    const candidate = join(dir, ADDON_REL);
    if (existsSync(candidate)) {
      cached = createRequire(import.meta.url)(candidate) as NetAddon;
      break;
    }
  }
  return cached ?? undefined;
}
