// Mobility behind filtering NATs: an ssh session between two hosts, each behind a home router that drops
// unsolicited inbound packets, survives every kind of move with at most the issue's target of stalled
// traffic (1 s; 2 s when both move or a rendezvous node dies). The peer prints a 10 Hz clock over ssh;
// every line is stamped as it ARRIVES at the mover; the largest arrival gap around each event is the
// figure. The lab (two public agents, a second uplink per host) is mobility-lab.ts.
//
// Run twice: on the LAN (the lab's bridge) and on the WAN switch at 40 ms RTT, 2 ms jitter and 1% loss
// per crossing between sites (lab.ts option `wan`).
//
// Cases, chained (each starts where the one before left the uplinks):
//   (a) m switches uplinks (eth0 gone, eth1 up with a new address and default route)
//   (b) NAT rebinding on m's router (conntrack -F)
//   (c) p switches uplinks (the roles reversed)       (d) NAT rebinding on p's router
//   (e) both switch at once (target 2 s)
//   (f) m switches and one of its rendezvous agents (per `status`) is killed at that moment (target 2 s)
//   (g) sleep and wake: m's agent SIGSTOPped 60 s while its router forgets its mappings, then SIGCONT.
//       After 60 s TCP's retransmission backoff (the next try can be ~40 s away) makes an ssh gap
//       meaningless (mobility-lab.ts caps it with TCP_RTO_MAX_MS), so the path is timed with ping: p pings m's overlay address every 100 ms, and the
//       first reply to a ping SENT after SIGCONT must arrive within 1 s of it; ssh must still be alive
//       and a line printed after SIGCONT must arrive within SSH_RESUME_MS.
// How each recovers: (a), (c), (e) the mover's address watch -> roaming keepalive + ICE restart with its
// new srflx through the peer's rendezvous (path-keeper.ts localChange); (b), (d) the flow towards the
// rebound side stops -> one keepalive after RECEIVE_SILENT_MS re-creates the mapping (tunnels.ts), and
// the sender's silence (PATH_SILENT_MS) restarts ICE if the mapping changed; (f) the restart's Attach
// goes through the peer's other rendezvous node.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { agentStatus, cliMissing } from './agents.js';
import type { WanSettings } from './lab.js';
import { MOVE_CASES, MOVE_WATCH_MS, MobilityLab, TCP_RTO_MAX_MS, measureMove } from './mobility-lab.js';
import { labUnavailable, prerequisites } from './prerequisites.js';

/** (g): how long the agent sleeps, and the target from SIGCONT to the first ping reply. */
const SLEEP_MS = 60_000;
const WAKE_TARGET_MS = 1_000;
/** (g): ssh lines must arrive again within this after SIGCONT: TCP's next retransmission comes within
 *  TCP_RTO_MAX_MS (mobility-lab.ts) once the path is back. */
const SSH_RESUME_MS = 3 * TCP_RTO_MAX_MS;
const WAN: WanSettings = { delayMs: 20, jitterMs: 2, lossPct: 1 };

const SUITE = 'mobility: sessions survive a move behind filtering NATs';
const skip = prerequisites(SUITE, labUnavailable(), cliMissing());

function suite(label: string, wan: WanSettings | undefined): void {
  describe(`${SUITE} (${label})`, { skip, timeout: 200_000 }, () => {
    let ml: MobilityLab;
    const say = (line: string) => process.stderr.write(`# mobility ${label} ${line}\n`);

    before(async () => { ml = await MobilityLab.create(wan ? { wan } : {}); });
    after(async () => { await ml?.destroy(); });

    it('the peer\'s 10 Hz clock reaches the mover over ssh, on a direct path', async () => {
      await ml.startClock();
      const st = await agentStatus(ml.lab, ml.A('m'));
      const peer = st.peers.find((x) => x.publicKey === ml.A('p').id.publicKey);
      assert.equal(peer?.path, 'direct', JSON.stringify(peer) + ml.evidence());
    });

    for (const c of MOVE_CASES) {
      it(`${c.name}: largest arrival gap <= ${c.targetMs} ms, ssh alive`, async () => {
        assert.ok(ml.sshAlive, `the ssh session is not running (${ml.sshExit})`);
        const { gapMs, sshAlive } = await measureMove(ml, c, MOVE_WATCH_MS);
        say(`${c.name}: largest arrival gap ${gapMs} ms (target ${c.targetMs} ms)`);
        assert.ok(sshAlive, `the ssh session ended (${ml.sshExit})${ml.evidence()}`);
        assert.ok(gapMs <= c.targetMs, `stalled ${gapMs} ms after the event (target ${c.targetMs} ms)${ml.evidence()}`);
      });
    }
    // The multihomed failover case (both uplinks up, the active one's link cut) goes here: it needs both
    // links up at once (mobility-lab.ts switchUplink keeps one down) and its own lab step.

    it(`(g) sleep and wake: SIGSTOP ${SLEEP_MS / 1000} s with the router's mappings gone, then SIGCONT: a ping reply within ${WAKE_TARGET_MS} ms, ssh alive`, async () => {
      assert.ok(ml.sshAlive, `the ssh session is not running (${ml.sshExit})`);
      const { contMs, firstReplyMs, replies } = await ml.sleepAndWake(SLEEP_MS);
      const resumed = await ml.nextArrival(contMs, SSH_RESUME_MS);
      say(`(g) sleep and wake: first reply to a ping sent after SIGCONT ${firstReplyMs ?? 'none'} ms (target ${WAKE_TARGET_MS} ms); ` +
        `first ssh line printed after SIGCONT arrived ${resumed === undefined ? 'never' : `${resumed - contMs} ms after it`}`);
      assert.ok(firstReplyMs !== undefined, `no reply to a ping sent after SIGCONT (${replies.length} replies)${ml.evidence()}`);
      assert.ok(firstReplyMs <= WAKE_TARGET_MS, `first reply ${firstReplyMs} ms after SIGCONT (target ${WAKE_TARGET_MS} ms)${ml.evidence()}`);
      assert.ok(ml.sshAlive, `the ssh session ended (${ml.sshExit})${ml.evidence()}`);
      assert.ok(resumed !== undefined, `no ssh line printed after SIGCONT arrived within ${SSH_RESUME_MS} ms${ml.evidence()}`);
    });
  });
}

suite('LAN', undefined);
suite('WAN 40 ms RTT, 1% loss', WAN);
