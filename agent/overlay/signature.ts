// What an overlay message's SIGNATURE covers (codec.ts draws the datagram):
//
//   "idloc overlay v2" | flags (1) | code (2) | transaction id (8) | every TLV from SENDER up to SIGNATURE
//
// Not covered: the token and version (fixed), TTL, the Via and destination lists (forwarders change them),
// the length (implied), and the ORIGIN TLV a forwarder appends. The domain string keeps an overlay
// signature from ever reading as a record's or an Attach blob's (they use other strings).
//
// Why a signed message is not enough on its own: it proves who wrote it, not where it came from, and it can
// be replayed. An answer is bound to a request by its random 64-bit transaction id; a request is bound to
// the requester's address by the cookie inside it (cookies.ts), which the signature covers. Together they
// are what lets a node into a routing table at an address (node-guard.ts).

const DOMAIN = new TextEncoder().encode('idloc overlay v2');
const HEADER_SIGNED_FROM = 6; // flags
const HEADER_SIGNED_TO = 17; // end of the transaction id

/** The bytes a signature covers, for a datagram `b` whose TLVs start at bodyOffset and whose SIGNATURE TLV
 *  starts at signatureAt. A fresh buffer. */
export function signingInput(b: Uint8Array, bodyOffset: number, signatureAt: number): Uint8Array {
  const head = HEADER_SIGNED_TO - HEADER_SIGNED_FROM;
  const out = new Uint8Array(DOMAIN.length + head + (signatureAt - bodyOffset));
  out.set(DOMAIN, 0);
  out.set(b.subarray(HEADER_SIGNED_FROM, HEADER_SIGNED_TO), DOMAIN.length);
  out.set(b.subarray(bodyOffset, signatureAt), DOMAIN.length + head);
  return out;
}
