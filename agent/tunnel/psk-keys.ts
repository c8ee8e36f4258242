// The handshake keys a private overlay's secret changes (base/overlay-secret.ts): without a secret, mac1
// is keyed by the receiver's static key alone (WireGuard's rule) and the pattern is IK; with one, the
// secret's mac1 key is mixed into every mac1 key and its psk makes the pattern IKpsk2. A stranger then
// cannot make an initiation whose mac1 holds, so it is dropped at the gate's first check, unanswered:
// no response, no cookie reply, no work beyond one BLAKE2s.
//
// During a rotation several secrets are accepted: the gate finds which one an initiation's mac1 proves, and
// the response (its psk and mac1) uses that same secret, so an initiator still sending with the old one is
// answered. Our own initiations use the current secret.
import { blake2s } from '@noble/hashes/blake2.js';
import type { OverlaySecrets, SecretKeys } from '../base/overlay-secret.js';
export type { OverlaySecrets } from '../base/overlay-secret.js';
import { Blake2sMac } from './blake2s-mac.js';
import { mac1Key } from './messages.js';

/** One accepted way of keying mac1 for messages to us, and the secret behind it (none: an open overlay). */
export interface OwnMac1 { readonly mac: Blake2sMac; readonly keys: SecretKeys | undefined }

export class HandshakeKeys {
  private own: OwnMac1[] = [];
  private version = -1;

  constructor(private readonly ownStaticX: Uint8Array, private readonly secrets?: OverlaySecrets) {}

  /** Is this a private overlay's tunnel table? */
  get private(): boolean { return this.secrets !== undefined; }

  /** The mac1 keys messages to us may carry, current secret first (rebuilt when the secrets rotate). */
  ownMacs(): readonly OwnMac1[] {
    const v = this.secrets?.version ?? 0;
    if (v !== this.version) {
      this.version = v;
      this.own = this.secrets
        ? this.secrets.accepted.map((keys) => ({ mac: new Blake2sMac(mixed(mac1Key(this.ownStaticX), keys)), keys }))
        : [{ mac: new Blake2sMac(mac1Key(this.ownStaticX)), keys: undefined }];
    }
    return this.own;
  }

  /** The secret our initiations use now. */
  current(): SecretKeys | undefined { return this.secrets?.current; }

  /** mac1 key for a message to the holder of `peerMac1` (its plain mac1Key), under `keys`. */
  mac1To(peerMac1: Uint8Array, keys: SecretKeys | undefined): Uint8Array {
    return keys ? mixed(peerMac1, keys) : peerMac1;
  }
}

function mixed(plainMac1Key: Uint8Array, keys: SecretKeys): Uint8Array {
  return blake2s(plainMac1Key, { key: keys.mac1 });
}
