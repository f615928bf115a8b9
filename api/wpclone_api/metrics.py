"""Prometheus metrics of the API: requests by route and status, and their latency."""

from __future__ import annotations

import time

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter("wpclone_api_requests", "API requests", ["method", "route", "status"])
LATENCY = Histogram("wpclone_api_request_seconds", "API request latency", ["method", "route"])


class Measured:
    """Counts and times each HTTP request at the ASGI level (a plain ASGI middleware: no task or
    stream per request, as Starlette's BaseHTTPMiddleware would add)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            REQUESTS.labels(scope["method"], route, str(status[0])).inc()
            LATENCY.labels(scope["method"], route).observe(time.perf_counter() - started)


def instrument(app: FastAPI) -> None:
    # Counts only, no job data: served without a token, like /healthz, for in-cluster scrapers; at
    # /metrics itself (a mounted app would answer it with a redirect to /metrics/).
    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(Measured)
