// What the STUN endpoint (stun-endpoint.ts) offers and reports: its options, the outcomes of our own
// transactions, the ICE checks it hands up, its counters, and the second port it may answer from.

import type { Endpoint } from '../conn/socket.js';
import type { StunMessage } from './stun-binding.js';

/** An authenticated ICE connectivity check (RFC 8445 section 7.3) for the ICE layer to act on. */
export interface IncomingCheck {
  username: string;
  priority: number;
  useCandidate: boolean;
  /** The sender's role: true if it sent ICE-CONTROLLING, false for ICE-CONTROLLED. */
  controlling: boolean;
  tieBreaker: bigint;
  from: Endpoint;
  /** Transaction id, hex. */
  txid: string;
}

/** How to answer a check: success (XOR-MAPPED-ADDRESS, signed), 487 Role Conflict (signed), or not at all. */
export type CheckReply = 'success' | 'role-conflict' | 'drop';

export interface StunEndpointOptions {
  /** Sends on the agent's shared socket. */
  send: (bytes: Uint8Array, to: Endpoint) => void;
  /** Milliseconds, for round-trip times. */
  now?: () => number;
  /** SOFTWARE attribute on everything we send (none by default: fewer bytes, no version fingerprinting). */
  software?: string;
  /** Our short-term password for a check's USERNAME; undefined (or no hook) drops the check unanswered. */
  passwordFor?: (username: string) => string | undefined;
  /** Called for checks whose MESSAGE-INTEGRITY verified with passwordFor's answer; default reply 'success'. */
  onCheck?: (req: IncomingCheck) => CheckReply | void;
  /** Has this source proved return routability recently (the overlay's isVerifiedSource)? Unverified
   *  sources get answers no longer than their requests, within a per-address byte budget. */
  verified?: (from: Endpoint) => boolean;
  /** A private overlay: answer plain Binding requests only from `verified` sources (members), no one else. */
  membersOnly?: boolean;
  /** STUN messages of other methods (TURN's Allocate, Refresh, Data...), for whoever speaks them. */
  onOther?: (msg: Uint8Array, m: StunMessage, from: Endpoint) => void;
  /** Defaults for our transactions (see StunTransactionOptions). */
  rtoMs?: number;
  maxTransmits?: number;
}

export interface StunTransactionOptions {
  /** First retransmission timeout, doubled per transmission (STUN_RTO_INITIAL_MS). */
  rtoMs?: number;
  /** Transmissions before giving up (STUN_MAX_TRANSMITS). */
  maxTransmits?: number;
  /** Take the response from any source (RFC 5780 change tests); by default only from where we sent it. */
  anySource?: boolean;
}

/** rttMs runs from the first transmission: exact when transmits is 1, an upper bound otherwise (Karn: a
 *  response to a retransmitted request cannot be told from one to the original). */
export type StunOutcome =
  | {
      kind: 'success'; from: Endpoint; mapped: Endpoint | undefined; rttMs: number; transmits: number;
      otherAddress?: Endpoint; responseOrigin?: Endpoint;
    }
  | { kind: 'error'; from: Endpoint; code: number; reason: string; rttMs: number; transmits: number }
  | { kind: 'timeout'; transmits: number }
  /** Not sent (closed, too many pending, unencodable), or the response was unusable. */
  | { kind: 'failed'; reason: string };

export interface IceCheckRequest {
  username: string;
  /** The remote agent's password. */
  password: string;
  priority: number;
  controlling: boolean;
  tieBreaker: bigint;
  useCandidate?: boolean;
}

export interface StunEndpointStats {
  received: number;
  malformed: number;
  /** Binding requests answered with success (plain and ICE). */
  answered: number;
  /** Requests answered with 420 (CHANGE-REQUEST, other unknown comprehension-required attributes). */
  unknownAttribute: number;
  /** Checks dropped: no USERNAME/MESSAGE-INTEGRITY pair, unknown username, missing ICE attributes. */
  unauthenticated: number;
  /** MESSAGE-INTEGRITY that did not verify (on requests or on responses to our checks). */
  badIntegrity: number;
  /** Plain Binding requests from sources that are not members of our private overlay: dropped unanswered. */
  notMember: number;
  roleConflicts: number;
  indications: number;
  /** Responses that completed one of our transactions. */
  responses: number;
  /** Responses matching no pending transaction (late, duplicate, forged) or from the wrong source. */
  unmatched: number;
  /** Other STUN methods (handed to onOther if set). */
  other: number;
  transactions: number;
  retransmits: number;
  timeouts: number;
  /** Requests refused at once (closed, STUN_MAX_PENDING reached, unencodable). */
  refused: number;
  /** Checks sent once with no transaction kept (probe()): their answers count as unmatched. */
  probes: number;
  sendErrors: number;
  /** Requests from unverified sources whose answer would have been longer than they were. */
  unpadded: number;
  /** Answers to unverified sources withheld: the address's byte budget was spent. */
  overBudget: number;
  /** Bytes of the requests from unverified sources that earned an answer (before the size and budget
   *  checks), and of the answers sent to them: out <= in, always. */
  unverifiedBytesIn: number;
  unverifiedBytesOut: number;
  /** Answers sent from the other socket than the request came to (CHANGE-REQUEST change port). */
  changedPort: number;
  /** Datagrams at the second socket that were not plain Binding requests (dropped). */
  otherPortRefused: number;
}

/** A second socket on another port of this host's one public address (nat/change-port.ts). */
export interface ChangedPort {
  /** Sends from the second socket. */
  send: (bytes: Uint8Array, to: Endpoint) => void;
  /** Our main socket and the second one as clients reach them (our public IP; RESPONSE-ORIGIN, OTHER-ADDRESS). */
  main: Endpoint;
  other: Endpoint;
  /** The same pair in the other address family, on a dual-stack host: clients of each family are named
   *  the pair of theirs. */
  also?: { main: Endpoint; other: Endpoint };
}
