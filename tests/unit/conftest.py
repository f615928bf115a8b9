"""Unit tests build the operator's Settings from keywords: the copy image it requires for copy Jobs (the
default copy_in) comes from the environment, as the chart gives it."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def copy_image(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WPCLONE_COPY_IMAGE", "localhost/wpclone/wpclone:unit")
