"""`python -m wpclone_operator`: run the operator with the namespaces and probes from the settings."""

from __future__ import annotations

import kopf

from wpclone_operator import main  # noqa: F401 - registers the handlers
from wpclone_operator.main import SETTINGS


def run() -> None:
    kopf.configure(log_format=kopf.LogFormat.JSON, log_refkey="k8s")
    kopf.run(
        clusterwide=not SETTINGS.namespaces,
        namespaces=SETTINGS.namespaces,
        standalone=True,
        liveness_endpoint=SETTINGS.liveness_endpoint,
    )


if __name__ == "__main__":
    run()
