// Frames bound for the TAP are built in preallocated slots and handed to the device as one batch,
// flushed once per event-loop turn (setImmediate runs after libuv has drained the socket's ready
// datagrams), or at once when the slots run out. One write call per batch is what makes the native
// device cheap; building in place saves a Buffer per packet.
import type { TapDevice } from './device.js';

const ETH_HEADER_LEN = 14;

export class FrameWriter {
  private readonly slots: Buffer[];
  private readonly pending: Buffer[] = [];
  private scheduled = false;
  private readonly header: Buffer;

  constructor(private readonly tap: TapDevice, srcMac: Uint8Array, slotCount = 64) {
    const slotSize = tap.mtu + ETH_HEADER_LEN;
    const arena = Buffer.alloc(slotSize * slotCount);
    this.slots = [];
    for (let i = 0; i < slotCount; i++) this.slots.push(arena.subarray(i * slotSize, (i + 1) * slotSize));
    // dst = the kernel side's MAC, src = the virtual MAC every overlay peer sits behind.
    this.header = Buffer.alloc(ETH_HEADER_LEN);
    this.header.set(tap.mac, 0);
    this.header.set(srcMac, 6);
  }

  /** Queue an IP packet; it gets the Ethernet header of `ethertype`. False if it does not fit the MTU. */
  writeIpPacket(packet: Uint8Array, ethertype: number): boolean {
    if (packet.length > this.tap.mtu) return false;
    const slot = this.slots[this.pending.length]!;
    this.header.copy(slot, 0, 0, 12);
    slot.writeUInt16BE(ethertype, 12);
    slot.set(packet, ETH_HEADER_LEN);
    this.push(slot.subarray(0, ETH_HEADER_LEN + packet.length));
    return true;
  }

  /** Queue a whole frame the caller built (ARP/ND answers); it is copied. */
  writeFrame(frame: Uint8Array): void {
    const slot = this.slots[this.pending.length]!;
    const n = Math.min(frame.length, slot.length);
    slot.set(frame.subarray(0, n), 0);
    this.push(slot.subarray(0, n));
  }

  flush(): void {
    if (this.pending.length === 0) return;
    this.tap.write(this.pending);
    this.pending.length = 0;
  }

  private push(frame: Buffer): void {
    this.pending.push(frame);
    if (this.pending.length === this.slots.length) { this.flush(); return; }
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => { this.scheduled = false; this.flush(); });
    }
  }
}
