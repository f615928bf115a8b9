"""Moments as the resources write them (RFC 3339, UTC, whole seconds), and the TTL's arithmetic."""

from __future__ import annotations

import datetime

UTC = datetime.UTC


def now() -> datetime.datetime:
    return datetime.datetime.now(UTC)


def format_time(moment: datetime.datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def expires_at(created: str, ttl_minutes: int) -> str:
    """The TTL counts from the resource's creation, so a restart can neither reset nor lose it,
    and raising ttlMinutes extends it."""
    return format_time(parse_time(created) + datetime.timedelta(minutes=ttl_minutes))


def is_expired(expires: str | None, at: datetime.datetime) -> bool:
    return expires is not None and parse_time(expires) <= at
