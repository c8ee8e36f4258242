// The real TAP device: a thin TypeScript shell over the idloc_tap N-API addon (native-helpers/tap.c).
// The addon reads up to TAP_READ_BATCH frames per wake-up into one preallocated buffer, so the JS side
// pays one callback per batch rather than one per frame; writes go down as one array per batch.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getSystemErrorName } from 'node:util';
import { TAP_MAX_FRAME, TAP_READ_BATCH, TAP_SLOT_SLACK } from '../base/constants.js';
import type { FrameBatch, TapDevice, TapStats } from './device.js';

/** The addon's surface, as implemented in native-helpers/tap.c. */
export interface TapAddon {
  open(name: string): { fd: number; name: string };
  setMtu(name: string, mtu: number): void;
  setUp(name: string): void;
  getMac(name: string): Buffer;
  startReading(
    fd: number,
    buf: Buffer,
    offsets: Uint32Array,
    lengths: Uint32Array,
    maxFrames: number,
    slotSize: number,
    callback: (count: number) => void,
  ): void;
  stopReading(fd: number): void;
  /** Returns how many frames the kernel took; the rest were dropped (queue full, device down). */
  writeFrames(fd: number, frames: readonly Uint8Array[]): number;
  close(fd: number): void;
}

const ADDON_REL = join('native-helpers', 'build', 'Release', 'idloc_tap.node');
const ETH_HEADER = 14;

let addon: TapAddon | undefined;

/** Finds and loads the addon. Walking up from this file finds the package root whether we run compiled
 *  (dist/agent/tap/native-tap.js, three levels down) or straight from source (agent/tap, two levels). */
export function loadTapAddon(): TapAddon {
  if (addon) return addon;
  const here = dirname(fileURLToPath(import.meta.url));
  const tried: string[] = [];
  for (let dir = here, i = 0; i < 5; i++, dir = dirname(dir)) {
    const candidate = join(dir, ADDON_REL);
    tried.push(candidate);
    if (existsSync(candidate)) {
      addon = createRequire(import.meta.url)(candidate) as TapAddon;
      return addon;
    }
  }
  throw new Error(`native TAP helper not built: run npm install (or npm run build:native); looked for ${tried.join(', ')}`);
}

/** Bytes per read slot: a whole frame at this MTU plus slack, rounded to 64, never above TAP_MAX_FRAME. */
export function tapSlotSize(mtu: number): number {
  return Math.min(TAP_MAX_FRAME, Math.ceil((mtu + ETH_HEADER + TAP_SLOT_SLACK) / 64) * 64);
}

export interface NativeTapOptions {
  /** Interface name; '' lets the kernel pick (tap0, tap1, ...). */
  name: string;
  mtu: number;
  /** Called once if reading fails for good (the device vanished, ...). Reading has stopped by then.
   *  Without it the error is thrown from the read callback, i.e. it becomes an uncaught exception:
   *  an agent without its TAP has nothing left to do. */
  onError?: (err: Error) => void;
}

export class NativeTap implements TapDevice {
  readonly stats: TapStats = { rxFrames: 0, rxBatches: 0, txFrames: 0, txDropped: 0 };
  readonly slotSize: number;
  private readonly buf: Buffer;
  private readonly offsets = new Uint32Array(TAP_READ_BATCH);
  private readonly lengths = new Uint32Array(TAP_READ_BATCH);
  private started = false;
  private closed = false;

  private constructor(
    private readonly lib: TapAddon,
    private readonly fd: number,
    readonly name: string,
    readonly mtu: number,
    readonly mac: Uint8Array,
    private readonly onError: ((err: Error) => void) | undefined,
  ) {
    this.slotSize = tapSlotSize(mtu);
    this.buf = Buffer.alloc(this.slotSize * TAP_READ_BATCH);
  }

  /** Creates the interface (it lives as long as this object's fd), sets its MTU and brings it up. */
  static open(opts: NativeTapOptions): NativeTap {
    if (!Number.isInteger(opts.mtu) || opts.mtu < 68 || opts.mtu > TAP_MAX_FRAME - ETH_HEADER) {
      throw new RangeError(`TAP MTU must be an integer in 68..${TAP_MAX_FRAME - ETH_HEADER}, got ${opts.mtu}`);
    }
    const lib = loadTapAddon();
    const { fd, name } = lib.open(opts.name);
    try {
      lib.setMtu(name, opts.mtu);
      lib.setUp(name);
      const mac = new Uint8Array(lib.getMac(name));
      return new NativeTap(lib, fd, name, opts.mtu, mac, opts.onError);
    } catch (err) {
      lib.close(fd); // deletes the half-configured interface
      throw err;
    }
  }

  start(onBatch: (batch: FrameBatch) => void): void {
    if (this.closed) throw new Error(`TAP ${this.name} is closed`);
    if (this.started) throw new Error(`TAP ${this.name} already started`);
    this.started = true;
    const { buf, offsets, lengths } = this;
    this.lib.startReading(this.fd, buf, offsets, lengths, TAP_READ_BATCH, this.slotSize, (count) => {
      if (count < 0) {
        this.readFailed(count);
        return;
      }
      this.stats.rxBatches++;
      this.stats.rxFrames += count;
      onBatch({ buf, offsets, lengths, count });
    });
  }

  write(frames: readonly Uint8Array[]): void {
    if (frames.length === 0) return;
    if (this.closed) {
      // Late writes during shutdown are not an error, just frames nobody can receive.
      this.stats.txDropped += frames.length;
      return;
    }
    const written = this.lib.writeFrames(this.fd, frames);
    this.stats.txFrames += written;
    this.stats.txDropped += frames.length - written;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.lib.close(this.fd); // also stops the reader
  }

  private readFailed(negErrno: number): void {
    // The addon has already stopped the reader; the fd stays open until close() so the name stays ours.
    const code = getSystemErrorName(negErrno);
    const err = Object.assign(new Error(`TAP ${this.name}: read failed: ${code}`), { errno: negErrno, code });
    if (this.onError) this.onError(err);
    else throw err;
  }
}
