// OverlayNode's answers from its own state, for requests other nodes send it:
//
//   FETCH  (via KademliaNode's getValue) ─> our records at (resource, kind), tombstones included, + contacts
//   STORE  ─> every record parsed, checked against the message's resource/kind, put() in the store
//             (signature, ownership, puzzle, sequence, first-come, and a new entry only for a resource we
//             are responsible for: 'invalid' otherwise, counted as store.refused.notResponsible); one
//             status per record
//   LEAVE  ─> the sender leaves our routing table, if the LEAVE came from the address we know it at
//
// These run only for requests node-guard.ts verified: the sender signed them from `from`. Why the LEAVE
// address check too: a node that moved must not evict itself from where it was proven last.

import { OVERLAY_MAX_RECORDS } from '../base/constants.js';
import { endpointKey, type Endpoint } from '../conn/socket.js';
import type { Sender } from './codec.js';
import type { KademliaNode } from './kademlia.js';
import { STORE_STATUS, putResultOfStatus, type ExtraRequest, type ExtraResponse, type FetchValue, type Wire } from './node-wire.js';
import { isRecordKind, marshalRecord, parseRecord } from './records.js';
import type { Rpc } from './rpc.js';
import { responsibility } from './responsibility.js';
import type { PutResult, RecordStore } from './store.js';
import { bytesEqual } from '../base/bytes.js';

export interface ServeDeps {
  kad: KademliaNode<FetchValue, Wire>;
  store: RecordStore;
  /** Wall clock for records (Unix ms). */
  clock: () => number;
  k: number;
  self: Sender;
  /** Record kind of a FETCH key (node-wire.ts says why). */
  fetchKinds: WeakMap<Uint8Array, number>;
  reject: (reason: string) => void;
}

/** FIND_VALUE's local answer: our records at (key, kind), tombstones included, and contacts. */
export function localValue(d: ServeDeps, key: Uint8Array): FetchValue | undefined {
  const kind = d.fetchKinds.get(key);
  if (kind === undefined || !isRecordKind(kind)) return undefined;
  const recs = d.store.getAll(key, kind, d.clock());
  if (recs.length === 0) return undefined;
  return { records: recs.slice(0, OVERLAY_MAX_RECORDS).map(marshalRecord), contacts: d.kad.closestResponsive(key, d.k) };
}

/** The answer to a STORE or LEAVE. */
export function serveExtra(d: ServeDeps, req: ExtraRequest, from: Endpoint): ExtraResponse {
  if (req.type === 'leave') {
    const c = d.kad.table.get(req.sender.nodeId);
    if (c && endpointKey(c.endpoint) === endpointKey(from)) d.kad.table.remove(req.sender.nodeId);
    else d.reject('leave-unknown-sender');
    return { type: 'leave-answer', sender: d.self };
  }
  const now = d.clock();
  // only resources we are among the closest to (with slack) may enter our store (responsibility.ts)
  const responsible = responsibility(d.kad.table, d.self.nodeId, d.k);
  const statuses = req.records.map((b) => {
    const r = parseRecord(b);
    let result: PutResult;
    if (!r || r.kind !== req.recordKind || !bytesEqual(r.resourceId, req.resource)) {
      d.store.putBytes(new Uint8Array(0), now); // counted by the store as 'invalid'
      result = 'invalid';
    } else {
      result = d.store.put(r, now, { responsible });
    }
    if (result !== 'stored') d.reject(`store-${result}`);
    return STORE_STATUS[result];
  });
  return { type: 'store-answer', sender: d.self, statuses };
}

/** STORE records directly at one node (no lookup); undefined if it did not answer. Throws RangeError if the
 *  first record does not parse (its resource and kind address the STORE). */
export async function storeAt(extra: Rpc<ExtraRequest, ExtraResponse, Wire>, self: Sender, to: Endpoint,
  records: Uint8Array[]): Promise<PutResult[] | undefined> {
  const first = records[0] ? parseRecord(records[0]) : undefined;
  if (!first) throw new RangeError('storeAt: the first record does not parse');
  const r = await extra.request(to, { type: 'store', sender: self, resource: first.resourceId, recordKind: first.kind, records });
  if (!r.ok || r.value.type !== 'store-answer') return undefined;
  return r.value.statuses.map(putResultOfStatus);
}
