// The bench's handover: host a's underlay address changes while b pings a's overlay address every 10 ms;
// the time from the change to the first reply to a ping sent after it.
//
// The clock starts in a's namespace right after `ip addr` has moved the address (a shell runs del, add,
// then `date`), not before the commands are launched: a reply arriving while they start up would
// otherwise count. ping -D stamps each reply line with its arrival (wall clock, like `date`); arrival
// minus the line's round trip is when that echo request left, and only a request that left after the
// change counts (one sent before it and answered late says nothing about the new path).
import type { Lab } from '../test/integration/lab.js';
import type { TestAgent } from '../test/integration/agents.js';
import { sleep } from './bench-util.js';

export const HANDOVER_ADDRESS = '198.51.100.77';

interface Reply { seq: number; arrivedMs: number; sentMs: number }

/** ping -D lines: "[1733350000.123456] 64 bytes from ...: icmp_seq=5 ttl=64 time=0.345 ms". */
function replies(stdout: string): Reply[] {
  return [...stdout.matchAll(/^\[(\d+\.\d+)\].*icmp_seq=(\d+).*time=([\d.]+) ms/gm)].map((m) => {
    const arrivedMs = Number(m[1]) * 1000;
    return { seq: Number(m[2]), arrivedMs, sentMs: arrivedMs - Number(m[3]) };
  });
}

/** b pings a every 10 ms (b is then the side that must learn a's new endpoint, a the side that must
 *  speak first); a moves to a new address; ms from the move to the first reply to a ping sent after it. */
export async function handover(lab: Lab, A: TestAgent): Promise<number> {
  await lab.exec('b', ['ping', '-c', '3', '-i', '0.2', A.id.ipv4]);
  const pinger = lab.exec('b', ['ping', '-D', '-c', '400', '-i', '0.01', '-W', '1', A.id.ipv4], { allowFail: true, timeoutMs: 30_000 });
  await sleep(1000);
  const dev = lab.uplink;
  const move = await lab.exec('a', ['sh', '-c',
    `ip addr del ${lab.address('a')}/24 dev ${dev} && ip addr add ${HANDOVER_ADDRESS}/24 dev ${dev} && date +%s.%N`]);
  const movedMs = Number(move.stdout.trim()) * 1000;
  if (!Number.isFinite(movedMs)) throw new Error(`moving a's address printed no time: ${move.stdout}${move.stderr}`);
  const r = await pinger;
  const all = replies(r.stdout);
  const first = all.find((x) => x.sentMs > movedMs);
  if (!first) {
    throw new Error(`no reply to a ping sent after the move (${all.length} replies, last seq ${all[all.length - 1]?.seq ?? '-'}): ${r.stdout.slice(-500)}`);
  }
  return first.arrivedMs - movedMs;
}
