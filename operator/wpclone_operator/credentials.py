"""The logins users hand the operator by Secret name. Only Secrets that opt in (the credentials label)
are read: a WordPressClone or CloneRestore could otherwise make the operator send any Secret of its
namespace (a database password, a cloud key) to a URL of the author's choice."""

from __future__ import annotations

import base64
from typing import Any

from wpclone_common import constants, kube
from wpclone_engine.transfer import TransferError


def login_of(secret: dict[str, Any] | None, name: str) -> dict[str, str]:
    """The username and password of Secret `name` (its body from the API), or a TransferError saying why not."""
    if secret is None:
        raise TransferError(constants.CREDENTIALS_MISSING, f"Secret {name} with the admin login does not exist")
    labels = (secret.get("metadata") or {}).get("labels") or {}
    if labels.get(constants.LABEL_CREDENTIALS) != "true":
        raise TransferError(constants.CREDENTIALS_NOT_OPTED_IN,
                            f"Secret {name} is not labelled {constants.LABEL_CREDENTIALS}=true: the operator reads "
                            "only Secrets made to hold a site login")
    return login_data({key: base64.b64decode(value).decode(errors="replace")
                       for key, value in (secret.get("data") or {}).items()}, name)


def login_data(data: dict[str, str], name: str) -> dict[str, str]:
    """The username and password among a login Secret's decoded data."""
    missing = [key for key in ("username", "password") if not data.get(key)]
    if missing:
        raise TransferError(constants.CREDENTIALS_INVALID, f"Secret {name} lacks the key(s) {', '.join(missing)}")
    return {"username": data["username"], "password": data["password"]}


def read_login(namespace: str, name: str) -> dict[str, str]:
    return login_of(kube.get("v1", "Secret", namespace, name), name)
