// Micro-benchmark of the tunnel data path: 1400-byte packets from one Tunnels to another over a
// MemoryNetwork (so: encrypt, datagram copy, parse, replay check, decrypt, deliver), plus the bare
// Session encrypt+decrypt for comparison. Run: node dist/scripts/bench-tunnel.js [packets]
import { pathToFileURL } from 'node:url';
import pino from 'pino';
import { ed25519 } from '@noble/curves/ed25519.js';
import { Tunnels } from '../agent/tunnel/tunnels.js';
import { MemoryNetwork } from '../agent/conn/memory-socket.js';
import { Session } from '../agent/tunnel/session.js';
import { parseTransport } from '../agent/tunnel/messages.js';

export interface TunnelBenchResult {
  packets: number;
  packetBytes: number;
  tunnelPacketsPerSec: number;
  tunnelMbitPerSec: number;
  sessionPacketsPerSec: number;
  handshakeMs: number;
}

export async function benchTunnel(packets = 200_000, packetBytes = 1400): Promise<TunnelBenchResult> {
  const net = new MemoryNetwork();
  const log = pino({ level: 'silent' });
  const ka = ed25519.utils.randomSecretKey(), kb = ed25519.utils.randomSecretKey();
  const sa = net.socket('10.0.0.1', 4500), sb = net.socket('10.0.0.2', 4500);
  let received = 0;
  let done: () => void = () => {};
  const a = new Tunnels({ privateKey: ka, socket: sa, logger: log, receiver: { handlePacket: () => {} } });
  const b = new Tunnels({
    privateKey: kb, socket: sb, logger: log,
    receiver: { handlePacket: () => { if (++received === target) done(); } },
  });
  sa.onMessage((m, f) => a.handleDatagram(m, f));
  sb.onMessage((m, f) => b.handleDatagram(m, f));
  const ab = a.addPeer(ed25519.getPublicKey(kb), sb.local);
  b.addPeer(ed25519.getPublicKey(ka), sa.local);
  const payload = Buffer.alloc(packetBytes, 0x5a);

  let target = 1;
  const t0 = performance.now();
  await new Promise<void>((r) => { done = r; a.send(ab, payload); });
  const handshakeMs = performance.now() - t0;

  // Batches keep the in-flight queue bounded like a real socket's would be.
  received = 0;
  target = packets;
  const batch = 256;
  const t1 = performance.now();
  await new Promise<void>((r) => {
    done = r;
    let sent = 0;
    const pump = () => {
      for (let i = 0; i < batch && sent < packets; i++, sent++) a.send(ab, payload);
      if (sent < packets) setImmediate(pump);
    };
    pump();
  });
  const secs = (performance.now() - t1) / 1000;
  a.close();
  b.close();

  // Bare session: encrypt + parse + decrypt, no network.
  const keys = { send: new Uint8Array(32).fill(1), recv: new Uint8Array(32).fill(1) };
  const tx = new Session(keys, 1, 2, true, 0), rx = new Session(keys, 2, 1, false, 0);
  const n2 = Math.min(packets, 200_000);
  const t2 = performance.now();
  for (let i = 0; i < n2; i++) {
    const pkt = tx.encrypt(payload);
    const t = parseTransport(pkt)!;
    if (!(rx.decrypt(pkt, t.counter) instanceof Buffer)) throw new Error('decrypt failed');
  }
  const secs2 = (performance.now() - t2) / 1000;

  return {
    packets, packetBytes,
    tunnelPacketsPerSec: Math.round(packets / secs),
    tunnelMbitPerSec: Math.round((packets * packetBytes * 8) / secs / 1e6),
    sessionPacketsPerSec: Math.round(n2 / secs2),
    handshakeMs: Math.round(handshakeMs * 100) / 100,
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const n = Number(process.argv[2] ?? 200_000);
  console.log(JSON.stringify(await benchTunnel(n), null, 2));
}
