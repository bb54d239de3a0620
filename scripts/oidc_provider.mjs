// A real OpenID Connect provider (the npm package oidc-provider) on loopback, for the
// sign-in tests. Its development login page takes any username with any password; the
// accounts' `groups` claim carries what refloop maps to a role.
//
// Usage: node scripts/oidc_provider.mjs CLIENT_ID CLIENT_SECRET REDIRECT_URI
// Prints "listening http://127.0.0.1:PORT" once it answers. `scripts/test` installs the
// package in target/oidc and sets REFLOOP_OIDC_PROVIDER to this script.
import http from 'node:http';
import { createRequire } from 'node:module';

const require = createRequire(process.env.TEST_OIDC_MODULES || import.meta.url);
const { default: Provider } = await import(require.resolve('oidc-provider'));

const [clientId, clientSecret, redirectUri] = process.argv.slice(2);
const groups = { ana: ['refloop-admins'], cole: ['care-team', 'staff'], nia: ['staff'], casey: ['care-team'] };

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    claims: { openid: ['sub'], profile: ['preferred_username', 'groups'] },
    // The profile claims in the ID token itself, as refloop reads them.
    conformIdTokenClaims: false,
    findAccount: async (ctx, id) => ({
      accountId: id,
      claims: async () => ({ sub: id, preferred_username: id, groups: groups[id] ?? [] }),
    }),
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true } },
    cookies: { keys: ['a key for tests only'] },
  });
  server.on('request', provider.callback());
  console.log(`listening ${issuer}`);
});
