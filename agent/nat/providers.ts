// The overlay's service providers as the path keeper uses them: members advertising "stun", "relay" or
// "turn" in service records. A record is only a claim: "stun" and "relay" count at endpoints where the
// owner's key answers (service-proof.ts ownerLivesAt), "turn" only with a vouch made with the TURN secret;
// the rest are counted as refused (status shows them). --offer-turn with --turn-secret advertises that
// server with our vouch for it (and we use it ourselves); --turn-secret alone takes the first "turn"
// server whose vouch verifies, never one without (not a single request goes to it). Each check PINGs a record's unknown candidates, so
// callers ask only when they need more (path-keeper.ts), never on a timer of their own.
import type { Logger } from 'pino';
import type { Endpoint } from '../conn/socket.js';
import type { Candidate } from '../overlay/records.js';
import { ownerLivesAt, type OwnerLookup, type ProviderCheck, type TurnVouch } from './service-proof.js';

export type ProvidedService = 'turn' | 'stun' | 'relay';

export interface ProvidersOptions {
  node: OwnerLookup;
  advertise(service: string, candidates: Candidate[]): Promise<boolean>;
  providers(service: string, check?: ProviderCheck): Promise<Endpoint[]>;
  /** From the TURN secret: checks vouches in "turn" records, and vouches for offerTurn under our key. */
  turnVouch?: { vouch: TurnVouch; publicKey: Uint8Array };
  /** A TURN server to advertise (--offer-turn). */
  offerTurn?: Endpoint;
  logger: Logger;
}

export class Providers {
  /** Provider endpoints in service records that did not prove themselves, by service. */
  readonly refused = { turn: 0, stun: 0, relay: 0 };
  private warnedUnvouched = false;

  constructor(private readonly o: ProvidersOptions) {}

  /** Providers of a service that prove their records, the rest counted. */
  async provided(service: ProvidedService): Promise<Endpoint[]> {
    const { node, turnVouch } = this.o;
    const check: ProviderCheck = async (owner, candidates) => {
      const ok = service === 'turn' ? (turnVouch?.vouch.vouched(owner, candidates) ?? []) : await ownerLivesAt(node, owner, candidates);
      this.refused[service] += candidates.filter((c) => c.port !== 0).length - ok.length;
      return ok;
    };
    return this.o.providers(service, check).catch(() => []);
  }

  /** --offer-turn: our server and our vouch for it (made with the secret its clients hold). */
  offerOurTurn(): void {
    const { offerTurn, turnVouch } = this.o;
    if (!offerTurn) return;
    if (!turnVouch) {
      if (!this.warnedUnvouched) this.o.logger.warn('--offer-turn needs the server\'s --turn-secret to vouch for it: not advertised (clients trust only vouched servers)');
      this.warnedUnvouched = true;
      return;
    }
    void this.o.advertise('turn', turnVouch.vouch.candidates(turnVouch.publicKey, offerTurn));
  }
}
