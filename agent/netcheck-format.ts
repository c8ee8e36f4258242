// The human form of `idloc-agent netcheck`: the one-line verdict first (what a user wants to know: am I
// behind a NAT, and will peers reach me directly), then what each STUN server saw, then why.
import type { NetcheckReport } from './nat/netcheck.js';
import { endpointKey } from './conn/socket.js';
import { summarizeNetcheck } from './nat/netcheck.js';

export function formatNetcheck(r: NetcheckReport): string {
  const lines = [summarizeNetcheck(r), ''];
  for (const s of r.servers) {
    const seen = s.mapped ? `sees us as ${endpointKey(s.mapped)}` : `no answer${s.error ? ` (${s.error})` : ''}`;
    const rtt = s.rttMs !== undefined ? `, rtt ${s.rttMs.toFixed(1)} ms` : '';
    const probe = s.probe === 'other-address' ? ' (its other address)' : s.probe === 'other-port' ? ' (its other port)' : '';
    lines.push(`  ${endpointKey(s.server)}${probe}: ${seen}${rtt}`);
  }
  lines.push('', `mapping    ${r.mapping}: ${r.mappingReason}`, `filtering  ${r.filtering}: ${r.filteringReason}`);
  return lines.join('\n') + '\n';
}
