"""The dashboard under /ui/: the same tenants, tokens and actions as the REST API, for people.

Server-rendered pages (Jinja2, escaped) whose forms work without JavaScript; a small script refreshes
the job tables, counts down each clone's time left and asks before a delete. A sign-in keeps a session
cookie (HttpOnly, SameSite=Strict, signed; the token itself is never in it, in a page or in a URL), and
every form carries a CSRF token bound to that session. Each action is the REST route's own
(`actions`), so a refusal reads the same here as there."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from wpclone_api import actions, clones, jobs, restores, sessions, tenants
from wpclone_api.auth import admit
from wpclone_api.schemas import CloneRequest, RestoreParts, RestoreRequest, RollbackRequest, SiteLogin
from wpclone_common import constants, times

router = APIRouter(prefix="/ui", include_in_schema=False)
HERE = Path(__file__).parent / "ui"
templates = Jinja2Templates(directory=HERE / "templates")
SESSION_COOKIE, NOTICE_COOKIE = "wpclone_session", "wpclone_notice"
EXTEND_MINUTES = 30
MAX_FORM_BYTES = 64 * 1024
STATIC = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
# No inline script or style, no framing, a referrer only to the dashboard itself (a clone never learns its
# address; "no-referrer" would make browsers send its forms with `Origin: null`).
HEADERS = {"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                      "frame-ancestors 'none'; form-action 'self' http: https:; base-uri 'none'",
           "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin", "Cache-Control": "no-store",
           "X-Frame-Options": "DENY"}
PROGRESS_STEPS = ["", "database", "files", "commit", "done"]
RESTORE_PARTS = ("database", "uploads", "themes", "plugins", "content")


class SignedOut(Exception):
    """The request has no valid session: the browser goes to the sign-in page."""


# --- sessions --------------------------------------------------------------------------------------

def _tokens(request: Request) -> tuple[tuple[tenants.ApiToken, ...], bytes]:
    """The token table and the session key made from it, read once per request (the table may be a file)."""
    if not hasattr(request.state, "tokens"):
        settings = actions.settings_of(request)
        table = settings.token_table()
        request.state.tokens = table, sessions.session_key(settings.session_secret.get_secret_value(), table)
    tokens: tuple[tuple[tenants.ApiToken, ...], bytes] = request.state.tokens
    return tokens


def _key(request: Request) -> bytes:
    return _tokens(request)[1]


def _session(request: Request) -> tuple[tenants.Caller, str]:
    """The signed-in caller (rate-limited as their token is) and their session cookie."""
    cookie = request.cookies.get(SESSION_COOKIE, "")
    table, key = _tokens(request)
    token = sessions.read(cookie, key, table, int(time.time())) if cookie else None
    if token is None:
        raise SignedOut
    request.state.caller = admit(request, token)
    return request.state.caller, cookie


async def _form(request: Request) -> dict[str, str]:
    """A posted form's fields (the last value of each), bounded in size. A browser names the page a form
    came from (Origin): one of another site's is refused, a sign-in too (no one is signed in as someone
    else by a page they visited)."""
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        raise HTTPException(403, "this form was not sent from the dashboard")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(413, "the form is too large")
    try:
        fields = parse_qs(body.decode(), keep_blank_values=True, max_num_fields=50)
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(400, "the form could not be read") from None
    return {name: values[-1] for name, values in fields.items()}


async def _posted(request: Request) -> tuple[tenants.Caller, dict[str, str]]:
    """A form posted by a signed-in caller from one of this session's own pages (CSRF token checked)."""
    caller, cookie = _session(request)
    form = await _form(request)
    if not sessions.csrf_holds(cookie, _key(request), form.get("csrf", "")):
        raise HTTPException(403, "this form has expired or was not sent from the dashboard: reload the page")
    return caller, form


def _secure(response: Response) -> Response:
    response.headers.update(HEADERS)
    return response


def _page(request: Request, template: str, context: dict[str, Any], status_code: int = 200) -> Response:
    cookie = request.cookies.get(SESSION_COOKIE, "")
    notice = "" if template.startswith("_") else request.cookies.get(NOTICE_COOKIE, "")  # a page's, not a part's
    response = templates.TemplateResponse(request, template, {
        "csrf": sessions.csrf_token(cookie, _key(request)) if cookie else "", "notice": notice[:500],
        "tenant": getattr(getattr(request.state, "caller", None), "tenant", None), **context}, status_code=status_code)
    if notice:
        response.delete_cookie(NOTICE_COOKIE, path="/ui")
    return _secure(response)


def _go(request: Request, path: str, notice: str = "") -> Response:
    """Post/redirect/get, with a one-time notice for the next page."""
    response = RedirectResponse(path, status_code=303)
    if notice:
        response.set_cookie(NOTICE_COOKIE, notice[:500], max_age=60, path="/ui", httponly=True, samesite="strict",
                            secure=_https(request))
    return _secure(response)


def _https(request: Request) -> bool:
    public = actions.settings_of(request).public_url
    return public.startswith("https://") if public else request.url.scheme == "https"


def _message(error: HTTPException) -> str:
    return str(error.detail.get("message") if isinstance(error.detail, dict) else error.detail)


async def _run(request: Request, action: Callable[[], Awaitable[Response]],
               on_refusal: Callable[[], Awaitable[tuple[str, dict[str, Any]] | None]] | None = None) -> Response:
    """An action's response; signed out: to the sign-in page; refused: the page `on_refusal` names (the
    form again) with the message, or else an error page."""
    try:
        return await action()
    except SignedOut:
        return _go(request, "/ui/login")
    except ValidationError as invalid:
        error = HTTPException(422, actions.invalid(invalid.errors()))
    except HTTPException as refused:
        error = refused
    page: tuple[str, dict[str, Any]] | None = None
    if on_refusal is not None:
        with contextlib.suppress(HTTPException, SignedOut):
            page = await on_refusal()
    template, context = page or ("error.html", {})
    return _page(request, template, {**context, "error": _message(error)}, status_code=error.status_code)


# --- pages -----------------------------------------------------------------------------------------

@router.get("")
async def root() -> Response:
    return RedirectResponse("/ui/", status_code=308)


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> Response:
    return _page(request, "login.html", {})


@router.post("/login")
async def sign_in(request: Request) -> Response:
    try:
        form = await _form(request)
    except HTTPException as refused:
        return _page(request, "login.html", {"error": _message(refused)}, status_code=refused.status_code)
    settings = actions.settings_of(request)
    token = tenants.match_token(form.get("token", ""), _tokens(request)[0])
    if token is None:
        return _page(request, "login.html", {"error": "that token is not valid"}, status_code=401)
    admit(request, token)  # failed sign-ins cost nothing; a working token's count as its requests do
    expires = int(time.time()) + settings.session_hours * 3600
    response = _go(request, "/ui/")
    response.set_cookie(SESSION_COOKIE, sessions.issue(token, _key(request), expires), max_age=settings.session_hours
                        * 3600, path="/ui", httponly=True, samesite="strict", secure=_https(request))
    return response


@router.post("/logout")
async def sign_out(request: Request) -> Response:
    async def out() -> Response:
        await _posted(request)
        response = _go(request, "/ui/login", "Signed out.")
        response.delete_cookie(SESSION_COOKIE, path="/ui")
        return response
    return await _run(request, out)


@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    return await _tables_page(request, "home.html")


@router.get("/live/jobs", response_class=HTMLResponse)
async def live_jobs(request: Request) -> Response:
    """The home page's tables alone, for the script's refresh."""
    return await _tables_page(request, "_jobs.html")


async def _tables_page(request: Request, template: str) -> Response:
    async def show() -> Response:
        caller, _ = _session(request)
        return _page(request, template, await _tables(request, caller))
    return await _run(request, show)


async def _tables(request: Request, caller: tenants.Caller) -> dict[str, Any]:
    clone_list = await actions.visible_clones(request, caller)
    restore_list = await actions.visible_restores(request, caller)
    return {"tenant": caller.tenant, "clones": [clone_row(clone) for clone in clone_list],
            "restores": restore_rows(restore_list), "max_ttl": actions.settings_of(request).max_ttl_minutes}


@router.post("/clones")
async def request_clone(request: Request) -> Response:
    form: dict[str, str] = {}

    async def create() -> Response:
        caller, posted = await _posted(request)
        form.update(posted)
        body = CloneRequest.model_validate({
            "source_url": form.get("source_url", "").strip(),
            "source_username": form.get("source_username", "").strip(),
            "source_password": form.get("source_password", ""), "customer_id": form.get("customer_id", "").strip(),
            "ttl_minutes": form.get("ttl_minutes", "").strip() or None,
            "database": form.get("database", "").strip() or None,
            "snapshot_max_age_minutes": form.get("snapshot_max_age_minutes", "").strip() or None,
            "pool": form.get("pool", "").strip() or None})
        await actions.create_clone(request, caller, body)
        return _go(request, "/ui/", f"Clone {body.customer_id} requested: it appears below as it is made.")

    async def again() -> tuple[str, dict[str, Any]] | None:  # the form as it was sent, but for the password
        kept = {name: value for name, value in form.items() if name not in ("source_password", "csrf")}
        return "home.html", {**await _tables(request, _session(request)[0]), "form": kept}
    return await _run(request, create, again)


@router.post("/clones/{clone_id}/extend")
async def extend(request: Request, clone_id: str) -> Response:
    async def longer() -> Response:
        caller, _ = await _posted(request)
        clone = await actions.own_clone(request, caller, clone_id)
        ttl = extended_ttl(clone, actions.settings_of(request).max_ttl_minutes, EXTEND_MINUTES)
        if ttl is None:
            raise HTTPException(422, f"the clone {clone_id} already lives as long as allowed "
                                     f"({actions.settings_of(request).max_ttl_minutes} minutes)")
        updated = await actions.set_ttl(request, caller, clone_id, ttl)
        return _go(request, "/ui/", f"Clone {clone_id} now expires at {updated.expires_at}.")
    return await _run(request, longer)


@router.post("/clones/{clone_id}/delete")
async def delete(request: Request, clone_id: str) -> Response:
    async def remove() -> Response:
        caller, form = await _posted(request)
        clone = await actions.own_clone(request, caller, clone_id)
        if form.get("confirm") != "yes":  # without the script's dialog: a page that asks
            return _page(request, "confirm_delete.html", {"clone": clone_row(clone)})
        await actions.delete_clone(request, caller, clone_id)
        return _go(request, "/ui/", f"Clone {clone_id} is being deleted.")
    return await _run(request, remove)


@router.post("/clones/{clone_id}/open")
async def open_admin(request: Request, clone_id: str) -> Response:
    """Straight into the clone's wp-admin through a fresh single-use login link."""
    async def go() -> Response:
        caller, _ = await _posted(request)
        link = await actions.login_link(request, caller, clone_id)
        return _secure(RedirectResponse(link.url, status_code=303))
    return await _run(request, go)


@router.get("/clones/{clone_id}/restore", response_class=HTMLResponse)
async def restore_form(request: Request, clone_id: str) -> Response:
    async def show() -> Response:
        caller, _ = _session(request)
        clone = await actions.own_clone(request, caller, clone_id)
        return _page(request, "restore.html", {"clone": clone_row(clone), "form": {}})
    return await _run(request, show)


@router.post("/clones/{clone_id}/restore")
async def preview_restore(request: Request, clone_id: str) -> Response:
    """A dry run first: its page lists what the restore would change, and offers to do it."""
    context: dict[str, Any] = {}

    async def preview() -> Response:
        caller, form = await _posted(request)
        clone = await actions.own_clone(request, caller, clone_id)
        context.update(clone=clone_row(clone),
                       form={key: value for key, value in form.items() if key not in ("target_password", "csrf")})
        body = RestoreRequest.model_validate({
            "source": await _clone_login(request, clone),
            "target": {"url": form.get("target_url", "").strip(), "username": form.get("target_username", "").strip(),
                       "password": form.get("target_password", "")},
            "include": {part: form.get(part) == "on" for part in RESTORE_PARTS},
            "dry_run": True, "on_conflict": form.get("on_conflict") or None})
        job_id = await actions.create_restore(request, caller, body)
        return _go(request, f"/ui/restores/{job_id}", "Previewing the restore: nothing is written yet.")

    async def again() -> tuple[str, dict[str, Any]] | None:  # the form again, once the clone was found
        return ("restore.html", context) if context else None
    return await _run(request, preview, again)


@router.get("/restores/{job_id}", response_class=HTMLResponse)
async def restore_page(request: Request, job_id: str) -> Response:
    return await _restore_job_page(request, job_id, "restore_job.html")


@router.get("/live/restores/{job_id}", response_class=HTMLResponse)
async def live_restore(request: Request, job_id: str) -> Response:
    """A restore's page alone, for the script's refresh."""
    return await _restore_job_page(request, job_id, "_restore_job.html")


async def _restore_job_page(request: Request, job_id: str, template: str) -> Response:
    async def show() -> Response:
        caller, _ = _session(request)
        return _page(request, template, {"job": restore_row(await actions.own_restore(request, caller, job_id))})
    return await _run(request, show)


@router.post("/restores/{job_id}/confirm")
async def confirm_restore(request: Request, job_id: str) -> Response:
    """The restore a finished preview showed, for real (backup first), with the preview's logins."""
    async def confirm() -> Response:
        caller, _ = await _posted(request)
        preview = await actions.own_restore(request, caller, job_id)
        spec, row = preview["spec"], restore_row(preview)
        if not row["previewed"]:
            raise HTTPException(409, "only a finished preview of a clone's restore can be confirmed")
        clone = await actions.own_clone(request, caller, spec["source"]["cloneRef"]["name"])
        on_conflict = {value: key for key, value in jobs.ON_CONFLICT.items()}[spec.get("onConflict", "Fail")]
        body = RestoreRequest(source=await _clone_login(request, clone), target=await _target_login(request, preview),
                              include=RestoreParts.model_validate(spec.get("include") or {}),
                              on_conflict=on_conflict)  # type: ignore[arg-type]  # one of ON_CONFLICT's keys
        restored = await actions.create_restore(request, caller, body)
        return _go(request, f"/ui/restores/{restored}", "Restoring: production is backed up first.")
    return await _run(request, confirm)


@router.post("/restores/{job_id}/rollback")
async def rollback(request: Request, job_id: str) -> Response:
    async def back() -> Response:
        caller, _ = await _posted(request)
        restore = await actions.own_restore(request, caller, job_id)
        row = restore_row(restore)
        if not row["can_roll_back"]:
            raise HTTPException(409, "only a completed restore that kept a backup can be rolled back")
        body = RollbackRequest(target=await _target_login(request, restore), backup_id=row["backup_id"])
        rolled = await actions.create_rollback(request, caller, body)
        return _go(request, f"/ui/restores/{rolled}", f"Rolling {row['target']} back to backup {row['backup_id']}.")
    return await _run(request, back)


@router.get("/static/{name}")
async def static(name: str) -> Response:
    if name not in STATIC:
        raise HTTPException(404, "not found")
    return Response((HERE / "static" / name).read_bytes(), media_type=STATIC[name],
                    headers={"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"})


async def _clone_login(request: Request, clone: dict[str, Any]) -> SiteLogin:
    """The clone's own admin login, which a restore from the clone must present."""
    status, admin = clone.get("status") or {}, await clones.admin_login(actions.namespace_of(request), clone)
    if not admin or not status.get("url") or status.get("phase") != constants.PHASE_READY:
        raise HTTPException(409, f"the clone {clone['metadata']['name']} is not ready to restore from")
    return SiteLogin(url=status["url"], username=admin["username"], password=admin["password"])


async def _target_login(request: Request, restore: dict[str, Any]) -> SiteLogin:
    """The production login a restore of the caller's was given (kept in the Secret the restore owns)."""
    namespace = actions.namespace_of(request)
    target = restore["spec"]["target"]
    login = await namespace.server.read_secret(namespace.name, target["credentialsSecretRef"]["name"])
    if not login:
        raise HTTPException(409, "that restore's production login is gone: start a new restore")
    return SiteLogin(url=target["url"], username=login["username"], password=login["password"])


# --- what the pages show (pure) --------------------------------------------------------------------

def clone_row(clone: dict[str, Any]) -> dict[str, Any]:
    status, spec = clone.get("status") or {}, clone.get("spec") or {}
    job = jobs.clone_job_status(clone, None)
    progress = status.get("progress") or {}
    step = PROGRESS_STEPS.index(progress.get("phase", "")) if progress.get("phase", "") in PROGRESS_STEPS else 0
    return {"name": clone["metadata"]["name"], "job_id": job.job_id, "state": job.status,
            "phase": status.get("phase") or constants.PENDING, "url": job.clone_url, "expires_at": job.expires_at,
            "error": job.error, "message": job.message, "source": (spec.get("source") or {}).get("url", ""),
            "ready": job.status == "completed", "deleting": bool(clone["metadata"].get("deletionTimestamp")),
            "step": 4 if job.status == "completed" else step, "steps": len(PROGRESS_STEPS) - 1,
            "progress": progress_text(progress)}


def progress_text(progress: dict[str, Any]) -> str:
    if not progress:
        return ""
    return (f"{progress.get('phase') or 'starting'}: {progress.get('rows', 0):,} rows, "
            f"{progress.get('files', 0):,} files, {size(progress.get('bytes', 0))}")


def size(count: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024  # type: ignore[assignment]  # a float from here on
    return ""


def restore_row(restore: dict[str, Any]) -> dict[str, Any]:
    spec, status = restore.get("spec") or {}, restore.get("status") or {}
    job = jobs.restore_job_status(restore)
    kind = "rollback" if spec.get("rollbackTo") else "preview" if spec.get("dryRun") else "restore"
    from_clone = ((spec.get("source") or {}).get("cloneRef") or {}).get("name")
    return {"job_id": job.job_id, "kind": kind, "state": job.status, "phase": status.get("phase") or constants.PENDING,
            "target": (spec.get("target") or {}).get("url", ""), "clone": from_clone,
            "backup_id": job.backup_id, "error": job.error, "changes": job.changes or [],
            "conflicts": job.conflicts or [],
            "created": restore["metadata"].get("creationTimestamp"), "rollback_to": spec.get("rollbackTo"),
            "previewed": kind == "preview" and job.status == "completed" and bool(from_clone),
            "can_roll_back": kind == "restore" and job.status == "completed" and bool(job.backup_id),
            "progress": progress_text(status.get("progress") or {})}


def restore_rows(restore_list: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Newest first; a backup a later rollback of the caller's put back is marked so."""
    rows, put_back = [restore_row(restore) for restore in restore_list], restores.rolled_back(restore_list)
    for row in rows:
        row["rolled_back"] = row["backup_id"] in put_back
        row["can_roll_back"] = row["can_roll_back"] and not row["rolled_back"]
    return rows


def extended_ttl(clone: dict[str, Any], max_ttl: int, minutes: int) -> int | None:
    """The TTL that gives the clone `minutes` more from its current expiry, at most `max_ttl`; None when
    it already has the most it may."""
    created = times.parse_time(clone["metadata"]["creationTimestamp"])
    expires = (clone.get("status") or {}).get("expiresAt")
    current = ((times.parse_time(expires) - created).total_seconds() / 60 if expires
               else (clone.get("spec") or {}).get("ttlMinutes") or 0)
    wanted = min(math.ceil(current) + minutes, max_ttl)
    return wanted if wanted > current else None


def time_left(expires_at: str | None, now: datetime | None = None) -> str:
    """As the countdown starts (the script keeps it going)."""
    if not expires_at:
        return ""
    seconds = int((times.parse_time(expires_at) - (now or datetime.now(UTC))).total_seconds())
    return "expired" if seconds <= 0 else f"{seconds // 60} min {seconds % 60:02d} s"


templates.env.globals.update(time_left=time_left, parts=RESTORE_PARTS, extend_minutes=EXTEND_MINUTES)
