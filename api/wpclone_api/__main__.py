"""`python -m wpclone_api`: serve the REST API with uvicorn."""

from __future__ import annotations

import os

import uvicorn


def run() -> None:
    uvicorn.run("wpclone_api.app:create_app", factory=True, host=os.environ.get("WPCLONE_API_HOST", "0.0.0.0"),
                port=int(os.environ.get("WPCLONE_API_PORT", "8000")), proxy_headers=True, log_level="info")


if __name__ == "__main__":
    run()
