"""The pages people read and a lab's upload, without a browser: the audit trail searched, paged
and exported (page, CSV and API from one filter), the lots list searched and paged, and uploads
of replicate videos with a calibration, bounded and refused whole."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import asdict
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from web_helpers import PRODUCT, USERS, api_login, page_login

from exocheck.nta.concentration import Calibration
from exocheck.store import Store
from exocheck.store.jobs import BatchJob
from exocheck.web import Settings, create_app
from exocheck.web.analyses import AnalysisQueue

LEGACY = ("LEGACY-" + "0123456789" * 20)[:200]


def _lots(db_url: str, n: int, by: str = "ana") -> None:
    with Store.open(db_url) as store:
        for i in range(n):
            store.add_lot(f"L-{i:03d}", PRODUCT, by=by)


def test_audit_page_searches_pages_and_exports_the_same_events(client, db_url):
    _lots(db_url, 60)
    with Store.open(db_url) as store:
        for i in range(3):
            store.add_lot(f"B-{i}", PRODUCT, by="ben")
    page_login(client, "rita")
    with Store.open(db_url) as store:
        events = store.history()
    total = len(events)
    first = client.get("/audit").text
    assert f'Events 1–50 of <b id="audit-total">{total}</b>' in first
    shown = [int(n) for n in re.findall(r'<tr data-event="(\d+)"', first)]
    assert shown == [e["id"] for e in reversed(events)][:50]  # newest first
    last_page = -(-total // 50)
    assert f'href="/audit?page={last_page}"' in first

    # a search: its count, its pages keep it, its CSV holds exactly its events
    page = client.get("/audit", params={"action": "lot", "user": "ANA"}).text
    assert 'Events 1–50 of <b id="audit-total">60</b> matching the search' in page
    assert 'href="/audit?user=ANA&amp;action=lot&amp;page=2"' in page
    second = client.get("/audit", params={"action": "lot", "user": "ANA", "page": "2"}).text
    assert second.count("<tr data-event=") == 10
    assert 'href="/audit.csv?user=ANA&amp;action=lot"' in page
    download = client.get("/audit.csv", params={"action": "lot", "user": "ANA"})
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("text/csv")
    assert 'attachment; filename="audit-trail.csv"' == download.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert len(rows) == 60 and {r["actor"] for r in rows} == {"ana"}
    assert {r["action"] for r in rows} == {"lot.add"}
    assert [r["lot"] for r in rows] == [f"L-{i:03d}" for i in range(60)]  # oldest first
    assert json.loads(rows[0]["after"])["lot"] == "L-000"

    # the API: the same filter, a page at a time, the total in a header
    ana = api_login(client, "ana")
    api = client.get("/api/v1/audit", params={"action": "lot", "user": "ana"}, headers=ana)
    assert api.status_code == 200 and api.headers["x-total-count"] == "60"
    assert [e["lot"] for e in api.json()] == [f"L-{i:03d}" for i in range(50)]
    assert 'rel="next"' in api.headers["link"] and "page=2" in api.headers["link"]
    rest = client.get(
        "/api/v1/audit", params={"action": "lot", "user": "ana", "page": 2}, headers=ana
    )
    assert [e["lot"] for e in rest.json()] == [f"L-{i:03d}" for i in range(50, 60)]
    assert 'rel="prev"' in rest.headers["link"] and 'rel="next"' not in rest.headers["link"]
    ben = client.get("/api/v1/audit", params={"user": "ben", "per_page": 2}, headers=ana)
    assert ben.headers["x-total-count"] == "3" and len(ben.json()) == 2


@pytest.mark.parametrize(
    ("params", "status", "words"),
    [
        ({"since": "last week"}, 422, "since: not a date"),
        ({"since": "2025-03-02", "until": "2025-03-01"}, 422, "is before since"),
        ({"lot": "NOPE"}, 404, "unknown lot"),
        ({"page": "0"}, 422, "page must be"),
    ],
)
def test_a_search_that_cannot_run_is_one_line_everywhere(client, params, status, words):
    ana = api_login(client, "ana")
    api = client.get("/api/v1/audit", params=params, headers=ana)
    assert api.status_code == status and words in api.json()["detail"]
    page_login(client, "ana")
    page = client.get("/audit", params=params)
    assert page.status_code == status
    error = re.search(r'<div class="error" id="error">([^<]*)</div>', page.text)
    assert error and words in error.group(1)
    assert 'id="audit-search"' in page.text  # the form stays, to correct the search
    if "page" not in params:
        download = client.get("/audit.csv", params=params)
        assert download.status_code == status and words in download.text
        assert not download.headers["content-type"].startswith("text/csv")


def test_every_role_reads_the_audit_trail_and_reading_changes_nothing(client, db_url):
    _lots(db_url, 2)
    with Store.open(db_url) as store:
        before = len(store.history())
    for name in USERS:
        client.cookies.clear()
        page_login(client, name)
        with Store.open(db_url) as store:
            logged_in = len(store.history())
        for path in ("/audit?lot=L-001", "/audit.csv?lot=L-001", "/?status=awaiting+data"):
            assert client.get(path).status_code == 200, (name, path)
        headers = api_login(client, name)
        assert client.get("/api/v1/audit?lot=L-001", headers=headers).json()[0]["lot"] == "L-001"
        with Store.open(db_url) as store:
            after = store.history()
        assert len(after) == logged_in + 1 and after[-1]["action"] == "login"  # the API login
    assert before < logged_in
    client.cookies.clear()
    for path in ("/audit.csv", "/jobs/1"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/login")


def test_lots_list_searches_pages_and_keeps_a_legacy_number_on_one_line(client, db_url):
    _lots(db_url, 55)
    with Store.open(db_url) as store:
        store.add_lot("LEG-1", PRODUCT, by="ana")
        with store.engine.begin() as conn:  # a number from before the 64-character rule
            conn.execute(text("UPDATE lots SET number = :n WHERE number = 'LEG-1'"), {"n": LEGACY})
    page_login(client, "ana")
    first = client.get("/").text
    assert "Lots 1–50 of <b>56</b>" in first and first.count("<tr data-lot=") == 50
    assert re.search(r'<tr data-lot="LEGACY-[^"]*">\s*<td class="clip" title="' + LEGACY, first)
    assert 'id="status-awaiting-data"' in first and "Awaiting data <b>56</b>" in first
    assert first.index(LEGACY) < first.index("L-054") < first.index("L-006")  # newest first
    second = client.get("/?page=2").text
    assert second.count("<tr data-lot=") == 6 and "L-000" in second
    found = client.get("/", params={"lot": "l-05"}).text
    assert found.count("<tr data-lot=") == 5 and 'href="/?lot=l-05&amp;status=released"' in found
    assert client.get("/", params={"status": "released"}).text.count("<tr data-lot=") == 0
    assert client.get("/", params={"product": "exo"}).text.count("<tr data-lot=") == 50
    bad = client.get("/", params={"status": "shipped"})
    assert bad.status_code == 422 and "is not one of" in bad.text and 'id="lot-search"' in bad.text


# ---- uploads -------------------------------------------------------------------------------


def _video(folder: Path, seed: int, pixel_size_um: float = 0.166) -> Path:
    """A small simulated capture (30 frames, 96x72) that opens and says its optics."""
    from exocheck.simulate import make_params, make_population, simulate

    beads = make_population(name="beads", diameter_nm=100.0, cv=0.03, concentration_per_ml=1e9)
    params = make_params(
        populations=[beads],
        frames=30,
        width_px=96,
        height_px=72,
        fps=30.0,
        exposure_ms=15.0,
        pixel_size_um=pixel_size_um,
        temperature_c=25.0,
        seed=seed,
    )
    simulate(params, folder / f"sim-{seed}")
    target = folder / f"replicate-{seed}.tif"
    (folder / f"sim-{seed}" / "video.tif").rename(target)
    return target


def _calibration(folder: Path, pixel_size_um: float = 0.166) -> Path:
    """A bead calibration as ``exocheck calibrate`` writes it, for the optics of ``_video``."""
    cal = Calibration(
        depth_um=8.0,
        bead_brightness_ratio=6.0,
        bead_diameter_nm=100.0,
        known_concentration_per_ml=1e9,
        pixel_size_um=pixel_size_um,
        fps=30.0,
        temperature_c=25.0,
        exposure_ms=15.0,
    )
    path = folder / f"beads-{pixel_size_um}.json"
    cal.save(path)
    return path


@pytest.fixture
def uploads_client(db_url, tmp_path, monkeypatch):
    """The service with at most 3 files and 2 MB an upload, whose analyses never start (the
    jobs stay queued: these tests are about what an upload keeps, not the analysis)."""
    monkeypatch.setattr(AnalysisQueue, "_run", lambda self: None)
    settings = Settings(
        database_url=db_url, data_dir=tmp_path / "data", max_upload_mb=2.0, max_upload_files=3
    )
    with TestClient(create_app(settings), base_url="http://testserver") as client:
        client.post(
            "/api/v1/lots",
            json={"lot": "L-1", "product": PRODUCT},
            headers=api_login(client, "ana"),
        )
        yield client


def _nothing_kept(db_url: str, data: Path) -> None:
    with Store.open(db_url) as store:
        assert store.lot_info("L-1")["measurements"] == []
        assert not any(e["action"].startswith("measurement") for e in store.history())
        with store.read() as session:
            assert session.scalars(select(BatchJob)).all() == []
    kept = [p for p in data.rglob("*") if p.is_file()] if data.exists() else []
    assert kept == []


def _post(client, csrf: str, files: list[tuple[str, bytes]], **fields) -> object:
    parts = [("file", (name, content)) for name, content in files]
    if "calibration_file" in fields:
        name, content = fields.pop("calibration_file")
        parts.append(("calibration_file", (name, content)))
    data = {"csrf_token": csrf, "fps": "30", "pixel_size_um": "0.166", "exposure_ms": "15"}
    return client.post("/lots/L-1/upload", data=data | fields, files=parts, follow_redirects=False)


def test_replicates_and_their_calibration_become_one_job(uploads_client, db_url, tmp_path):
    """Replicate videos are one sample: one job over all of them (one measurement, as
    ``exocheck analyze v1 v2`` makes), recorded under the identity the batch runner gives it."""
    client = uploads_client
    videos = [_video(tmp_path, seed) for seed in (1, 2)]
    cal = _calibration(tmp_path)
    csrf = page_login(client, "ana")
    response = _post(
        client,
        csrf,
        [(v.name, v.read_bytes()) for v in videos],
        calibration_file=(cal.name, cal.read_bytes()),
    )
    assert response.status_code == 303, response.text
    (job_id,) = re.fullmatch(r"/jobs/(\d+)", response.headers["location"]).groups()
    page = client.get(response.headers["location"]).text
    assert page.count('class="replicate"') == 2 and "for lot <a" in page
    assert "Analysis of 2 videos" in page
    assert "replicate-1.tif" in page and "replicate-2.tif" in page
    assert 'id="pooled"' not in page  # not analysed yet: no pooled result
    assert "No method: exocheck's default settings, bead calibration" in page
    live = client.get(response.headers["location"], headers={"HX-Request": "true"}).text
    assert live.lstrip().startswith('<div id="job-status"') and "<html" not in live
    assert f'hx-get="/jobs/{job_id}"' in live  # still queued: polled
    kept = tmp_path / "data" / "calibrations"
    (calibration_file,) = kept.iterdir()
    with Store.open(db_url) as store, store.read() as session:
        (job,) = session.scalars(select(BatchJob)).all()
        assert str(job.id) == job_id
        expected = asdict(Calibration.load(calibration_file))
        assert job.settings["calibration"] == expected
        assert [i["name"] for i in job.inputs] == ["replicate-1.tif", "replicate-2.tif"]
        assert job.settings["conditions"]["pixel_size_um"] == 0.166
    # the API takes the same upload, and says its one job
    more = [_video(tmp_path, seed) for seed in (3, 4)]
    api = client.post(
        "/api/v1/lots/L-1/measurements",
        headers=api_login(client, "ana"),
        files=[("file", (v.name, v.read_bytes())) for v in more],
        data={"fps": "30", "pixel_size_um": "0.166"},
    )
    assert api.status_code == 202, api.text
    assert api.json()["videos"] == ["replicate-3.tif", "replicate-4.tif"]
    state = client.get(f"/api/v1/jobs/{api.json()['job']}", headers=api_login(client, "ana"))
    assert [r["video"] for r in state.json()["replicates"]] == api.json()["videos"]
    assert state.json()["method"] is None and state.json()["pooled"] is None


def test_a_file_in_the_stored_calibration_field_is_refused(uploads_client, db_url, tmp_path):
    """``calibration`` names a stored calibration; a file sent there is pointed to
    ``calibration_file``, and nothing is kept."""
    cal = _calibration(tmp_path)
    video = _video(tmp_path, 1)
    api = uploads_client.post(
        "/api/v1/lots/L-1/measurements",
        headers=api_login(uploads_client, "ana"),
        files=[("file", (video.name, video.read_bytes())), ("calibration", (cal.name, b"{}"))],
        data={"fps": "30", "pixel_size_um": "0.166"},
    )
    assert api.status_code == 422
    assert "send a calibration file as the field 'calibration_file'" in api.json()["detail"]
    _nothing_kept(db_url, tmp_path / "data")


def test_upload_form_has_labels_with_units_and_room_for_methods(uploads_client):
    page_login(uploads_client, "ana")
    form = uploads_client.get("/lots/L-1/upload").text
    for label in ("Pixel size (µm)", "Frame rate (frames/s)", "Temperature (°C)"):
        assert f">{label}</label>" in form
    assert '<label for="pixel_size_um">pixel_size_um</label>' not in form
    assert re.search(r'<input id="file" name="file" type="file" multiple', form)
    assert 'name="calibration_file" type="file"' in form and 'id="analysis-method"' in form
    assert "up to 3" in form


@pytest.mark.parametrize(
    "case",
    ["too many", "too big together", "mixed", "bad calibration", "other optics", "same video"],
)
def test_a_refused_upload_is_one_line_and_keeps_nothing(uploads_client, db_url, tmp_path, case):
    client = uploads_client
    csrf = page_login(client, "ana")
    one, two = (_video(tmp_path, seed).read_bytes() for seed in (1, 2))
    blob = b"\0" * int(1.2 * 2**20)
    files, fields, status, words = {
        "too many": ([(f"v{i}.tif", one) for i in range(4)], {}, 413, "at most 3 files"),
        "too big together": (
            [("a.tif", blob), ("b.tif", blob)],
            {},
            413,
            "limit of 2 MB (all files together)",
        ),
        "mixed": ([("a.tif", one), ("result.json", b"{}")], {}, 415, "on its own"),
        "bad calibration": (
            [("a.tif", one)],
            {"calibration_file": ("cal.json", b'{"schema": "something else"}')},
            422,
            "calibration cal.json: not an exocheck calibration",
        ),
        "other optics": (
            [("a.tif", one), ("b.tif", two)],
            {"calibration_file": ("cal.json", _calibration(tmp_path, 0.35).read_bytes())},
            422,
            "the calibration was made on other optics (pixel size 0.166",
        ),
        "same video": ([("a.tif", one), ("b.tif", one)], {}, 422, "the same video as a.tif"),
    }[case]
    page = _post(client, csrf, files, **fields)
    assert page.status_code == status, page.text[-500:]
    error = re.search(r'<div class="error" id="error">([^<]*)</div>', page.text)
    assert error and words in error.group(1).replace("&#39;", "'"), error
    assert str(tmp_path) not in page.text
    assert 'value="0.166"' in page.text  # the form comes back as it was filled in
    _nothing_kept(db_url, tmp_path / "data")
    parts = [("file", (n, c)) for n, c in files]
    if "calibration_file" in fields:
        parts.append(("calibration_file", fields["calibration_file"]))
    api = client.post(
        "/api/v1/lots/L-1/measurements",
        headers=api_login(client, "ana"),
        files=parts,
        data={"fps": "30", "pixel_size_um": "0.166"},
    )
    assert api.status_code == status and words in api.json()["detail"]
    assert "\n" not in api.json()["detail"]
    _nothing_kept(db_url, tmp_path / "data")


def test_only_an_analyst_uploads_and_only_with_the_form_token(uploads_client, db_url, tmp_path):
    video = _video(tmp_path, 1).read_bytes()
    csrf = page_login(uploads_client, "rita")
    refused = _post(uploads_client, csrf, [("a.tif", video), ("b.tif", video + b"\0")])
    assert refused.status_code == 403 and "role reviewer" in refused.text
    uploads_client.cookies.clear()
    page_login(uploads_client, "ana")
    forged = _post(uploads_client, "forged", [("a.tif", video)])
    assert forged.status_code == 403 and "CSRF" in forged.text
    _nothing_kept(db_url, tmp_path / "data")
