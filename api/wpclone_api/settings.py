"""API settings from the environment (prefix WPCLONE_API_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from wpclone_api import quotas, tenants
from wpclone_common.resources import MAX_TTL_MINUTES, DatabaseEngine


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WPCLONE_API_")

    # Bearer tokens as `tenant:token` entries, comma-separated, or a file with one per line (a mounted
    # Secret, read on every request so that tokens rotate without a restart). A bare `token` belongs
    # to the tenant `default`: the format of installs before tenants existed keeps working.
    tokens: SecretStr = SecretStr("")
    tokens_file: Path | None = None
    # Tokens of admins, who see every tenant's jobs; same format. What an admin creates is its tenant's.
    admin_tokens: SecretStr = SecretStr("")
    admin_tokens_file: Path | None = None
    # Webhook signing secrets as `tenant:secret` entries, comma-separated: a request's callback_url gets
    # events signed with its tenant's (a tenant without one may not name a callback_url).
    webhook_secrets: SecretStr = SecretStr("")
    namespace: str = Field("default", description="namespace where the API creates clones and restores")
    public_url: str = Field("", description="base of status_url links; empty: relative links")
    v1_timeout_seconds: float = Field(900.0, gt=0, description="how long the legacy v1 calls block")
    poll_seconds: float = Field(2.0, gt=0)
    # Job status and quotas read the namespace's clones and restores from a watch (off: from the
    # apiserver on every request; the unit tests' fake cluster has no watch).
    watch_cache: bool = True
    # Per tenant: clones that exist (all but Expired), jobs at work at once (clones not yet Ready or
    # Failed, and restores running), and the longest ttl_minutes a request may ask for (keep the
    # operator's WPCLONE_DEFAULT_TTL_MINUTES within it: it applies when a request names none).
    max_clones_per_tenant: int = Field(20, ge=1)
    max_running_jobs_per_tenant: int = Field(5, ge=1)
    max_ttl_minutes: int = Field(1440, ge=1, le=MAX_TTL_MINUTES)
    default_database_engine: DatabaseEngine = Field("mysql", description=(
        "where a requested clone keeps its tables when the request does not say: mysql or sqlite"))
    # How long a one-click login link into a clone stays valid (it works once).
    login_link_seconds: int = Field(120, ge=10, le=3600)
    # The dashboard (/ui/): how long a sign-in lasts, and the key that signs its session cookies (empty:
    # derived from the tokens, the same in every replica; changing a token signs everyone out).
    session_hours: int = Field(12, ge=1, le=24 * 30)
    session_secret: SecretStr = SecretStr("")
    # Per token, in each API replica: requests a second on average, and at once after a quiet spell.
    rate_limit_per_second: float = Field(10.0, gt=0)
    rate_limit_burst: int = Field(20, ge=1)

    def token_table(self) -> tuple[tenants.ApiToken, ...]:
        return tenants.token_table(_read(self.tokens, self.tokens_file), _read(self.admin_tokens,
                                                                               self.admin_tokens_file))

    def webhook_secret(self, tenant: str) -> str | None:
        for entry in self.webhook_secrets.get_secret_value().replace("\n", ",").split(","):
            name, _, secret = entry.strip().partition(":")
            if name == tenant and secret:
                return secret
        return None

    def limits(self) -> quotas.Limits:
        return quotas.Limits(self.max_clones_per_tenant, self.max_running_jobs_per_tenant, self.max_ttl_minutes)


def _read(tokens: SecretStr, tokens_file: Path | None) -> str:
    return "\n".join([tokens.get_secret_value(), tokens_file.read_text() if tokens_file is not None else ""])
