// The MCP TypeScript SDK's client connecting to this server with a Client ID Metadata
// Document URL as its client id: `node sdk_client.mjs <mcp url> <document url> <redirect uri>`.
// The consent step a browser would take is taken here: the page's form is read and approved.
// Prints one JSON line: the client id used, the tools listed, and what the consent page showed.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';

const [serverUrl, metadataUrl, redirectUrl] = process.argv.slice(2);
const kept = {};
const provider = {
  get redirectUrl() { return redirectUrl; },
  clientMetadataUrl: metadataUrl,
  get clientMetadata() {
    return {
      client_name: 'TypeScript SDK test client',
      redirect_uris: [redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  },
  clientInformation() { return kept.client; },
  saveClientInformation(client) { kept.client = client; },
  tokens() { return kept.tokens; },
  saveTokens(tokens) { kept.tokens = tokens; },
  redirectToAuthorization(url) { kept.authorizationUrl = url; },
  saveCodeVerifier(verifier) { kept.verifier = verifier; },
  codeVerifier() { return kept.verifier; },
};

const client = new Client({ name: 'cimd-test', version: '1.0.0' });
try {
  await client.connect(new StreamableHTTPClientTransport(new URL(serverUrl), { authProvider: provider }));
  throw new Error('the server let an unauthorized client in');
} catch (error) {
  if (!(error instanceof UnauthorizedError)) throw error;
}

const page = await fetch(kept.authorizationUrl);
if (page.status !== 200) throw new Error(`consent page: ${page.status} ${await page.text()}`);
const cookie = page.headers.get('set-cookie').split(';')[0];
const html = await page.text();
const field = (name) => html.match(new RegExp(`name="${name}" value="([^"]+)"`))[1];
const approved = await fetch(new URL('/authorize', kept.authorizationUrl), {
  method: 'POST',
  redirect: 'manual',
  headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams({
    request_id: field('request_id'), csrf_token: field('csrf_token'), username: 'ts-sdk-user', decision: 'approve',
  }),
});
const location = new URL(approved.headers.get('location'));
const transport = new StreamableHTTPClientTransport(new URL(serverUrl), { authProvider: provider });
await transport.finishAuth(location.searchParams.get('code'));
await client.connect(transport);
const { tools } = await client.listTools();
const verified = html.match(/Published by <strong>([^<]+)<\/strong>/)?.[1] ?? null;
console.log(JSON.stringify({ client_id: kept.client.client_id, tools: tools.length, verified }));
await client.close();
