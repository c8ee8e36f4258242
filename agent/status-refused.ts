// `status`'s "refused" section: everything the agent dropped or turned away as possibly hostile, by layer
// and kind, gathered from the counters each layer keeps (docs/security.md says what each defence is). Only
// kinds that happened are listed, so a quiet agent shows nothing.
/** What this reads of a status report (status.ts's AgentStatus has these). */
export interface RefusalSources {
  counters: {
    tunnels: object; overlayPeers: object; stun: object; ice: object; traversal: object;
    peerRelay: { server: object | null };
  };
  access?: { counters: object | null; firewallCounters?: object | null };
  overlay: { discovery?: object } | null;
}

export type Refused = Record<string, Record<string, number>>;

/** Counter names, per layer, that count refusals (the rest of each layer's counters count traffic). */
const TUNNEL = ['rxInvalid', 'rxBadMac', 'rxDecryptFailed', 'rxReplayed', 'rxUnknownPeer', 'rxUnknownIndex', 'rxExpired',
  'handshakeRejected', 'cookieReplySent', 'cookieReplySkipped', 'handshakeRateLimited', 'handshakeQueueDropped'] as const;
const STUN = ['malformed', 'notMember', 'unauthenticated', 'badIntegrity', 'unmatched', 'unpadded', 'overBudget'] as const;
const ICE = ['unknownUsername', 'checksUnaimed', 'checksLimited', 'triggeredCapped', 'probesUnaimed'] as const;
const RELAY = ['malformed', 'unknownClient', 'unknownHandle', 'foreignHandle', 'rateLimited', 'unverifiedPeer'] as const;
const ROUTE = ['unroutable', 'ttlExpired', 'loops', 'rateLimited', 'tooLarge', 'unproven'] as const;
const PEERS = ['badPuzzle', 'full', 'evictedNoData', 'evictedQuiet', 'evictedForRoom', 'relocateDropped'] as const;

function pick(into: Refused, layer: string, from: object | null | undefined, keys: readonly string[] | 'all'): void {
  if (!from) return;
  const src = from as Record<string, unknown>;
  for (const k of keys === 'all' ? Object.keys(src) : keys) {
    const v = src[k];
    if (typeof v === 'number' && v > 0) (into[layer] ??= {})[k] = (into[layer]?.[k] ?? 0) + v;
  }
}

/** The refusals of one status report. `extra`: layers whose counters are not in AgentStatus.counters. */
export function refusedOf(s: RefusalSources, extra: {
  overlay?: { rejected: Record<string, number>; route: object; store: Record<string, number>; wrongSource: number };
  providers?: Record<string, number>;
} = {}): Refused {
  const r: Refused = {};
  const c = s.counters;
  if (extra.overlay) {
    pick(r, 'overlay', extra.overlay.rejected, 'all');
    pick(r, 'overlay', { answerFromElsewhere: extra.overlay.wrongSource }, 'all');
    pick(r, 'forwarding', extra.overlay.route, ROUTE);
    pick(r, 'store', extra.overlay.store, 'all');
  }
  pick(r, 'admission', s.access?.counters, ['refused']);
  pick(r, 'firewall', s.access?.firewallCounters, ['droppedNoRule', 'droppedMalformed', 'droppedFragment']);
  pick(r, 'tunnel', c.tunnels, TUNNEL);
  pick(r, 'peers', c.overlayPeers, PEERS);
  pick(r, 'discovery', s.overlay?.discovery, ['ipv4LookupsDropped']);
  pick(r, 'stun', c.stun, STUN);
  pick(r, 'ice', c.ice, ICE);
  const t = c.traversal as { attachRefusedBy?: Record<string, number>; attachGuard?: Record<string, number> };
  pick(r, 'attach', t.attachRefusedBy, 'all');
  pick(r, 'attach', t.attachGuard, 'all');
  pick(r, 'peer-relay', c.peerRelay.server, RELAY);
  pick(r, 'service-records', extra.providers, 'all');
  return r;
}

/** One line per layer: "refused  overlay: cookie-missing 3, bad-signature 1". */
export function formatRefused(r: Refused | undefined): string {
  const layers = Object.entries(r ?? {});
  if (layers.length === 0) return '';
  return layers.map(([layer, kinds], i) => `${i === 0 ? 'refused ' : '        '} ${layer}: ` +
    Object.entries(kinds).map(([k, n]) => `${k} ${n}`).join(', ') + '\n').join('');
}
