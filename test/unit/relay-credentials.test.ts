// Credentials minted from --turn-secret are what coturn's use-auth-secret checks (the TURN REST API):
// username "<expiry, unix seconds>:<user>", password base64(HMAC-SHA1(secret, username)).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { restCredentials } from '../../agent/nat/turn-relay.js';
import { TURN_CREDENTIAL_LIFETIME_S } from '../../agent/base/constants.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha1 } from '@noble/hashes/legacy.js';

test('username carries the expiry and the user; password is the HMAC-SHA1 of it, base64', () => {
  const c = restCredentials('Jefe', 'ab'.repeat(20), 1_700_000_000_500);
  assert.equal(c.username, `${1_700_000_000 + TURN_CREDENTIAL_LIFETIME_S}:${'ab'.repeat(20)}`);
  assert.match(c.password, /^[A-Za-z0-9+/]{27}=$/, '20 bytes of SHA-1 in base64');
  // An independent HMAC-SHA1 (@noble/hashes, not node:crypto) agrees.
  const mac = hmac(sha1, new TextEncoder().encode('Jefe'), new TextEncoder().encode(c.username));
  assert.equal(c.password, Buffer.from(mac).toString('base64'));
  assert.equal(restCredentials('Jefe', 'x', 0, 0).username, '0:x');
  assert.notEqual(restCredentials('Jefe', 'x', 0, 0).password, restCredentials('jefe', 'x', 0, 0).password, 'the secret matters');
  assert.notEqual(c.password, restCredentials('Jefe', 'ab'.repeat(20), 1_700_000_100_000).password, 'a later expiry, another password');
});
