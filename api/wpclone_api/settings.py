"""API settings from the environment (prefix WPCLONE_API_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WPCLONE_API_")

    # Comma-separated bearer tokens, or a file with one per line (a mounted Secret).
    tokens: SecretStr = SecretStr("")
    tokens_file: Path | None = None
    namespace: str = Field("default", description="namespace where the API creates clones and restores")
    public_url: str = Field("", description="base of status_url links; empty: relative links")
    v1_timeout_seconds: float = Field(900.0, gt=0, description="how long the legacy v1 calls block")
    poll_seconds: float = Field(2.0, gt=0)

    def accepted_tokens(self) -> list[str]:
        tokens = [token.strip() for token in self.tokens.get_secret_value().split(",")]
        if self.tokens_file is not None:
            tokens += [line.strip() for line in self.tokens_file.read_text().splitlines()]
        return [token for token in tokens if token]
