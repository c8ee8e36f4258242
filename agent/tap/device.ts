// The TAP edge of the agent. The daemon talks to a TapDevice; the native one (native-tap.ts) moves
// frames to and from the kernel in batches, the in-memory twin (memory-tap.ts) lets tests play kernel.

/** A batch of Ethernet frames read from the device. Frame i is buf[offsets[i] .. offsets[i]+lengths[i]).
 *  The buffer is reused for the next batch: a consumer that keeps a frame must copy it. */
export interface FrameBatch {
  readonly buf: Buffer;
  readonly offsets: Uint32Array;
  readonly lengths: Uint32Array;
  readonly count: number;
}

export interface TapStats {
  rxFrames: number;
  rxBatches: number;
  txFrames: number;
  /** Frames the kernel would not take (queue full / device down): dropped, never retried. */
  txDropped: number;
}

export interface TapDevice {
  readonly name: string;
  readonly mtu: number;
  /** MAC address of the kernel's side of the device: the destination of frames we write. */
  readonly mac: Uint8Array;
  readonly stats: TapStats;
  /** Begin delivering frames; called once. */
  start(onBatch: (batch: FrameBatch) => void): void;
  /** Write whole Ethernet frames, as one batch. The caller may reuse the buffers once this returns. */
  write(frames: readonly Uint8Array[]): void;
  /** Stop reading and release (and for the native device, delete) the interface. */
  close(): void;
}
