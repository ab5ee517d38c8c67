// An OpenID provider for the OIDC tests: the `oidc-provider` package (npm) with its
// development login and consent pages, one confidential client, PKCE required, refresh
// tokens always issued and short-lived access tokens.
// Usage: node oidc_provider.mjs PORT REDIRECT_URI ACCESS_TOKEN_TTL_SECONDS
import Provider from 'oidc-provider';

const [port, redirectUri, accessTtl] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'web',
      // Characters that must be form-encoded in HTTP Basic (RFC 6749 §2.3.1).
      client_secret: 'web secret:&',
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  pkce: { required: () => true },
  ttl: { AccessToken: Number(accessTtl), IdToken: 3600, RefreshToken: 86400, Grant: 86400 },
  issueRefreshToken: async () => true,
  findAccount: async (ctx, id) => ({
    accountId: id,
    claims: async () => ({ sub: id, email: `${id}@example.com` }),
  }),
  claims: { openid: ['sub'], email: ['email'] },
  features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
  cookies: { keys: ['test-only-cookie-signing-key'] },
});
provider.proxy = false;

const server = provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`listening on ${port}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
