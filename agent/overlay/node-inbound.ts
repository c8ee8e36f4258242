// The inbound half of OverlayNode's datagram handling, after parsing: what a direct request must show before
// it is served (and its sender learned), and where a verified answer goes. node-guard.ts has the checks and
// why they suffice; node.ts the dispatch of requests.
import { OVERLAY_COOKIE_RETRIES } from '../base/constants.js';
import type { Endpoint } from '../conn/socket.js';
import {
  ERR_COOKIE_REQUIRED, parseRoute, METHOD_ATTACH, METHOD_FETCH, METHOD_FIND_NODE, METHOD_LEAVE, METHOD_PING, METHOD_STORE,
  type OverlayMessage, type OverlaySign, type Sender,
} from './codec.js';
import type { KademliaNode } from './kademlia.js';
import type { Attacher } from './node-attach.js';
import type { NodeGuard } from './node-guard.js';
import type { Router } from './node-route.js';
import { cookieAnswer, type ExtraRequest, type ExtraResponse, type FetchValue, type Wire } from './node-wire.js';
import type { Rpc } from './rpc.js';

export interface InboundDeps {
  guard: NodeGuard;
  kad: KademliaNode<FetchValue, Wire>;
  extra: Rpc<ExtraRequest, ExtraResponse, Wire>;
  attacher: Attacher;
  router: Router;
  self: Sender;
  sign: OverlaySign;
  send: (bytes: Uint8Array, to: Endpoint) => void;
  reject: (reason: string) => void;
}

/** A direct request (or one we are the first forwarder of): proven, its sender learned, or answered with
 *  a cookie / dropped (node-guard.ts). */
export function provenRequest(d: InboundDeps, msg: Uint8Array, m: OverlayMessage, from: Endpoint, method: number): boolean {
  const v = d.guard.request(msg, m, from);
  if (!v.ok) {
    if (v.cookie) {
      const answer = cookieAnswer(d.self, d.sign, method, m.txid, v.cookie);
      // nothing larger than the request goes back (an unpadded one gets nothing), and no more than the budget
      if (answer.length > msg.length) d.reject('cookie-answer-too-large');
      else if (!d.guard.mayAnswerUnverified(from, answer.length)) d.reject('cookie-answer-over-budget');
      else d.send(answer, from);
    }
    return false;
  }
  d.router.heard(m.sender.nodeId, from);
  if (v.admit && m.kind !== 'leave') {
    const sender = { nodeId: Uint8Array.from(m.sender.nodeId), publicKey: Uint8Array.from(m.sender.publicKey), puzzleNonce: m.sender.puzzleNonce ?? 0n };
    d.kad.learnProven(sender, from);
  }
  return true;
}

/** An answer: only for a request of ours in flight to `from`, and signed (node-guard.ts). */
export function dispatchAnswer(d: InboundDeps, msg: Uint8Array, m: OverlayMessage, from: Endpoint): void {
  const method = m.kind === 'error' ? m.method : parseRoute(msg)!.code;
  const attach = method === METHOD_ATTACH;
  const kad = method === METHOD_PING || method === METHOD_FIND_NODE || method === METHOD_FETCH;
  const extra = method === METHOD_STORE || method === METHOD_LEAVE;
  const awaited = attach ? d.attacher.awaits(m.txid, from) : kad ? d.kad.rpc.awaits(m.txid, from)
    : extra ? d.extra.awaits(m.txid, from) : false;
  if (!awaited) { d.reject('answer-unsolicited'); return; }
  if (!d.guard.answer(msg, m, from)) return;
  if (m.kind === 'error' && m.code === ERR_COOKIE_REQUIRED) {
    if (!m.cookie) { d.reject('cookie-answer-empty'); return; }
    d.guard.jar.set(from, m.cookie);
    const again = attach ? d.attacher.resend(m.txid, from, OVERLAY_COOKIE_RETRIES)
      : (kad ? d.kad.rpc : d.extra).resend(m.txid, OVERLAY_COOKIE_RETRIES);
    if (!again) d.reject('cookie-retries-exhausted');
    return;
  }
  if (attach) {
    if (m.kind === 'attach-answer' || m.kind === 'error') d.attacher.onAnswer(m);
    return;
  }
  if (m.kind === 'error' && kad) { d.reject('error-answer'); return; } // we never send these; the request times out
  const wire: Wire = { bytes: msg, msg: m };
  (kad ? d.kad : d.extra).onMessage(wire, from);
}
