"""Bearer-token authentication for every route but /healthz."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

bearer = HTTPBearer(auto_error=False, description="A token from WPCLONE_API_TOKENS")


def token_is_accepted(presented: str, accepted: list[str]) -> bool:
    # Compare against every token, without stopping early, in constant time each.
    matches = [hmac.compare_digest(presented.encode(), token.encode()) for token in accepted]
    return any(matches)


def require_token(request: Request,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    if not token_is_accepted(credentials.credentials, request.app.state.settings.accepted_tokens()):
        raise HTTPException(401, "invalid bearer token", headers={"WWW-Authenticate": "Bearer"})
