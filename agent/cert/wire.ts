// Pieces the certificate and the revocation list share: labels on the wire, the domain-separated signing
// input, and the text form their files use.
//
// A label on the wire: a u8 length, then that many bytes of lowercase ASCII (a-z 0-9 '-', no '-' at either
// end): DNS label rules, so a certificate's name is also a valid `<name>.idloc`.
//
// The text form: PEM-like armour (RFC 7468's shape) around the base64 of the bytes, 64 characters a line,
// with lines starting "# " before it that say what the bytes hold for a person reading the file:
//
//   # idloc member certificate "alice" groups db,web
//   # subject key c1d68cf6...   (and its NodeID, the CA key, the validity)
//   -----BEGIN IDLOC CERTIFICATE-----
//   zgEC...
//   -----END IDLOC CERTIFICATE-----
//
// Only the armoured bytes count: the comment lines are never parsed, so editing them changes nothing.
import type { Reader, Writer } from '../base/binary.js';

export const PUBLIC_KEY_BYTES = 32;

const LABEL_RE = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;
const ascii = new TextDecoder('ascii');
const enc = new TextEncoder();

/** True for a label of 1..max characters (rule at the top). */
export function isLabel(s: string, max: number): boolean {
  return s.length >= 1 && s.length <= max && LABEL_RE.test(s);
}

/** Writes a label the caller has already validated. */
export function writeLabel(w: Writer, s: string): void {
  const b = enc.encode(s);
  w.u8(b.length);
  w.bytes(b);
}

/** The next label, or undefined if it is short or `valid` refuses it. */
export function readLabel(r: Reader, valid: (s: string) => boolean): string | undefined {
  const b = r.view(r.u8());
  if (r.bad) return undefined;
  const s = ascii.decode(b);
  return valid(s) ? s : undefined;
}

/** domain || body: what a signature covers. A fresh buffer. */
export function domainInput(domain: Uint8Array, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(domain.length + body.length);
  out.set(domain, 0);
  out.set(body, domain.length);
  return out;
}

/** The text form of `bytes` under `label` ("IDLOC CERTIFICATE"), after the comment lines. */
export function armor(label: string, bytes: Uint8Array, comments: readonly string[] = []): string {
  const b64 = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
  const lines = comments.map((c) => `# ${c.replace(/[\r\n]/g, ' ')}`);
  lines.push(`-----BEGIN ${label}-----`);
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  lines.push(`-----END ${label}-----`);
  return lines.join('\n') + '\n';
}

/** The bytes inside the one `label` block of `text`, or undefined if there is none, more than one, or its
 *  content is not base64 (no more than maxBytes decoded, so a huge file costs nothing to refuse). */
export function dearmor(label: string, text: string, maxBytes: number): Uint8Array | undefined {
  const begin = `-----BEGIN ${label}-----`, end = `-----END ${label}-----`;
  const i = text.indexOf(begin);
  const j = text.indexOf(end, i + begin.length);
  if (i < 0 || j < 0 || text.indexOf(begin, i + 1) >= 0) return undefined;
  const b64 = text.slice(i + begin.length, j).replace(/\s+/g, '');
  if (b64.length > Math.ceil(maxBytes / 3) * 4 || !/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) return undefined;
  return new Uint8Array(Buffer.from(b64, 'base64'));
}
