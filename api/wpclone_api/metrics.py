"""Prometheus metrics of the API: requests by route and status, and their latency."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

REQUESTS = Counter("wpclone_api_requests", "API requests", ["method", "route", "status"])
LATENCY = Histogram("wpclone_api_request_seconds", "API request latency", ["method", "route"])


def instrument(app: FastAPI) -> None:
    # Counts only, no job data: served without a token, like /healthz, for in-cluster scrapers; at
    # /metrics itself (a mounted app would answer it with a redirect to /metrics/).
    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.middleware("http")
    async def measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        LATENCY.labels(request.method, route).observe(time.perf_counter() - started)
        return response
