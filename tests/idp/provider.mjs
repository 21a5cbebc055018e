// The upstream identity provider of the login tests: panva's oidc-provider with its
// development login and consent pages. Any login name signs in; the password is ignored.
// `alice` gets alice@example.com (verified); a name starting with `unverified` gets an
// unverified email; a name starting with `admin` is in the group `admins`.
import { createPrivateKey } from 'node:crypto';
import Provider from 'oidc-provider';

// SIGNING_KEY_PEM (a P-256 key, PKCS#8): sign ID tokens with it (ES256), so that a test
// holding the key can produce tokens the provider could have signed.
const signingKey = process.env.SIGNING_KEY_PEM
  ? { ...createPrivateKey(process.env.SIGNING_KEY_PEM).export({ format: 'jwk' }), kid: 'test-key', alg: 'ES256', use: 'sig' }
  : undefined;

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  // One client per way of sending the secret: Basic (OpenID Connect providers) and in the
  // form (GitHub's OAuth apps), as `${CLIENT_ID}-post`.
  clients: ['client_secret_basic', 'client_secret_post'].map((method) => ({
    client_id: method === 'client_secret_basic' ? process.env.CLIENT_ID : `${process.env.CLIENT_ID}-post`,
    client_secret: process.env.CLIENT_SECRET,
    redirect_uris: process.env.REDIRECT_URIS.split(','),
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: method,
    ...(signingKey ? { id_token_signed_response_alg: 'ES256' } : {}),
  })),
  ...(signingKey ? { jwks: { keys: [signingKey] } } : {}),
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          email: id.includes('@') ? id : `${id}@example.com`,
          email_verified: !id.startsWith('unverified'),
          name: id,
          groups: id.startsWith('admin') ? ['admins'] : ['users'],
        };
      },
    };
  },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'], groups: ['groups'] },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => true },
  ttl: { AccessToken: Number(process.env.ACCESS_TOKEN_TTL || 3600) },
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  cookies: { keys: ['oidc-provider-test-cookie-key'] },
});
provider.listen(port, '127.0.0.1', () => console.log(`listening on ${issuer}`));
