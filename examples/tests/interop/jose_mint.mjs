// Mints JWTs with `jose` (npm), a second independent implementation, for the security-policy
// tests. Usage: node jose_mint.mjs
// Generates RS256, ES256 and EdDSA keys and prints one JSON object: the public keys as a JWKS
// ("jwks", kids jose-rsa/jose-ec/jose-ed) and tokens ("tokens": name -> token).
import * as jose from 'jose';

const algorithms = { 'jose-rsa': 'RS256', 'jose-ec': 'ES256', 'jose-ed': 'EdDSA' };
const keys = [];
const signers = {};
for (const [kid, alg] of Object.entries(algorithms)) {
  const options = alg === 'EdDSA' ? { crv: 'Ed25519' } : {};
  const { publicKey, privateKey } = await jose.generateKeyPair(alg, options);
  keys.push({ ...(await jose.exportJWK(publicKey)), kid, alg });
  signers[kid] = { alg, privateKey };
}

async function sign(kid, { scope = 'read', audience = 'api', expires = '10m' } = {}) {
  const { alg, privateKey } = signers[kid];
  return new jose.SignJWT({ scope })
    .setProtectedHeader({ alg, kid, typ: 'JWT' })
    .setIssuer('https://idp.example')
    .setAudience(audience)
    .setSubject('alice')
    .setIssuedAt()
    .setExpirationTime(expires)
    .sign(privateKey);
}

const tokens = {
  jose_rs256: await sign('jose-rsa'),
  jose_es256: await sign('jose-ec'),
  jose_eddsa: await sign('jose-ed'),
  jose_expired: await sign('jose-ec', { expires: Math.floor(Date.now() / 1000) - 3600 }),
  jose_wrong_audience: await sign('jose-ed', { audience: 'other' }),
};
console.log(JSON.stringify({ jwks: { keys }, tokens }));
