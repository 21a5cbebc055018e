"""An MCP server of the user's own, in Python (FastMCP over Streamable HTTP), behind the
gateway: its `whoami` tool verifies the gateway's identity JWT against the gateway's JWKS and
returns the subject, as a real upstream would before trusting it.

Usage: identity_server.py PORT JWKS_URL ISSUER
"""

import sys

import jwt
from mcp.server.fastmcp import Context, FastMCP

port, jwks_url, issuer = int(sys.argv[1]), sys.argv[2], sys.argv[3]
audience = f"http://127.0.0.1:{port}/mcp"
keys = jwt.PyJWKClient(jwks_url)
server = FastMCP("identity-upstream", host="127.0.0.1", port=port)


@server.tool()
def whoami(ctx: Context) -> str:
    """The caller, as the gateway's verified identity JWT names them."""
    header = ctx.request_context.request.headers.get("authorization", "")
    token = header.removeprefix("Bearer ").strip()
    key = keys.get_signing_key_from_jwt(token)
    claims = jwt.decode(token, key, algorithms=["ES256"], audience=audience, issuer=issuer)
    return f"{claims['sub']} via {claims['client_id']}"


server.run(transport="streamable-http")
