"""Security of the service: authentication on every route (enumerated from the app), the role ×
action matrix, CSRF, lockout, idle expiry, escaping of stored text, bounded uploads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import text
from web_helpers import CSRF, PRODUCT, USERS, api_login, complete_lot, page_login, password

from exocheck.auth import Accounts
from exocheck.store import Store

# the login routes, and the certificate verification page that anyone holding a certificate opens
PUBLIC = {
    ("GET", "/login"),
    ("POST", "/login"),
    ("POST", "/api/v1/login"),
    ("GET", "/verify/COA-0000"),
}
SAMPLE = {
    "lot": "L-1",
    "job_id": "1",
    "name": "study-1",
    "certificate_id": "COA-0000",
    "measurement": "1",
    "serial": "NS-0001",
    "ref": "nta-ev@1",
    "calibration_id": "1",
}


def _routes(app) -> list[tuple[str, str]]:
    """Every (method, path) the app serves, read from the app itself (nested routers too)."""
    try:  # FastAPI >= 0.160 keeps included routers nested
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: a flat list of routes
        contexts = list(app.routes)
    else:
        contexts = list(iter_route_contexts(app.routes))
    found = []
    for route in contexts:
        methods, path = getattr(route, "methods", None), getattr(route, "path", None)
        if not methods or path is None or path.startswith("/static"):
            continue
        for method in sorted(set(methods) - {"HEAD"}):
            found.append((method, re.sub(r"{(\w+)(:\w+)?}", lambda m: SAMPLE[m.group(1)], path)))
    return found


def test_every_route_refuses_an_unauthenticated_request(client, tmp_path, db_url):
    complete_lot(client, api_login(client, "ana"), db_url, "L-1", tmp_path)
    client.cookies.clear()
    routes = _routes(client.app)
    assert len(routes) >= 25  # the enumeration sees the whole app
    checked = 0
    for method, path in routes:
        if (method, path) in PUBLIC:
            continue
        for headers in ({}, {"Authorization": "Bearer not-a-real-token"}):
            response = client.request(method, path, headers=headers, follow_redirects=False)
            if path.startswith("/api/"):
                assert response.status_code == 401, (method, path, response.status_code)
                assert list(response.json()) == ["detail"]
            elif (method == "GET" and path not in ("/docs", "/openapi.json")) or not headers:
                assert response.status_code in (303, 401), (method, path, response.status_code)
                if response.status_code == 303:
                    assert response.headers["location"].startswith("/login")
            else:
                assert response.status_code == 401, (method, path, response.status_code)
            assert "L-1" not in response.text or "/login" in response.text
            checked += 1
    assert checked >= 2 * (len(routes) - len(PUBLIC))
    # the static files are public on purpose: only the vendored script and the style sheet
    static = Path(client.app.routes[-1].app.directory)
    assert sorted(p.name for p in static.iterdir()) == ["htmx.min.js", "style.css"]


def test_page_forms_without_their_csrf_token_are_refused(client, tmp_path, db_url):
    complete_lot(client, api_login(client, "ana"), db_url, "L-1", tmp_path)
    page_login(client, "ana")
    posts = [
        p
        for m, p in _routes(client.app)
        if m == "POST" and not p.startswith("/api/") and p != "/login"
    ]
    assert {"/lots", "/lots/L-1/sign", "/lots/L-1/upload", "/logout"} <= set(posts)
    with Store.open(db_url) as store:
        before = len(store.history())
    for path in posts:
        for data in ({}, {"csrf_token": "forged-token"}):
            response = client.post(
                path, data=data | {"lot": "X-1", "product": PRODUCT}, follow_redirects=False
            )
            assert response.status_code == 403, (path, data)
            assert "CSRF" in response.text
    with Store.open(db_url) as store:
        assert len(store.history()) == before  # nothing happened
    assert client.get("/", follow_redirects=False).status_code == 200  # logout was refused too


def test_cookies_are_httponly_and_samesite(client):
    page = client.get("/login")
    assert "httponly" in page.headers["set-cookie"].lower()
    token = CSRF.search(page.text).group(1)
    response = client.post(
        "/login",
        data={"username": "ana", "password": password("ana"), "csrf_token": token},
        follow_redirects=False,
    )
    cookie = next(c for c in response.headers.get_list("set-cookie") if "exocheck_session" in c)
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
    assert response.headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in response.headers["content-security-policy"]


def test_role_action_matrix(client, tmp_path, db_url):
    """Each role may do exactly its actions; the others are refused with 403 naming the role."""
    ana = api_login(client, "ana")
    lots = {"L-reviewed": "reviewed", "L-approved": "approved"}
    lots |= {f"L-rej-{name}": "rejected" for name in USERS}
    for lot in lots:
        complete_lot(client, ana, db_url, lot, tmp_path)
    rita = api_login(client, "rita")
    client.post(
        "/api/v1/lots/L-approved/signatures",
        headers=rita,
        json={"meaning": "reviewed", "reason": "checked", "password": password("rita")},
    )
    headers = {name: api_login(client, name) for name in USERS}
    allowed = {
        ("create", "analyst"),
        ("upload", "analyst"),
        ("reviewed", "reviewer"),
        ("rejected", "reviewer"),
        ("rejected", "qa"),
        ("approved", "qa"),
    }
    for name, role in USERS.items():
        h = headers[name]
        for path in (
            "/api/v1/lots",
            "/api/v1/lots/L-reviewed",
            "/api/v1/audit",
            "/api/v1/lots/L-reviewed/release",
            "/api/v1/lots/L-reviewed/signatures",
        ):
            assert client.get(path, headers=h).status_code == 200, (name, path)
        attempts = {
            "create": lambda h=h, n=name: client.post(
                "/api/v1/lots", json={"lot": f"N-{n}", "product": PRODUCT}, headers=h
            ),
            "upload": lambda h=h, n=name: client.post(
                "/api/v1/lots/L-reviewed/measurements",
                headers=h,
                files={"file": (f"{n}.json", (tmp_path / "L-reviewed.json").read_bytes())},
                data={"allow_reuse": "replicate"},
            ),
        }
        for meaning, lot in (
            ("reviewed", "L-reviewed"),
            ("approved", "L-approved"),
            ("rejected", f"L-rej-{name}"),
        ):
            attempts[meaning] = lambda h=h, lot=lot, meaning=meaning, n=name: client.post(
                f"/api/v1/lots/{lot}/signatures",
                headers=h,
                json={"meaning": meaning, "reason": "matrix", "password": password(n)},
            )
        for action, attempt in attempts.items():
            response = attempt()
            if (action, role) in allowed:
                assert response.status_code in (201, 202), (name, action, response.text)
            else:
                assert response.status_code == 403, (name, action, response.text)
                assert f"role {role}" in response.json()["detail"]


def test_lockout_after_five_wrong_passwords_is_audited(client, db_url):
    session = api_login(client, "rita")
    for attempt in range(4):
        r = client.post("/api/v1/login", json={"username": "rita", "password": f"wrong-{attempt}"})
        assert r.status_code == 401
    fifth = client.post("/api/v1/login", json={"username": "rita", "password": "wrong-5"})
    assert fifth.status_code == 423 and "locked" in fifth.json()["detail"]
    right = client.post("/api/v1/login", json={"username": "rita", "password": password("rita")})
    assert right.status_code == 423
    assert client.get("/api/v1/lots", headers=session).status_code == 401  # sessions ended
    with Store.open(db_url) as store:
        actions = [e["action"] for e in store.history() if e["key"] == "rita"]
        assert actions.count("login.failed") == 5 and "user.locked" in actions
        assert actions[-1] == "login.refused"
        Accounts(store).unlock_user("rita", by="adam")
    assert (
        client.post(
            "/api/v1/login", json={"username": "rita", "password": password("rita")}
        ).status_code
        == 200
    )


def test_sessions_expire_when_idle(client, db_url, settings):
    headers = api_login(client, "ana")
    page_login(client, "ana")
    assert client.get("/api/v1/lots", headers=headers).status_code == 200
    idle_s = settings.idle_timeout_min * 60 + 5
    with Store.open(db_url) as store, store.engine.begin() as conn:
        conn.execute(text("UPDATE auth_sessions SET last_seen_at = :t"), {"t": _ago(idle_s)})
    assert client.get("/api/v1/lots", headers=headers).status_code == 401
    page = client.get("/", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    with Store.open(db_url) as store, store.engine.connect() as conn:
        reasons = conn.execute(text("SELECT revoked_reason FROM auth_sessions")).scalars().all()
    assert reasons == ["idle timeout", "idle timeout"]


def _ago(seconds: float):
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) - timedelta(seconds=seconds)


NASTY = "<img src=x onerror=alert(1)>' OR '1'='1; DROP TABLE lots; --"


def test_markup_and_sql_are_stored_as_typed_and_shown_escaped(client, tmp_path, db_url):
    csrf = page_login(client, "ana")
    # a lot number is checked once, for every shell: markup and quotes are refused in one line,
    # and the refusal shows the typed number escaped
    refused = client.post(
        "/lots", data={"lot": NASTY, "product": PRODUCT, "csrf_token": csrf}, follow_redirects=False
    )
    assert refused.status_code == 422 and "<img src=x" not in refused.text
    with Store.open(db_url) as store:
        assert store.list_lots() == []  # nothing stored, table intact
    created = client.post(
        "/lots", data={"lot": "L-9", "product": PRODUCT, "csrf_token": csrf}, follow_redirects=False
    )
    assert created.status_code == 303
    complete_path = tmp_path / "nasty.json"
    from web_helpers import result_json

    result_json(tmp_path, "nasty.json", sample=NASTY)  # free text goes wherever it may
    with open(complete_path, "rb") as fh:
        client.post(
            "/lots/L-9/upload",
            data={"csrf_token": csrf},
            files={"file": ("<b>x</b>.json", fh)},
            follow_redirects=False,
        )
    with Store.open(db_url) as store:
        assert store.lot_data("L-9").nta.sample == NASTY  # stored exactly as typed
    client.cookies.clear()
    rita = page_login(client, "rita")
    reason = '</td><script>alert("sig")</script>'
    response = client.post(
        "/lots/L-9/sign",
        data={
            "csrf_token": rita,
            "meaning": "rejected",
            "reason": reason,
            "password": password("rita"),
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    for path in ("/lots/L-9", "/audit", "/audit?lot=L-9"):
        page = client.get(path).text
        assert "<img src=x" not in page and "<script>alert" not in page, path
        assert "&lt;img src=x onerror=alert(1)&gt;" in page, path
    lot_page = client.get("/lots/L-9").text
    assert "&lt;/td&gt;&lt;script&gt;alert(&#34;sig&#34;)&lt;/script&gt;" in lot_page
    api = client.get("/api/v1/lots", headers=api_login(client, "rita")).json()
    assert [(r["lot"], r["status"], r["decision"]) for r in api] == [
        ("L-9", "rejected", "incomplete")
    ]


@pytest.mark.parametrize("kind", ["oversized", "wrong type", "broken video"])
def test_bad_uploads_are_one_clear_error_and_nothing_stored(
    client, tmp_path, db_url, settings, kind
):
    headers = api_login(client, "ana")
    client.post("/api/v1/lots", json={"lot": "L-1", "product": PRODUCT}, headers=headers)
    name, content, status, words = {
        "oversized": ("big.json", b"x" * int(settings.max_upload_bytes + 4096), 413, "limit"),
        "wrong type": ("notes.txt", b"just some words\n", 415, "not a video"),
        "broken video": ("capture.avi", b"RIFF0000AVI garbage" * 10, 415, "not a readable video"),
    }[kind]
    response = client.post(
        "/api/v1/lots/L-1/measurements",
        headers=headers,
        files={"file": (name, content)},
        data={"fps": "30"},
    )
    assert response.status_code == status
    detail = response.json()["detail"]
    assert words in detail and "\n" not in detail and str(tmp_path) not in detail
    with Store.open(db_url) as store:
        assert store.lot_info("L-1")["measurements"] == []
        assert not any(e["action"].startswith("measurement") for e in store.history())
    data = settings.data_path
    leftovers = [p for p in data.rglob("*") if p.is_file()] if data.exists() else []
    assert leftovers == []
    csrf = page_login(client, "ana")
    page = client.post(
        "/lots/L-1/upload", data={"csrf_token": csrf}, files={"file": (name, content)}
    )
    assert page.status_code == status and words in page.text


def test_cookies_are_secure_over_https(settings):
    from fastapi.testclient import TestClient

    from exocheck.web import create_app

    with TestClient(create_app(settings), base_url="https://testserver") as client:
        page = client.get("/login")
        token = CSRF.search(page.text).group(1)
        response = client.post(
            "/login",
            data={"username": "ana", "password": password("ana"), "csrf_token": token},
            follow_redirects=False,
        )
    cookie = next(c for c in response.headers.get_list("set-cookie") if "exocheck_session" in c)
    assert "Secure" in cookie and "HttpOnly" in cookie


def test_login_never_sends_the_browser_to_another_site(client):
    for target, expected in (
        ("//evil.example/x", "/"),
        ("https://evil.example", "/"),
        ("/lots/L-1", "/lots/L-1"),
        ("/\\evil.example", "/"),
    ):
        page = client.get("/login", params={"next": target})
        token = CSRF.search(page.text).group(1)
        response = client.post(
            "/login",
            data={
                "username": "ana",
                "password": password("ana"),
                "csrf_token": token,
                "next": target,
            },
            follow_redirects=False,
        )
        assert response.status_code == 303 and response.headers["location"] == expected
        client.cookies.clear()
