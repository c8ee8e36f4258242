// Port prediction reads an order only where there is one (small gaps, one direction, a symmetric NAT, on
// the public address) and offers the gaps between seen mappings before the ports after the last, never
// a port already seen and never outside 1024-65535.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { allocationOrder, predictPorts } from '../../agent/nat/port-prediction.js';
import { PORT_PREDICTION_MAX_STEP } from '../../agent/base/constants.js';
import type { NetcheckReport } from '../../agent/nat/netcheck.js';

const PUB = '198.51.100.21';
function report(ports: number[], mapping: NetcheckReport['mapping'] = 'endpoint-dependent'): Pick<NetcheckReport, 'mapping' | 'servers' | 'publicEndpoint'> {
  return {
    mapping,
    publicEndpoint: { address: PUB, port: ports[0] ?? 1 },
    servers: ports.map((p, i) => ({ server: { address: `203.0.113.${i + 1}`, port: 4500 }, mapped: { address: PUB, port: p }, transmits: 1 })),
  };
}
const ports = (r: ReturnType<typeof report>, n: number) => predictPorts(allocationOrder(r)!, n).map((e) => e.port);

test('an order is read from small gaps in one direction; anything else is not an order', () => {
  assert.deepEqual(allocationOrder(report([40000, 40001, 40002])), { address: PUB, direction: 1, seen: [40000, 40001, 40002] });
  assert.equal(allocationOrder(report([40010, 40006]))?.direction, -1);
  assert.equal(allocationOrder(report([40000, 40000 + PORT_PREDICTION_MAX_STEP + 1])), undefined, 'far apart: random');
  assert.equal(allocationOrder(report([40005, 40000, 40009])), undefined, 'the first mapping in the middle: no direction');
  assert.equal(allocationOrder(report([40000])), undefined, 'one mapping shows no order');
  assert.equal(allocationOrder(report([40000, 40001], 'endpoint-independent')), undefined, 'a cone NAT needs no prediction');
  const other = report([40000, 40001, 40002]);
  other.servers[2]!.mapped = { address: '198.51.100.99', port: 40002 };
  assert.deepEqual(allocationOrder(other)?.seen, [40000, 40001], 'mappings on another address are not ours to predict');
});

test('the gaps come first (a mapping made before the netcheck, maybe towards the peer), then the ports after', () => {
  assert.deepEqual(ports(report([40000, 40002]), 4), [40001, 40003, 40004, 40005]);
  assert.deepEqual(ports(report([40000, 40001, 40002]), 3), [40003, 40004, 40005]);
  assert.deepEqual(ports(report([40010, 40007]), 4), [40009, 40008, 40006, 40005]);
  assert.deepEqual(ports(report([65533, 65534]), 5), [65535]);
  assert.deepEqual(ports(report([40000, 40002]), 1), [40001]);
});

test('predictions never repeat a seen port, stay in range, and respect the count', () => {
  // Seen mappings a NAT could have made (within 1024-65535: 4 gaps of at most the step), close enough to
  // either end that the ports after the last run out of range.
  const margin = 4 * PORT_PREDICTION_MAX_STEP;
  fc.assert(fc.property(fc.integer({ min: 1024 + margin, max: 65535 - margin }), fc.array(fc.integer({ min: 1, max: PORT_PREDICTION_MAX_STEP }), { minLength: 1, maxLength: 4 }),
    fc.boolean(), fc.nat(12), (start, gaps, down, n) => {
      const seen = [start];
      for (const g of gaps) seen.push(seen[seen.length - 1]! + (down ? -g : g));
      const order = allocationOrder(report(seen));
      assert.ok(order, `small gaps one way on a symmetric NAT are an order: ${seen.join(', ')}`);
      assert.deepEqual(order, { address: PUB, direction: down ? -1 : 1, seen });
      const out = predictPorts(order, n).map((e) => e.port);
      assert.ok(out.length <= n);
      assert.equal(new Set(out).size, out.length);
      for (const p of out) { assert.ok(!seen.includes(p)); assert.ok(p >= 1024 && p <= 65535); }
      // Exactly: the unseen ports between the first and last mapping, then those after the last, in the
      // NAT's direction, as many as asked for or as there are.
      const d = down ? -1 : 1;
      const between: number[] = [];
      for (let p = start + d; p !== seen[seen.length - 1]; p += d) if (!seen.includes(p)) between.push(p);
      const beyond: number[] = [];
      for (let p = seen[seen.length - 1]! + d; p >= 1024 && p <= 65535 && beyond.length < n; p += d) beyond.push(p);
      assert.deepEqual(out, [...between, ...beyond].slice(0, n));
    }));
});
