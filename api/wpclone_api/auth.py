"""Who is calling: a bearer token names the caller's tenant; each token is rate-limited."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from wpclone_api import tenants
from wpclone_api.rate_limit import RateLimiter
from wpclone_api.settings import ApiSettings

bearer = HTTPBearer(auto_error=False, description="A token from WPCLONE_API_TOKENS (`tenant:token`)")


async def require_caller(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> tenants.Caller:
    settings: ApiSettings = request.app.state.settings
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    token = tenants.match_token(credentials.credentials, settings.token_table())
    if token is None:
        raise HTTPException(401, "invalid bearer token", headers={"WWW-Authenticate": "Bearer"})
    return admit(request, token)


def admit(request: Request, token: tenants.ApiToken) -> tenants.Caller:
    """The token's caller, once its rate limit lets this request through (by bearer token or session)."""
    settings: ApiSettings = request.app.state.settings
    limiter: RateLimiter = request.app.state.rate_limiter
    wait = limiter.wait_seconds(token.key)
    if wait > 0:
        raise HTTPException(429, f"rate limit exceeded: at most {settings.rate_limit_per_second:g} requests a "
                                 f"second per token (bursts of {settings.rate_limit_burst}); retry after "
                                 f"{math.ceil(wait)} s", headers={"Retry-After": str(math.ceil(wait))})
    return tenants.Caller(token.tenant, token.admin)


AuthenticatedCaller = Annotated[tenants.Caller, Depends(require_caller)]
