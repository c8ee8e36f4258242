// A hostile overlay member for overlay.test.ts, run inside a spare lab host:
//   node overlay-forger.js --bootstrap HOST:PORT --address OWN_LAB_ADDRESS [--port N] --victim NODEID_HEX
//                          --name NAME --claim-a PRIVKEY_HEX --claim-b PRIVKEY_HEX
// It joins the overlay of real agents as an ordinary OverlayNode (same codec, same puzzle difficulty as the
// agents' default, so its own records are acceptable) and then tries, at the nodes responsible for each
// resource (a FIND_NODE lookup of the resource id = the k closest, i.e. the ones that hold its records):
//   (a) forged: a locator for the victim's NodeID signed by its own key — once with its own key as owner
//       (the key does not own the resource), once as the victim's real record re-pointed at itself, seq
//       raised, signature by the wrong key;
//   (b) stale:  its own locator with seq N, then seq N-1;
//   (c) taken:  a name another key holds, through registerName (must refuse) and by a direct STORE;
//   (d) taken:  an IPv4 claim by key A, then the same address by key B (A and B collide at attempt 0).
// It prints one JSON line with every storer's answer (endpoint -> status, 'no-answer' when silent), sends
// LEAVE so the agents drop it from their tables, and exits 0; on an exception it prints {"error"} and exits 1.
import { PUZZLE_DEFAULT_DIFFICULTY } from '../../agent/base/constants.js';
import { formatIpv4 } from '../../agent/idloc/addresses.js';
import { generateIdentity, identityFromPrivateKey } from '../../agent/idloc/identity.js';
import { endpointKey, parseEndpoint, type Endpoint } from '../../agent/conn/socket.js';
import { UdpSocket } from '../../agent/conn/udp-socket.js';
import { OverlayNode, hostCandidates } from '../../agent/overlay/node.js';
import { solvePuzzle } from '../../agent/overlay/puzzle.js';
import {
  createIpv4ClaimRecord, createLocatorRecord, createNameRecord, marshalRecord, signRecord, type LocatorRecord,
  type RecordSigner,
} from '../../agent/overlay/records.js';
import { nameResourceId, normalizeName } from '../../agent/overlay/names.js';
import type { ContactInfo } from '../../agent/overlay/bucket.js';
import { fromHex } from '../../agent/base/bytes.js';

type Statuses = Record<string, string>;

function args(argv: string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i]!;
    const v = argv[i + 1];
    if (!k.startsWith('--') || v === undefined) throw new Error(`usage: bad argument ${k}`);
    m.set(k.slice(2), v);
  }
  return m;
}

function need(m: Map<string, string>, k: string): string {
  const v = m.get(k);
  if (v === undefined) throw new Error(`usage: --${k} is required`);
  return v;
}

function hexBytes(s: string, n: number, what: string): Uint8Array {
  const b = fromHex(s, n);
  if (!b) throw new Error(`${what}: want ${n * 2} hex digits`);
  return b;
}

async function main(): Promise<void> {
  const a = args(process.argv.slice(2));
  const bootstrap = parseEndpoint(need(a, 'bootstrap'));
  if (!bootstrap) throw new Error('--bootstrap: want HOST:PORT');
  const ownAddress = need(a, 'address');
  const port = Number(a.get('port') ?? '4500');
  const victimId = hexBytes(need(a, 'victim'), 20, '--victim');
  const name = normalizeName(need(a, 'name'));
  if (!name) throw new Error('--name: not a valid name');
  const keyA = identityFromPrivateKey(hexBytes(need(a, 'claim-a'), 32, '--claim-a'));
  const keyB = identityFromPrivateKey(hexBytes(need(a, 'claim-b'), 32, '--claim-b'));
  if (keyA.ipv4 !== keyB.ipv4) throw new Error('--claim-a and --claim-b do not collide at attempt 0');

  const difficulty = PUZZLE_DEFAULT_DIFFICULTY;
  const socket = await UdpSocket.bind(port, '0.0.0.0');
  const identity = generateIdentity();
  const node = new OverlayNode({ socket, identity, puzzleDifficulty: difficulty, replicateIntervalMs: 0 });
  socket.onMessage((msg, from) => { if (msg[0] === 0xd2) node.handleDatagram(msg, from); });
  const mine: Endpoint = { address: ownAddress, port };
  const now = () => Date.now();

  const joined = await node.membership.join([bootstrap]);
  const targetsOf = async (resource: Uint8Array): Promise<ContactInfo[]> => (await node.kad.findNode(resource)).contacts;
  const storeAll = async (targets: ContactInfo[], bytes: Uint8Array): Promise<Statuses> => {
    const out: Statuses = {};
    await Promise.all(targets.map(async (c) => {
      const r = await node.storeAt(c.endpoint, [bytes]).catch(() => undefined);
      out[endpointKey(c.endpoint)] = r?.[0] ?? 'no-answer';
    }));
    return out;
  };
  const eps = (cs: ContactInfo[]) => cs.map((c) => endpointKey(c.endpoint)).sort();

  // (a) forged locators for the victim
  const victimTargets = await targetsOf(victimId);
  const own = createLocatorRecord(node.signer, { flags: 0, candidates: hostCandidates([mine]), rendezvous: [] }, { now: now() });
  const wrongOwner = signRecord({ ...own, resourceId: victimId }, identity.privateKey);
  const forgedWrongOwner = await storeAll(victimTargets, marshalRecord(wrongOwner));
  const real = await node.resolver.resolveNodeId(victimId);
  let forgedBadSignature: Statuses | null = null;
  if (real?.value) {
    const forged = signRecord({ ...real, seq: real.seq + 1000n, value: { ...real.value, candidates: hostCandidates([mine]) } },
      identity.privateKey) as LocatorRecord;
    forgedBadSignature = await storeAll(victimTargets, marshalRecord(forged));
  }

  // (b) stale: own locator with seq N, then N-1
  const ownTargets = await targetsOf(identity.nodeId);
  const seqN = BigInt(now());
  const value = { flags: 0, candidates: hostCandidates([mine]), rendezvous: [] };
  const staleFirst = await storeAll(ownTargets, marshalRecord(createLocatorRecord(node.signer, value, { now: now(), seq: seqN })));
  const staleSecond = await storeAll(ownTargets, marshalRecord(createLocatorRecord(node.signer, value, { now: now(), seq: seqN - 1n })));

  // (c) a name another key holds
  const registered = await node.publisher.registerName(name);
  const nameTargets = await targetsOf(nameResourceId(name));
  const nameStore = await storeAll(nameTargets, marshalRecord(createNameRecord(node.signer, name, { now: now() })));

  // (d) IPv4 first-come: key A claims the address, then key B (same attempt-0 address)
  const signerOf = (id: typeof keyA): RecordSigner => ({
    privateKey: id.privateKey, publicKey: id.publicKey, puzzleNonce: solvePuzzle(id.publicKey, difficulty),
  });
  const claimA = createIpv4ClaimRecord(signerOf(keyA), 0, { now: now() });
  const claimB = createIpv4ClaimRecord(signerOf(keyB), 0, { now: now() });
  const claimTargets = await targetsOf(claimA.resourceId);
  const ipv4First = await storeAll(claimTargets, marshalRecord(claimA));
  const ipv4Second = await storeAll(claimTargets, marshalRecord(claimB));

  const stats = node.stats();
  const left = await node.leave();
  node.close();
  await socket.close();
  process.stdout.write(JSON.stringify({
    self: identity.nodeIdHex,
    joined: { ok: joined.ok, bootstrapsAnswered: joined.bootstrapsAnswered },
    routingTableSize: stats.routingTableSize,
    forged: {
      targets: eps(victimTargets), victimFound: real !== undefined,
      victimCandidates: real?.value?.candidates.map((c) => endpointKey(c)) ?? [],
      wrongOwner: forgedWrongOwner, badSignature: forgedBadSignature,
    },
    stale: { targets: eps(ownTargets), first: staleFirst, second: staleSecond },
    name: {
      name, targets: eps(nameTargets),
      register: registered.ok ? { ok: true } : { ok: false, reason: registered.reason, holder: registered.holder ? Buffer.from(registered.holder).toString('hex') : null },
      store: nameStore,
    },
    ipv4: { address: formatIpv4(keyA.ipv4), targets: eps(claimTargets), first: ipv4First, second: ipv4Second },
    left,
  }) + '\n');
}

main().then(() => process.exit(0), (e: unknown) => {
  process.stdout.write(JSON.stringify({ error: e instanceof Error ? e.stack ?? e.message : String(e) }) + '\n');
  process.exit(1);
});
