import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TAP_READ_BATCH } from '../../agent/base/constants.js';
import type { FrameBatch } from '../../agent/tap/device.js';
import { MemoryTap } from '../../agent/tap/memory-tap.js';
import { tapSlotSize } from '../../agent/tap/native-tap.js';

const frameOf = (b: FrameBatch, i: number): Buffer => b.buf.subarray(b.offsets[i]!, b.offsets[i]! + b.lengths[i]!);

describe('MemoryTap', () => {
  it('delivers injected frames as one batch and counts them', () => {
    const tap = new MemoryTap({ name: 'mt0', mtu: 1280 });
    const seen: Buffer[][] = [];
    tap.start((b) => seen.push(Array.from({ length: b.count }, (_, i) => Buffer.from(frameOf(b, i)))));
    tap.inject([Uint8Array.of(1, 2, 3), Uint8Array.of(4), new Uint8Array(1294).fill(9)]);
    assert.equal(seen.length, 1);
    assert.deepEqual(seen[0]!.map((f) => f.length), [3, 1, 1294]);
    assert.deepEqual([...seen[0]![0]!], [1, 2, 3]);
    assert.deepEqual(tap.stats, { rxFrames: 3, rxBatches: 1, txFrames: 0, txDropped: 0 });
    assert.equal(tap.name, 'mt0');
    assert.equal(tap.mtu, 1280);
  });

  it('reuses and scribbles over the batch buffer, like the native device', () => {
    const tap = new MemoryTap();
    let kept: Buffer | undefined;
    const bufs: Buffer[] = [];
    tap.start((b) => {
      kept ??= frameOf(b, 0); // a consumer bug: keeps a view instead of a copy
      bufs.push(b.buf);
    });
    tap.inject([Uint8Array.of(7, 7, 7, 7)]);
    tap.inject([Uint8Array.of(8)]);
    assert.equal(bufs[0], bufs[1]);
    assert.deepEqual([...kept!], [8, 0xee, 0xee, 0xee]);
  });

  it('accepts batches larger than TAP_READ_BATCH and frames larger than a slot', () => {
    const tap = new MemoryTap({ mtu: 1500 });
    const counts: number[] = [];
    tap.start((b) => counts.push(b.count, b.lengths[b.count - 1]!));
    const big = new Uint8Array(tapSlotSize(1500) * TAP_READ_BATCH + 1);
    tap.inject(Array.from({ length: TAP_READ_BATCH + 5 }, () => Uint8Array.of(1)).concat([big]));
    assert.deepEqual(counts, [TAP_READ_BATCH + 6, big.length]);
  });

  it('records copies of written frames, calls write hooks and counts drops', () => {
    const tap = new MemoryTap({ mac: Uint8Array.of(2, 1, 2, 3, 4, 5) });
    assert.deepEqual([...tap.mac], [2, 1, 2, 3, 4, 5]);
    const batches: number[] = [];
    tap.onWrite((frames) => batches.push(frames.length));
    const reused = Uint8Array.of(1, 2);
    tap.write([reused, Uint8Array.of(3)]);
    reused[0] = 99;
    assert.deepEqual(tap.written.map((f) => [...f]), [[1, 2], [3]]);
    tap.dropNextWrites = 1;
    tap.write([Uint8Array.of(4), Uint8Array.of(5)]);
    assert.deepEqual(batches, [2, 1]);
    assert.deepEqual(tap.takeWritten().map((f) => [...f]), [[1, 2], [3], [5]]);
    assert.equal(tap.written.length, 0);
    assert.deepEqual(tap.stats, { rxFrames: 0, rxBatches: 0, txFrames: 3, txDropped: 1 });
  });

  it('enforces start-once and close semantics', () => {
    const tap = new MemoryTap();
    assert.throws(() => tap.inject([Uint8Array.of(1)]), /before start/);
    tap.start(() => {});
    assert.throws(() => tap.start(() => {}), /already started/);
    tap.close();
    tap.close();
    assert.ok(tap.isClosed);
    assert.throws(() => tap.inject([Uint8Array.of(1)]), /closed/);
    tap.write([Uint8Array.of(1)]);
    assert.equal(tap.stats.txDropped, 1);
    assert.throws(() => new MemoryTap({ mac: Uint8Array.of(1) }), RangeError);
  });
});
