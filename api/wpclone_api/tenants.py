"""Tenants: who owns a token, and which custom resources and Secrets a caller may see (pure)."""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import Any

from wpclone_common import constants

MANAGED_BY_API = "wpclone-api"
# The tenant of a bare token line, and of what the API made before tenants existed: installs whose
# tokens file has no `tenant:` prefixes keep working as one tenant.
DEFAULT_TENANT = "default"
TENANT_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")  # a DNS label: also a valid label value


@dataclass(frozen=True)
class ApiToken:
    tenant: str
    token: str = field(repr=False)  # never in a log line or an error
    admin: bool = False

    @property
    def key(self) -> str:
        """Names the token's rate-limit bucket without keeping the token itself."""
        return hashlib.sha256(self.token.encode()).hexdigest()


@dataclass(frozen=True)
class Caller:
    """Who is calling: their tenant labels what they create; an admin sees every tenant."""

    tenant: str
    admin: bool = False


def parse_tokens(text: str, admin: bool = False) -> list[ApiToken]:
    """Entries `tenant:token` (or a bare `token`, tenant `default`), one per line or comma-separated.
    A token that itself holds a colon must be written with its tenant (`default:ab:cd`)."""
    tokens = []
    entries = [entry.strip() for line in text.splitlines() for entry in line.split(",")]
    for number, entry in enumerate((entry for entry in entries if entry), start=1):
        tenant, colon, token = entry.partition(":")
        if not colon:
            tenant, token = DEFAULT_TENANT, entry
        if not TENANT_NAME.fullmatch(tenant):  # the message names the entry, never its token
            raise ValueError(f"token entry {number}: the tenant before ':' must be a DNS label (a-z, 0-9, -)")
        if not token:
            raise ValueError(f"token entry {number}: no token after the tenant {tenant}")
        tokens.append(ApiToken(tenant, token, admin))
    return tokens


@functools.lru_cache(maxsize=4)
def token_table(tenant_tokens: str, admin_tokens: str) -> tuple[ApiToken, ...]:
    """Parsed once per text: the tokens are read on every request, and change only when rotated."""
    table = (*parse_tokens(tenant_tokens), *parse_tokens(admin_tokens, admin=True))
    if len({entry.token for entry in table}) != len(table):
        raise ValueError("a token is listed twice: each token belongs to one tenant")
    return table


def match_token(presented: str, table: tuple[ApiToken, ...]) -> ApiToken | None:
    # Compare against every token, without stopping early, in constant time each.
    matches = [hmac.compare_digest(presented.encode(), entry.token.encode()) for entry in table]
    return next((entry for entry, matched in zip(table, matches, strict=True) if matched), None)


def tenant_of(resource: dict[str, Any]) -> str | None:
    labels = resource["metadata"].get("labels") or {}
    if constants.LABEL_TENANT in labels:
        return str(labels[constants.LABEL_TENANT])
    if labels.get(constants.LABEL_MANAGED_BY) == MANAGED_BY_API:
        return DEFAULT_TENANT  # made by the API before tenants existed, when all tokens were one tenant
    return None  # made with kubectl or GitOps: no tenant's, only admins see it


def can_see(caller: Caller, resource: dict[str, Any]) -> bool:
    return caller.admin or tenant_of(resource) == caller.tenant


def labels(tenant: str, job_id: str) -> dict[str, str]:
    """The labels of every object the API creates for a job."""
    return {constants.LABEL_JOB_ID: job_id, constants.LABEL_MANAGED_BY: MANAGED_BY_API,
            constants.LABEL_TENANT: tenant}


def credentials_labels(tenant: str, job_id: str) -> dict[str, str]:
    """A login Secret's: it opts in to being read by the operator (which reads no other Secret)."""
    return {**labels(tenant, job_id), constants.LABEL_CREDENTIALS: "true"}
