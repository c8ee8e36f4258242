// In-memory twin of NativeTap: tests play the kernel by injecting frames the "OS" sends and by reading
// back the frames the agent wrote. It keeps the native contract that matters to consumers: a batch's
// buffer is reused (and scribbled over) by the next batch, so code that keeps a frame without copying
// it fails here just as it would against the real device.

import { DEFAULT_TAP_MTU, TAP_READ_BATCH } from '../base/constants.js';
import type { FrameBatch, TapDevice, TapStats } from './device.js';
import { tapSlotSize } from './native-tap.js';

export interface MemoryTapOptions {
  name?: string;
  mtu?: number;
  /** MAC of the "kernel" side; defaults to a locally administered 02:00:00:00:00:01. */
  mac?: Uint8Array;
}

/** What overwrites a reused buffer before the next batch: stale reads then show up as 0xEE bytes. */
const POISON = 0xee;

export class MemoryTap implements TapDevice {
  readonly name: string;
  readonly mtu: number;
  readonly mac: Uint8Array;
  readonly stats: TapStats = { rxFrames: 0, rxBatches: 0, txFrames: 0, txDropped: 0 };
  /** Copies of every frame the agent wrote, in order. */
  readonly written: Buffer[] = [];
  /** How many more frames write() should drop, as a full kernel queue would (counted in txDropped). */
  dropNextWrites = 0;
  private buf: Buffer;
  private offsets = new Uint32Array(TAP_READ_BATCH);
  private lengths = new Uint32Array(TAP_READ_BATCH);
  private used = 0;
  private onBatch: ((batch: FrameBatch) => void) | undefined;
  private writeHooks: ((frames: Buffer[]) => void)[] = [];
  private closed = false;

  constructor(opts: MemoryTapOptions = {}) {
    this.name = opts.name ?? 'memtap0';
    this.mtu = opts.mtu ?? DEFAULT_TAP_MTU;
    this.mac = Uint8Array.from(opts.mac ?? [0x02, 0, 0, 0, 0, 0x01]);
    if (this.mac.length !== 6) throw new RangeError('MAC must be 6 bytes');
    this.buf = Buffer.alloc(tapSlotSize(this.mtu) * TAP_READ_BATCH);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  start(onBatch: (batch: FrameBatch) => void): void {
    if (this.closed) throw new Error(`TAP ${this.name} is closed`);
    if (this.onBatch) throw new Error(`TAP ${this.name} already started`);
    this.onBatch = onBatch;
  }

  /** The kernel sends these frames: they are copied into the shared buffer and delivered as one batch,
   *  synchronously. Unlike the native device the batch may exceed TAP_READ_BATCH frames. */
  inject(frames: readonly Uint8Array[]): void {
    if (this.closed) throw new Error(`TAP ${this.name} is closed`);
    if (!this.onBatch) throw new Error(`TAP ${this.name}: inject() before start()`);
    if (frames.length === 0) return;
    const total = frames.reduce((n, f) => n + f.length, 0);
    if (total > this.buf.length) this.buf = Buffer.alloc(total);
    if (frames.length > this.offsets.length) {
      this.offsets = new Uint32Array(frames.length);
      this.lengths = new Uint32Array(frames.length);
    }
    this.buf.fill(POISON, 0, this.used);
    let at = 0;
    frames.forEach((f, i) => {
      this.buf.set(f, at);
      this.offsets[i] = at;
      this.lengths[i] = f.length;
      at += f.length;
    });
    this.used = at;
    this.stats.rxBatches++;
    this.stats.rxFrames += frames.length;
    this.onBatch({ buf: this.buf, offsets: this.offsets, lengths: this.lengths, count: frames.length });
  }

  write(frames: readonly Uint8Array[]): void {
    if (frames.length === 0) return;
    const kept: Buffer[] = [];
    for (const f of frames) {
      if (this.closed || this.dropNextWrites > 0) {
        if (!this.closed) this.dropNextWrites--;
        this.stats.txDropped++;
        continue;
      }
      kept.push(Buffer.from(f)); // the caller may reuse its buffers as soon as we return
    }
    if (kept.length === 0) return;
    this.stats.txFrames += kept.length;
    this.written.push(...kept);
    for (const hook of this.writeHooks) hook(kept);
  }

  /** Calls cb with copies of the frames of every write() batch that got through, after recording them. */
  onWrite(cb: (frames: Buffer[]) => void): void {
    this.writeHooks.push(cb);
  }

  /** Returns and forgets the frames written so far. */
  takeWritten(): Buffer[] {
    return this.written.splice(0, this.written.length);
  }

  close(): void {
    this.closed = true;
    this.onBatch = undefined;
  }
}
