// DNS over TCP (RFC 1035 4.2.2, RFC 7766): every message is preceded by its length.
//
//   +--------+--------+----------------------------+
//   | length (u16 BE) | message (length bytes)     |  repeated; a query may arrive in pieces, or
//   +--------+--------+----------------------------+  several in one read (pipelining)
//
// A length of 0 or above the frame bound is not a message: the connection is closed.

/** Cuts a TCP byte stream into messages; holds at most one unfinished message of at most `max` bytes. */
export class TcpFrames {
  private pending: Buffer = Buffer.alloc(0);

  constructor(private readonly max: number) {}

  /** The messages complete after `chunk`, or 'bad' when a length is 0 or over the bound (then nothing
   *  more is read: the stream cannot be resynchronised). */
  push(chunk: Uint8Array): Buffer[] | 'bad' {
    let buf = this.pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.pending, chunk]);
    const out: Buffer[] = [];
    while (buf.length >= 2) {
      const len = buf.readUInt16BE(0);
      if (len === 0 || len > this.max) { this.pending = Buffer.alloc(0); return 'bad'; }
      if (buf.length < 2 + len) break;
      out.push(Buffer.from(buf.subarray(2, 2 + len)));
      buf = buf.subarray(2 + len);
    }
    this.pending = Buffer.from(buf);
    return out;
  }

  /** Bytes held of an unfinished message. */
  get buffered(): number { return this.pending.length; }
}

/** One message with its length in front, for a TCP stream; undefined if it is too long to frame. */
export function frame(msg: Uint8Array): Buffer | undefined {
  if (msg.length > 0xffff) return undefined;
  const out = Buffer.alloc(2 + msg.length);
  out.writeUInt16BE(msg.length, 0);
  out.set(msg, 2);
  return out;
}
