// bench only: what a team would write in Node for register-options, mfa-options and
// mfa-complete — node:http, @simplewebauthn/server, AWS SDK v3 (DynamoDB document client, KMS),
// jose.
//
// Not part of the service. bench/compare.py runs one process of this server per endpoint (as
// Lambda runs one function per endpoint) and reads each process's CPU from /proc. Every request
// does the same work as this project's function, against the same local moto, with its own
// simple tables (prefix EQ_TABLE_PREFIX); see bench/equivalents/python/app.py for the list of
// store calls, which is the same here. Independent reads run concurrently (Promise.all), as the
// Rust functions run them with tokio::try_join!.
//
// Environment: PORT, AWS_ENDPOINT_URL (+ the usual AWS_* settings), EQ_TABLE_PREFIX,
// JWT_KMS_KEY_IDS (comma-separated), JWT_KMS_SIGNING_KEY_ID, JWT_ISSUER, JWT_AUDIENCE.

import { createPublicKey, randomUUID } from 'node:crypto';
import http from 'node:http';

import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetPublicKeyCommand, KMSClient, SignCommand } from '@aws-sdk/client-kms';
import {
  DeleteCommand, DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand, UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import {
  generateAuthenticationOptions, generateRegistrationOptions, verifyAuthenticationResponse,
} from '@simplewebauthn/server';
import { calculateJwkThumbprint, decodeProtectedHeader, exportJWK, jwtVerify } from 'jose';

const ISSUER = process.env.JWT_ISSUER;
const AUDIENCE = process.env.JWT_AUDIENCE;
const PREFIX = process.env.EQ_TABLE_PREFIX;
const T = {
  tenants: `${PREFIX}tenants`, users: `${PREFIX}users`, credentials: `${PREFIX}credentials`,
  challenges: `${PREFIX}challenges`, audit: `${PREFIX}audit`,
};
const METHODS = ['webauthn_passkey', 'webauthn_fido'];
const MAX_CREDENTIAL_ID = 768;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const ddb = DynamoDBDocumentClient.from(new DynamoDBClient({}));
const kms = new KMSClient({});

// Once per process, like the Rust functions' cold start: the verification keys and the signing key.
async function publicKey(keyId) {
  const out = await kms.send(new GetPublicKeyCommand({ KeyId: keyId }));
  const key = createPublicKey({ key: Buffer.from(out.PublicKey), format: 'der', type: 'spki' });
  return { key, kid: await calculateJwkThumbprint(await exportJWK(key), 'sha256') };
}
const VERIFY_KEYS = new Map();
for (const keyId of process.env.JWT_KMS_KEY_IDS.split(',')) {
  const { key, kid } = await publicKey(keyId);
  VERIFY_KEYS.set(kid, key);
}
const SIGNING_KEY_ID = process.env.JWT_KMS_SIGNING_KEY_ID;
const SIGNING_KID = (await publicKey(SIGNING_KEY_ID)).kid;

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');
const tenantUser = (tenant, user) => `${tenant}#${user}`;
const uuidBytes = (id) => Buffer.from(id.replace(/-/g, ''), 'hex');

function uuidField(value, field) {
  if (typeof value !== 'string' || !UUID.test(value)) {
    throw new ApiError(400, 'invalid_request', `${field} must be a UUID`);
  }
  return value.toLowerCase();
}

function optionalTenantHeader(req) {
  const value = req.headers['x-tenant-id'];
  return value === undefined ? null : uuidField(value, 'X-Tenant-ID');
}

function log(req, message, fields) {
  // One structured line per request, as the Rust functions log (and a Lambda would ship).
  process.stdout.write(`${JSON.stringify({ ...fields, message, request_id: req.headers['x-request-id'] ?? randomUUID() })}\n`);
}

function conditionFailed(err) {
  return err?.name === 'ConditionalCheckFailedException';
}

async function listCredentials(tenant, user) {
  const items = [];
  let start;
  do {
    const out = await ddb.send(new QueryCommand({
      TableName: T.credentials,
      KeyConditionExpression: 'tenant_user = :tu',
      ExpressionAttributeValues: { ':tu': tenantUser(tenant, user) },
      ConsistentRead: true,
      ExclusiveStartKey: start,
    }));
    items.push(...(out.Items ?? []));
    start = out.LastEvaluatedKey;
  } while (start);
  return items;
}

async function authenticate(req) {
  // The bearer JWT: ES256 only, key by kid, iss/aud/exp/nbf, no key-location headers.
  const auth = req.headers.authorization ?? '';
  if (!auth.startsWith('Bearer ')) throw new ApiError(401, 'unauthenticated', 'a bearer token is required');
  const token = auth.slice(7);
  let payload;
  try {
    const header = decodeProtectedHeader(token);
    if (header.typ !== 'JWT' || ['jku', 'jwk', 'x5u', 'x5c'].some((h) => h in header)) throw new Error('header');
    const key = VERIFY_KEYS.get(header.kid);
    if (!key) throw new Error('kid');
    ({ payload } = await jwtVerify(token, key, {
      algorithms: ['ES256'], issuer: ISSUER, audience: AUDIENCE, typ: 'JWT',
      requiredClaims: ['exp', 'iat', 'sub', 'tenant_id'],
    }));
  } catch {
    throw new ApiError(401, 'unauthenticated', 'the token is not valid');
  }
  if (payload.scope !== undefined && payload.scope !== 'mfa_setup') {
    throw new ApiError(403, 'insufficient_scope', 'the token does not allow MFA enrollment');
  }
  return payload;
}

const descriptors = (creds) => creds.map((c) => ({ id: c.credential_id, transports: c.transports ?? [] }));

async function registerOptions(req, url) {
  const now = Math.floor(Date.now() / 1000);
  const method = url.searchParams.get('method_type') ?? 'webauthn_passkey';
  if (!METHODS.includes(method)) throw new ApiError(400, 'invalid_request', 'unknown method_type');
  if (req.headers['x-tenant-id'] === undefined) throw new ApiError(400, 'invalid_request', 'X-Tenant-ID is required');
  const header = uuidField(req.headers['x-tenant-id'], 'X-Tenant-ID');
  const claims = await authenticate(req);
  const { tenant_id: tenantId, sub: userId } = claims;
  if (header !== tenantId) throw new ApiError(403, 'tenant_mismatch', "X-Tenant-ID is not the token's tenant");

  const [tenantOut, userOut, existing] = await Promise.all([
    ddb.send(new GetCommand({ TableName: T.tenants, Key: { tenant_id: tenantId } })),
    ddb.send(new GetCommand({ TableName: T.users, Key: { tenant_id: tenantId, user_id: userId } })),
    listCredentials(tenantId, userId),
  ]);
  const tenant = tenantOut.Item;
  const user = userOut.Item;
  if (!tenant) throw new ApiError(404, 'tenant_not_found', 'the tenant does not exist');
  if (!user || user.deleted_at) throw new ApiError(404, 'user_not_found', 'the user does not exist');
  if (existing.length && (claims.auth_time === undefined || now - claims.auth_time > tenant.reauthentication_window_secs)) {
    throw new ApiError(401, 'reauthentication_required', 'log in again to add an authenticator');
  }
  if (!tenant.methods.includes(method)) {
    throw new ApiError(501, 'method_not_enabled', `${method} is not enabled for this tenant`);
  }

  const passkey = method === 'webauthn_passkey';
  const uv = passkey ? 'required' : tenant.user_verification;
  const options = await generateRegistrationOptions({
    rpName: tenant.name,
    rpID: tenant.rp_id,
    userName: user.email,
    userID: uuidBytes(userId),
    userDisplayName: user.display_name,
    timeout: tenant.challenge_timeout_secs * 1000,
    attestationType: 'none',
    excludeCredentials: descriptors(existing),
    authenticatorSelection: passkey
      ? { residentKey: 'required', requireResidentKey: true, userVerification: uv }
      : { residentKey: 'discouraged', requireResidentKey: false, userVerification: uv, authenticatorAttachment: 'cross-platform' },
    supportedAlgorithmIDs: [-7, -257],
    preferredAuthenticatorType: passkey ? undefined : 'securityKey',
  });
  const state = { challenge: options.challenge, user_verification: uv, method_type: method, rp_id: tenant.rp_id, origins: tenant.origins };
  await ddb.send(new PutCommand({
    TableName: T.challenges,
    Item: {
      challenge_key: `registration#${options.challenge}`,
      kind: 'registration',
      tenant_id: tenantId,
      user_id: userId,
      tenant_user: tenantUser(tenantId, userId),
      method_type: method,
      state: JSON.stringify(state),
      created_at: now,
      expires_at: now + tenant.challenge_timeout_secs,
    },
    ConditionExpression: 'attribute_not_exists(challenge_key)',
  }));
  log(req, 'registration options issued', { tenant_id: tenantId, user_id: userId, method_type: method, excluded: existing.length });
  return [200, { options }];
}

const challengeNotFound = () => new ApiError(404, 'challenge_not_found', 'the MFA challenge does not exist, has expired or was already used');

function bodyChallengeId(body) {
  if (typeof body?.challenge_id !== 'string') throw new ApiError(400, 'invalid_request', 'challenge_id is required');
  return uuidField(body.challenge_id, 'challenge_id');
}

async function mfaOptions(req, url, body) {
  const now = Math.floor(Date.now() / 1000);
  const challengeId = bodyChallengeId(body);
  const key = `mfa#${challengeId}`;
  const challenge = (await ddb.send(new GetCommand({ TableName: T.challenges, Key: { challenge_key: key }, ConsistentRead: true }))).Item;
  if (!challenge || challenge.kind !== 'mfa' || challenge.expires_at <= now) throw challengeNotFound();
  const header = optionalTenantHeader(req);
  const { tenant_id: tenantId, user_id: userId } = challenge;
  if (header !== null && header !== tenantId) throw new ApiError(403, 'tenant_mismatch', "X-Tenant-ID is not the challenge's tenant");

  const [tenantOut, creds] = await Promise.all([
    ddb.send(new GetCommand({ TableName: T.tenants, Key: { tenant_id: tenantId } })),
    listCredentials(tenantId, userId),
  ]);
  const tenant = tenantOut.Item;
  if (!tenant) throw new ApiError(404, 'tenant_not_found', 'the tenant does not exist');
  if (!creds.length) throw new ApiError(404, 'no_credentials', 'the user has no registered authenticator');
  const uv = tenant.user_verification === 'required' || creds.every((c) => c.user_verified) ? 'required' : 'preferred';
  const options = await generateAuthenticationOptions({
    rpID: tenant.rp_id,
    timeout: tenant.challenge_timeout_secs * 1000,
    allowCredentials: descriptors(creds),
    userVerification: uv,
  });
  const state = { challenge: options.challenge, user_verification: uv, tenant, credentials: creds };
  try {
    await ddb.send(new UpdateCommand({
      TableName: T.challenges,
      Key: { challenge_key: key },
      UpdateExpression: 'SET #state = :state',
      ConditionExpression: 'attribute_exists(challenge_key) AND #kind = :kind AND #exp > :now',
      ExpressionAttributeNames: { '#state': 'state', '#kind': 'kind', '#exp': 'expires_at' },
      ExpressionAttributeValues: { ':state': JSON.stringify(state), ':kind': 'mfa', ':now': now },
    }));
  } catch (err) {
    if (conditionFailed(err)) throw challengeNotFound();
    throw err;
  }
  log(req, 'MFA options issued', { tenant_id: tenantId, user_id: userId, allowed: creds.length });
  return [200, { options }];
}

function derToJose(der) {
  // ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } → r || s, 32 bytes each.
  let offset = der[1] & 0x80 ? 2 + (der[1] & 0x7f) : 2;
  const part = () => {
    const len = der[offset + 1];
    let int = der.subarray(offset + 2, offset + 2 + len);
    offset += 2 + len;
    while (int.length > 32 && int[0] === 0) int = int.subarray(1);
    const out = Buffer.alloc(32);
    Buffer.from(int).copy(out, 32 - int.length);
    return out;
  };
  return Buffer.concat([part(), part()]);
}

async function signToken(claims) {
  // ES256 JWT signed by KMS (RAW message, DER signature → JOSE r||s).
  const header = { alg: 'ES256', typ: 'JWT', kid: SIGNING_KID };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const out = await kms.send(new SignCommand({
    KeyId: SIGNING_KEY_ID, Message: Buffer.from(input), MessageType: 'RAW', SigningAlgorithm: 'ECDSA_SHA_256',
  }));
  return `${input}.${b64url(derToJose(Buffer.from(out.Signature)))}`;
}

async function writeAudit(req, { outcome, code, tenantId, userId, credentialId, method, retentionSecs, now }) {
  const record = {
    tenant_id: tenantId,
    event_key: `${String(now).padStart(11, '0')}#${randomUUID()}`,
    tenant_user: tenantUser(tenantId, userId),
    event: 'mfa_webauthn',
    outcome,
    user_id: userId,
    credential_id: credentialId,
    ip: req.headers['x-forwarded-for'] ?? req.socket.remoteAddress,
    user_agent: req.headers['user-agent'] ?? '',
    at: now,
    expires_at: now + retentionSecs,
    ...(code ? { code } : {}),
    ...(method ? { method } : {}),
  };
  process.stdout.write(`${JSON.stringify({ audit: true, ...record })}\n`);
  try {
    await ddb.send(new PutCommand({ TableName: T.audit, Item: record }));
  } catch (err) { // the answer does not depend on the audit trail
    process.stdout.write(`${JSON.stringify({ level: 'error', message: 'audit record not written', error: String(err) })}\n`);
  }
}

async function mfaComplete(req, url, body) {
  const now = Math.floor(Date.now() / 1000);
  const header = optionalTenantHeader(req);
  const challengeId = bodyChallengeId(body);
  const credential = body.credential;
  if (typeof credential?.rawId !== 'string') throw new ApiError(400, 'invalid_request', 'credential is required');
  const rawId = Buffer.from(credential.rawId, 'base64url');
  if (rawId.length > MAX_CREDENTIAL_ID) throw new ApiError(400, 'invalid_request', 'rawId is too long');
  const presented = b64url(rawId);

  const key = `mfa#${challengeId}`;
  let condition = 'attribute_exists(challenge_key) AND #kind = :kind AND #exp > :now AND attribute_exists(#state)';
  const names = { '#kind': 'kind', '#exp': 'expires_at', '#state': 'state' };
  const values = { ':kind': 'mfa', ':now': now };
  if (header !== null) {
    condition += ' AND #tenant = :tenant';
    names['#tenant'] = 'tenant_id';
    values[':tenant'] = header;
  }
  let challenge;
  try {
    challenge = (await ddb.send(new DeleteCommand({
      TableName: T.challenges, Key: { challenge_key: key }, ConditionExpression: condition,
      ExpressionAttributeNames: names, ExpressionAttributeValues: values, ReturnValues: 'ALL_OLD',
    }))).Attributes;
  } catch (err) {
    if (conditionFailed(err)) throw challengeNotFound();
    throw err;
  }
  const { tenant_id: tenantId, user_id: userId } = challenge;
  const state = JSON.parse(challenge.state);
  const { tenant } = state;
  const retentionSecs = tenant.audit_retention_days * 86400;
  const record = state.credentials.find((c) => c.credential_id === presented);
  const refuse = async (code, message, method) => {
    await writeAudit(req, { outcome: 'failure', code, tenantId, userId, credentialId: presented, method, retentionSecs, now });
    return new ApiError(401, code, message);
  };
  if (!record) throw await refuse('invalid_credential', 'the credential could not be verified');
  let verified;
  try {
    verified = await verifyAuthenticationResponse({
      response: credential,
      expectedChallenge: state.challenge,
      expectedOrigin: tenant.origins,
      expectedRPID: tenant.rp_id,
      credential: { id: record.credential_id, publicKey: Buffer.from(record.public_key, 'base64url'), counter: record.sign_count, transports: record.transports },
      requireUserVerification: state.user_verification === 'required',
    });
  } catch {
    verified = { verified: false };
  }
  if (!verified.verified) throw await refuse('invalid_credential', 'the credential could not be verified', record.method_type);
  const info = verified.authenticationInfo;
  const handle = credential.response?.userHandle;
  if (handle && !Buffer.from(handle, 'base64url').equals(uuidBytes(userId))) {
    throw await refuse('invalid_credential', 'the credential could not be verified', record.method_type);
  }
  if ((info.credentialDeviceType === 'multiDevice') !== record.backup_eligible) {
    throw await refuse('possible_cloned_authenticator', 'backup eligibility changed', record.method_type);
  }

  // The counter must advance past the live stored value (a synced passkey may not advance).
  const lenient = record.backup_eligible || record.registration_sign_count === 0;
  const credKey = { tenant_user: tenantUser(tenantId, userId), credential_id: presented };
  try {
    await ddb.send(new UpdateCommand({
      TableName: T.credentials,
      Key: credKey,
      UpdateExpression: 'SET sign_count = :count, backup_state = :bs, last_used_at = :now ADD use_count :one',
      ConditionExpression: 'attribute_exists(credential_id) AND sign_count < :count',
      ExpressionAttributeValues: { ':count': info.newCounter, ':bs': info.credentialBackedUp, ':now': now, ':one': 1 },
    }));
  } catch (err) {
    if (!conditionFailed(err) || !lenient) {
      throw await refuse('possible_cloned_authenticator', 'the counter did not advance', record.method_type);
    }
    await ddb.send(new UpdateCommand({
      TableName: T.credentials,
      Key: credKey,
      UpdateExpression: 'SET backup_state = :bs, last_used_at = :now ADD use_count :one, counter_regressions :one',
      ConditionExpression: 'attribute_exists(credential_id)',
      ExpressionAttributeValues: { ':bs': info.credentialBackedUp, ':now': now, ':one': 1 },
    }));
  }

  const amr = [record.backup_eligible ? 'swk' : 'hwk', ...(info.userVerified ? ['user'] : []), 'mfa'];
  const exp = now + tenant.token_ttl_secs;
  const token = await signToken({
    sub: userId, tenant_id: tenantId, iss: ISSUER, aud: AUDIENCE, iat: now, exp, jti: randomUUID(), auth_time: now, amr,
  });
  await writeAudit(req, { outcome: 'success', tenantId, userId, credentialId: presented, method: record.method_type, retentionSecs, now });
  log(req, 'MFA completed', { tenant_id: tenantId, user_id: userId, method: record.method_type });
  const expiresAt = new Date(exp * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  return [200, { token, expires_at: expiresAt, mfa_setup_required: false, enrollment_required: false }];
}

const ROUTES = {
  '/v1/users/me/mfa/webauthn/register': registerOptions,
  '/v1/auth/mfa/webauthn/options': mfaOptions,
  '/v1/auth/mfa/webauthn/complete': mfaComplete,
};

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    let status;
    let payload;
    try {
      const url = new URL(req.url, 'http://localhost');
      const route = req.method === 'POST' ? ROUTES[url.pathname] : undefined;
      if (!route) throw new ApiError(404, 'not_found', 'no such route');
      let body;
      if (chunks.length) {
        try {
          body = JSON.parse(Buffer.concat(chunks).toString());
        } catch {
          throw new ApiError(400, 'invalid_request', 'malformed JSON');
        }
      }
      [status, payload] = await route(req, url, body);
    } catch (err) {
      if (err instanceof ApiError) {
        [status, payload] = [err.status, { code: err.code, message: err.message }];
      } else {
        process.stdout.write(`${JSON.stringify({ level: 'error', message: 'internal error', error: String(err) })}\n`);
        [status, payload] = [500, { code: 'internal_error', message: 'internal error' }];
      }
    }
    const text = JSON.stringify(payload);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  });
});

const port = Number(process.env.PORT ?? 8080);
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ message: 'listening', port })}\n`);
});
