"""The REST facade on the real stack: jobs are custom resources, credentials stay in Secrets."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import httpx
import pytest

from testenv import cluster
from testenv.api_process import ApiProcess, start_api
from testenv.operator_process import OperatorProcess
from testenv.wordpress import WordPressSite
from tests.helpers import eventually, get_json

pytestmark = pytest.mark.integration


SOURCE: dict[str, str] = {"source_url": "https://shop.example.com", "source_username": "shopadmin",
                          "source_password": "Pr0d-Secret!"}


@pytest.fixture(autouse=True)
def real_source(wordpress_sites: list[WordPressSite]) -> None:
    """Jobs clone a real seeded site."""
    site = wordpress_sites[0]
    SOURCE.update(source_url=site.url, source_username=site.admin_user, source_password=site.admin_password)


def body(customer_id: str, **overrides: object) -> dict[str, object]:
    return {**SOURCE, "customer_id": customer_id, "ttl_minutes": 20, **overrides}


@pytest.fixture
def http(api: ApiProcess) -> httpx.Client:
    return httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {api.token}"}, timeout=30)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def test_every_route_in_the_openapi_document_but_health_needs_a_valid_token(api: ApiProcess) -> None:
    anonymous = httpx.Client(base_url=api.url, timeout=30)
    # The description of the API is open (it holds no job data), as are health and metrics.
    for path in ("/openapi.json", "/docs", "/redoc", "/healthz", "/metrics"):
        assert anonymous.get(path).status_code == 200, path
    operations = [(method.upper(), re.sub(r"\{[^}]+\}", "x", path))
                  for path, item in anonymous.get("/openapi.json").json()["paths"].items()
                  for method in item if method in ("get", "post", "put", "patch", "delete")]
    guarded = [(method, path) for method, path in operations if path != "/healthz"]
    assert set(guarded) == {("POST", "/api/v2/clone"), ("GET", "/api/v2/job-status/x"), ("DELETE", "/api/v2/delete/x"),
                            ("GET", "/api/v2/clones"), ("PATCH", "/api/v2/clones/x"),
                            ("POST", "/api/v2/clones/x/login-link"), ("POST", "/api/v2/restore"),
                            ("POST", "/api/v2/rollback"), ("GET", "/api/v2/backups"), ("POST", "/clone"),
                            ("POST", "/restore")}
    for method, path in guarded:
        missing = anonymous.request(method, path, json=body("x"))
        wrong = anonymous.request(method, path, json=body("x"), headers={"Authorization": "Bearer nope"})
        assert (missing.status_code, wrong.status_code) == (401, 401), (method, path)
        assert wrong.json() == {"message": "invalid bearer token"}


def test_api_metrics_count_each_request_by_route_and_status(http: httpx.Client, api: ApiProcess) -> None:
    def scrape() -> dict[str, float]:
        text = httpx.get(f"{api.url}/metrics", timeout=10).text
        return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                for line in text.splitlines() if line.startswith("wpclone_api_")}

    before = scrape()
    for _ in range(3):
        assert http.get("/api/v2/job-status/never-made").status_code == 404
    assert http.post("/api/v2/clone", json={"customer_id": "x"}).status_code == 422
    after = scrape()
    changed = {key: after[key] - before.get(key, 0.0) for key in after
               if after[key] != before.get(key, 0.0) and 'route="/metrics"' not in key}
    status = 'wpclone_api_requests_total{method="GET",route="/api/v2/job-status/{job_id}",status="404"}'
    invalid = 'wpclone_api_requests_total{method="POST",route="/api/v2/clone",status="422"}'
    assert changed[status] == 3 and changed[invalid] == 1
    assert changed['wpclone_api_request_seconds_count{method="GET",route="/api/v2/job-status/{job_id}"}'] == 3
    assert changed['wpclone_api_request_seconds_count{method="POST",route="/api/v2/clone"}'] == 1
    assert {key for key in changed if key.startswith("wpclone_api_requests_total")} == {status, invalid}


def test_clone_job_is_a_resource_that_completes(http: httpx.Client, api: ApiProcess, operator: OperatorProcess,
                                               control_plane: cluster.ControlPlane) -> None:
    customer = unique("acme")
    source_before = httpx.get(f"{SOURCE['source_url']}/wp-json/wp/v2/posts?per_page=100", timeout=30).json()
    accepted = http.post("/api/v2/clone", json=body(customer))
    assert accepted.status_code == 202, accepted.text
    job = accepted.json()
    assert job["status"] == "pending"
    assert job["status_url"] == f"/api/v2/job-status/{job['job_id']}"

    resource = get_json(control_plane, api.namespace, "wpc", customer)
    assert resource["metadata"]["labels"]["wpclone.dev/job-id"] == job["job_id"]
    assert resource["spec"]["ttlMinutes"] == 20
    assert SOURCE["source_password"] not in json.dumps(resource)
    login_name = resource["spec"]["source"]["credentialsSecretRef"]["name"]
    # The operator makes the clone own the login Secret, so that it goes away with the clone.
    owners = eventually(lambda: get_json(control_plane, api.namespace, "secret", login_name)["metadata"]
                        .get("ownerReferences"), what="the login Secret to be owned by the clone")
    assert owners[0]["uid"] == resource["metadata"]["uid"]

    done = eventually(lambda: (s := http.get(job["status_url"]).json())["status"] == "completed" and s,
                      timeout=90, what="the job to complete")
    assert done["clone_url"].startswith(f"http://{customer}.localhost:")
    assert done["username"] == SOURCE["source_username"]
    assert done["password"] and done["password"] != SOURCE["source_password"]
    assert done["expires_at"]
    assert done["progress"]["rows"] > 0
    assert SOURCE["source_password"] not in api.log_path.read_text()

    # The user's path: log in to the clone with the returned login, and find the source's content there.
    clone = httpx.Client(base_url=done["clone_url"], timeout=30)
    clone.get("/wp-login.php")
    clone.post("/wp-login.php", data={"log": done["username"], "pwd": done["password"], "testcookie": "1"})
    assert "wp-admin-bar" in clone.get("/wp-admin/").text
    posts = clone.get("/wp-json/wp/v2/posts?per_page=100").json()
    assert {post["slug"] for post in posts} == {post["slug"] for post in source_before}
    assert all(post["link"].startswith(done["clone_url"]) for post in posts)
    pages = clone.get("/wp-json/wp/v2/pages").json()
    assert pages and all(page["link"].startswith(done["clone_url"]) for page in pages)
    (media, *_) = clone.get("/wp-json/wp/v2/media").json()
    assert media["source_url"].startswith(done["clone_url"])
    original = media["source_url"].replace(done["clone_url"], SOURCE["source_url"])
    assert clone.get(media["source_url"]).content == httpx.get(original, timeout=30).content
    source_after = httpx.get(f"{SOURCE['source_url']}/wp-json/wp/v2/posts?per_page=100", timeout=30).json()
    assert source_after == source_before


def test_a_duplicate_customer_gets_409_with_the_existing_job(http: httpx.Client) -> None:
    customer = unique("dup")
    first = http.post("/api/v2/clone", json=body(customer)).json()
    second = http.post("/api/v2/clone", json=body(customer))
    assert second.status_code == 409
    assert second.json() == {"message": f"a clone named {customer} already exists", "job_id": first["job_id"]}


@pytest.mark.parametrize(("field", "value", "message"), [
    ("customer_id", "Not_A_Label", "customer_id"),
    ("source_url", "ftp://shop.example.com", "source_url"),
    ("ttl_minutes", 0, "ttl_minutes"),
    ("source_password", "", "source_password"),
])
def test_bad_input_gets_422_with_a_message_and_creates_nothing(http: httpx.Client, api: ApiProcess,
                                                               control_plane: cluster.ControlPlane,
                                                               field: str, value: object, message: str) -> None:
    before = control_plane.kubectl("get", "wpc", "-n", api.namespace, "-o", "name")
    answer = http.post("/api/v2/clone", json={**body(unique("bad")), field: value})
    assert answer.status_code == 422
    assert answer.json()["message"].startswith("invalid request:") and message in answer.json()["message"]
    assert "Traceback" not in answer.text
    assert control_plane.kubectl("get", "wpc", "-n", api.namespace, "-o", "name") == before


def test_unknown_jobs_and_clones_are_404(http: httpx.Client) -> None:
    assert http.get("/api/v2/job-status/does-not-exist").status_code == 404
    answer = http.delete("/api/v2/delete/no-such-clone")
    assert answer.status_code == 404 and answer.json() == {"message": "no clone no-such-clone"}


def test_delete_removes_the_clone_early(http: httpx.Client, api: ApiProcess, operator: OperatorProcess,
                                       control_plane: cluster.ControlPlane) -> None:
    customer = unique("early")
    job = http.post("/api/v2/clone", json=body(customer)).json()
    assert http.delete(f"/api/v2/delete/{customer}").status_code == 202
    eventually(lambda: get_json(control_plane, api.namespace, "wpc", customer) is None, timeout=60,
               what="the clone to be deleted")
    assert http.get(f"/api/v2/job-status/{job['job_id']}").status_code == 404


def test_v1_blocks_until_the_clone_is_ready(http: httpx.Client, operator: OperatorProcess) -> None:
    answer = http.post("/clone", json=body(unique("legacy")), timeout=120)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "completed"
    assert answer.json()["password"]


def test_v1_answers_504_with_the_job_to_poll_once_its_wait_is_over(
        control_plane: cluster.ControlPlane, operator: OperatorProcess, tmp_path: Path) -> None:
    impatient = start_api(control_plane, "api-jobs", tmp_path / "api.log", WPCLONE_API_V1_TIMEOUT_SECONDS="1")
    try:
        http = httpx.Client(base_url=impatient.url, headers={"Authorization": f"Bearer {impatient.token}"},
                            timeout=60)
        customer = unique("slow")
        answer = http.post("/clone", json=body(customer))  # no clone is Ready within a second
        assert answer.status_code == 504, answer.text
        assert answer.json()["message"] == "the job is not done yet; poll its status"
        job = answer.json()["job_id"]
        # The job goes on: polled to its end, as the answer says.
        done = eventually(lambda: (s := http.get(f"/api/v2/job-status/{job}").json())["status"] == "completed"
                          and s, timeout=120, what="the job to complete after the 504")
        assert done["clone_id"] == customer and done["password"]
    finally:
        impatient.stop()


def test_openapi_documents_v2_and_marks_v1_deprecated(http: httpx.Client) -> None:
    schema = http.get("/openapi.json").json()
    assert schema["paths"]["/clone"]["post"]["deprecated"] is True
    assert "/api/v2/clone" in schema["paths"]
    assert http.get("/docs").status_code == 200
