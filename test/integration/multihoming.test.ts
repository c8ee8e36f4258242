// Multihoming: a host with two uplinks, each behind its own filtering NAT router, keeps a standby path to
// its peer on the second one (nat/standby.ts), and when the first fails the ssh session moves to it with
// at most MAX_GAP_MS of stalled traffic and no new handshake. The lab (drawn in multihoming-lab.ts): m has
// eth0 behind r-m and eth1 behind r-m2, both filtering cone NATs; p is behind r-p; one public agent.
//
// Cases: (1) m's eth0 link is cut: the kernel routes out of eth1 from the address and port the standby
// probes used, through the mapping they kept open in both NATs; p roams to it on the first authenticated
// packet. (2) eth0 is back, and its router stops forwarding without a word (link up, nothing gets
// through): m's flow from p stops, a probe on the active path goes unanswered, and m pins the tunnel to
// eth1. Neither case may cost a handshake: the session's keys stay.
//
// Run twice: on the LAN (the lab's bridge) and on the WAN switch at 40 ms RTT, 2 ms jitter and 1% loss per
// crossing between sites (lab.ts option `wan`), with the same assertions.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { WanSettings } from './lab.js';
import { agentStatus, cliMissing, resolveIn, waitUntil } from './agents.js';
import { MOVE_WATCH_MS, WAN_40MS } from './mobility-lab.js';
import { FAILOVER_CASES, MultihomingLab } from './multihoming-lab.js';
import { labUnavailable, prerequisites } from './prerequisites.js';

const MAX_GAP_MS = 1_000;

const SUITE = 'multihoming: a standby path on the second uplink takes over without a handshake';
const skip = prerequisites(SUITE, labUnavailable(), cliMissing());

function suite(label: string, wan: WanSettings | undefined): void {
  describe(`${SUITE} (${label})`, { skip, timeout: 120_000 }, () => {
    let ml: MultihomingLab;

    before(async () => { ml = await MultihomingLab.create(wan ? { wan } : {}); });
    after(async () => { await ml?.destroy(); });

    it('the session runs on eth0 with a standby path on eth1 that both sides show', async () => {
      await ml.startClock();
      await waitUntil(() => ml.standbyReady(), 15_000, 'm\'s standby path on eth1 answered, and seen by p');
      const mp = await ml.peerOf('m', 'p');
      assert.equal(mp.path, 'direct', JSON.stringify(mp) + ml.evidence());
      assert.equal(mp.standby?.pinned, null, 'the traffic is on the preferred uplink');
      assert.ok(await ml.onEth0(), 'p sends to m through r-m');
      console.log(`multihoming ${label}: m's standby towards p ${JSON.stringify(mp.standby)}`);
    });

    it('m\'s locator carries both uplinks: both host addresses and the second uplink\'s public mapping', async () => {
      const second = `${ml.lab.publicAddress('m2')}:4500`;
      const st = await agentStatus(ml.lab, ml.A('m')) as Awaited<ReturnType<typeof agentStatus>> & { candidates: string[] };
      assert.ok(st.candidates.includes(`srflx ${second}`), `m's candidates: ${st.candidates.join(', ')}`);
      let seen: string[] = [];
      await waitUntil(async () => {
        const { answer } = await resolveIn(ml.lab, ml.A('p'), ml.A('m').id.nodeId);
        seen = (answer?.candidates ?? []).map((c) => `${c.address}:${c.port}`);
        return seen.includes(second) && seen.includes(`${ml.lab.nat('m').privateAddress}:4500`) && seen.includes(`${ml.lab.nat('m2').privateAddress}:4500`);
      }, 10_000, `p to resolve m's locator with both uplinks in it${ml.evidence()}`).catch((e: Error) => { throw new Error(`${e.message}: ${seen.join(', ')}`); });
    });

    for (const [i, c] of FAILOVER_CASES.entries()) {
      it(`${c.name}: largest arrival gap <= ${MAX_GAP_MS} ms, no new handshake, ssh alive`, async (t) => {
        assert.ok(ml.sshAlive, 'the ssh session is not running');
        const r = await ml.failover(c, MOVE_WATCH_MS);
        t.diagnostic(`${c.name}: largest arrival gap ${r.gapMs} ms (target ${MAX_GAP_MS} ms)`);
        console.log(`multihoming ${label} ${c.name}: largest arrival gap ${r.gapMs} ms`);
        if (process.env.IDLOC_DEBUG_MH) console.log(ml.evidence());
        assert.ok(r.sshAlive, `the ssh session ended${ml.evidence()}`);
        assert.ok(r.gapMs <= MAX_GAP_MS, `stalled ${r.gapMs} ms after the event (target ${MAX_GAP_MS} ms)${ml.evidence()}`);
        assert.ok(r.movedToStandby, `p now sends to m's mapping on r-m2: ${JSON.stringify(r.pm)}`);
        assert.ok(r.sameHandshakes, `the same session carried on: no handshake ${JSON.stringify([r.mp.lastHandshake, r.pm.lastHandshake])}`);
        if (i < FAILOVER_CASES.length - 1) await c.restore(ml);
      });
    }
  });
}

suite('LAN', undefined);
suite('WAN 40 ms RTT, 1% loss', WAN_40MS);
