"""End to end in a real browser: Debian's headless Chromium driven by Selenium against a real
``exocheck serve`` on loopback. An analyst creates a lot and uploads a simulated capture, the
analysis runs as a batch job; a reviewer signs; QA's self-approval and a wrong password are
refused with a clear message (and audited); QA approves; the certificate downloads and names the
lot. Screenshots of the main pages go to the test's temporary folder, or to the folder named
by ``EXOCHECK_SCREENSHOTS`` (``EXOCHECK_SCREENSHOTS=docs/screenshots`` refreshes the documented
ones): the suite writes nothing into the source tree unless asked."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import httpx2 as httpx
import pytest
from pypdf import PdfReader
from web_helpers import password
from web_server import Server

from exocheck.auth import Accounts
from exocheck.simulate import make_params, make_population, simulate
from exocheck.store import Store

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--window-size=1280,1400",
)
LOT = "E2E-001"
SPEC = """\
schema: exocheck.spec/1
name: e2e-size
version: 1
criteria:
  - {name: Size mode, kind: range, quantity: size.mode_nm, min: 50, max: 200}
  - {name: Particles 50-400 nm, kind: size_fraction, window_nm: [50, 400], min_fraction: 0.8}
"""


@pytest.fixture
def driver(tmp_path):
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("Debian's chromium and chromium-driver are missing: .ci/run installs them")
        pytest.skip("needs Debian's chromium and chromium-driver (make sysdeps)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    browser = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    browser.downloads = downloads
    browser.shots = Path(os.environ.get("EXOCHECK_SCREENSHOTS") or tmp_path / "screenshots")
    try:
        yield browser
    finally:
        browser.quit()


def _capture(folder: Path) -> Path:
    """A 5-s capture (150 frames, 320x240) of 100 nm beads, as the simulator writes it."""
    beads = make_population(name="beads", diameter_nm=100.0, cv=0.03, concentration_per_ml=1e9)
    params = make_params(
        populations=[beads],
        frames=150,
        width_px=320,
        height_px=240,
        fps=30.0,
        exposure_ms=15.0,
        pixel_size_um=0.166,
        temperature_c=25.0,
        seed=21,
    )
    simulate(params, folder)
    return folder / "video.tif"


def _login(browser, base: str, name: str, secret: str | None = None) -> None:
    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()
    browser.get(f"{base}/login")
    browser.find_element(By.ID, "username").send_keys(name)
    browser.find_element(By.ID, "password").send_keys(secret or password(name))
    browser.find_element(By.ID, "login").click()
    _wait(browser, "status-released")


def _wait(browser, element_id: str, timeout_s: float = 20.0):
    """The element, once the page that has it is loaded (clicks return before navigation)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout_s).until(
        ec.presence_of_element_located((By.ID, element_id))
    )


def _replaced(element):
    """A wait condition: ``element`` has left the page (a form posted, a new page came).

    Like Selenium's ``staleness_of``; chromedriver sometimes answers a look at a node of the
    page just left with "Node with given id does not belong to the document" instead of a stale
    element, and that too means the page was replaced.
    """
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    def gone(_browser) -> bool:
        try:
            element.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as exc:
            if "does not belong to the document" in str(exc):
                return True
            raise
        return False

    return gone


def _sign(browser, meaning: str, reason: str, secret: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    dialog = browser.find_element(By.ID, "sign-dialog")
    if dialog.get_attribute("open") is None:
        dialog.find_element(By.TAG_NAME, "summary").click()
    Select(browser.find_element(By.ID, "meaning")).select_by_value(meaning)
    browser.find_element(By.ID, "reason").send_keys(reason)
    browser.find_element(By.ID, "sign-password").send_keys(secret)
    old = browser.find_element(By.ID, "sign-button")
    old.click()
    WebDriverWait(browser, 30).until(_replaced(old))


def _shot(browser, name: str) -> None:
    browser.shots.mkdir(parents=True, exist_ok=True)
    browser.set_window_size(
        1280, max(900, min(4000, browser.execute_script("return document.body.scrollHeight") + 40))
    )
    assert browser.save_screenshot(str(browser.shots / f"web-{name}.png"))


def test_analyst_reviewer_qa_in_a_real_browser(driver, tmp_path, db_url):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    spec = tmp_path / "e2e.yaml"
    spec.write_text(SPEC)
    with Store.open(db_url) as store:
        store.add_product("EXO-E2E", particles_per_unit=1e11, fill_volume_ml=1.0, by="qa-setup")
        store.add_specification(spec, product="EXO-E2E", by="qa-setup")
        Accounts(store).add_user(
            "qiana",
            role="qa",
            password=password("qiana"),
            by="admin-setup",
            printed_name="Qiana Example",
        )
    video = _capture(tmp_path / "capture")
    server = Server(db_url, tmp_path / "data")
    base = server.base
    try:
        # the analyst creates the lot and uploads the capture; the analysis runs as a job
        _login(driver, base, "ana")
        Select(driver.find_element(By.ID, "product")).select_by_value("EXO-E2E")
        driver.find_element(By.ID, "lot").send_keys(LOT)
        driver.find_element(By.ID, "create-lot").click()
        assert _wait(driver, "lot-status").text == "awaiting data"
        driver.find_element(By.ID, "upload-link").click()
        _wait(driver, "upload-form")
        driver.find_element(By.ID, "file").send_keys(str(video))
        for field, value in (("fps", "30"), ("pixel_size_um", "0.166"), ("exposure_ms", "15")):
            driver.find_element(By.ID, field).send_keys(value)
        _shot(driver, "upload")
        driver.find_element(By.ID, "upload-button").click()
        WebDriverWait(driver, 10).until(ec.presence_of_element_located((By.ID, "job-state")))
        assert driver.find_element(By.ID, "job-state").text in ("queued", "running", "done")
        from selenium.common.exceptions import StaleElementReferenceException

        WebDriverWait(driver, 240, ignored_exceptions=[StaleElementReferenceException]).until(
            lambda d: d.find_element(By.ID, "job-state").text in ("done", "failed")
        )
        _shot(driver, "job")
        assert driver.find_element(By.ID, "job-state").text == "done", driver.page_source[-2000:]
        driver.find_element(By.ID, "job-lot").click()
        assert _wait(driver, "lot-status").text == "in review"
        assert driver.find_element(By.ID, "lot-decision").text == "conforms"
        assert len(driver.find_elements(By.CSS_SELECTOR, "#measurements tr")) == 2
        with Store.open(db_url) as store:  # QA measured the protein: QA entered data
            store.add_protein(LOT, 5.0, by="quinn")

        # the reviewer signs
        _login(driver, base, "rita")
        driver.get(f"{base}/lots/{LOT}")
        _sign(driver, "reviewed", "data and raw video checked", password("rita"))
        rows = driver.find_elements(By.CSS_SELECTOR, "#signatures tr")
        assert len(rows) == 2 and "Rita Example" in rows[1].text

        # QA who entered data cannot approve; a wrong password is refused
        _login(driver, base, "quinn")
        driver.get(f"{base}/lots/{LOT}")
        _sign(driver, "approved", "release", password("quinn"))
        message = driver.find_element(By.ID, "sign-error").text
        assert "four-eyes rule: quinn entered data" in message
        _shot(driver, "sign-refused")
        _login(driver, base, "qiana")
        driver.get(f"{base}/lots/{LOT}")
        _sign(driver, "approved", "release", "not-my-password")
        assert "wrong user name or password" in driver.find_element(By.ID, "sign-error").text
        assert driver.find_element(By.ID, "lot-status").text == "in review"
        _sign(driver, "approved", "meets the specification", password("qiana"))
        assert driver.find_element(By.ID, "lot-status").text == "released"
        _shot(driver, "lot")
        driver.get(f"{base}/")
        row = _wait(driver, "lots").find_element(By.CSS_SELECTOR, f'tr[data-lot="{LOT}"]')
        assert row.find_element(By.CSS_SELECTOR, "span.status").text == "released"
        assert driver.find_element(By.ID, "status-released").text == "Released 1"
        _shot(driver, "dashboard")

        # the certificate downloads and names the lot
        driver.get(f"{base}/lots/{LOT}")
        driver.find_element(By.ID, "coa-link").click()
        target = driver.downloads / f"{LOT}-CoA.pdf"
        deadline = time.monotonic() + 60
        while not target.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        text = "".join(p.extract_text() for p in PdfReader(target).pages)
        assert LOT in text and "RELEASED" in text.upper()

        # through the API: a video is 202 {"job": ID}, its job is followed to the end
        _api_video(base, video)
    finally:
        server.stop()
    with Store.open(db_url) as store:
        events = store.history(LOT)
    refused = [e for e in events if e["action"] == "signature.refused"]
    assert (
        refused and refused[0]["actor"] == "quinn" and "four-eyes" in refused[0]["after"]["refused"]
    )
    assert any(e["action"] == "signature.failed" and e["actor"] == "qiana" for e in events)
    assert [e["action"] for e in events][-2:] == ["lot.sign", "signature.approved"]
    shutil.rmtree(tmp_path / "data", ignore_errors=True)


def _api_video(base: str, video: Path) -> None:
    token = httpx.post(
        f"{base}/api/v1/login", timeout=30, json={"username": "ben", "password": password("ben")}
    ).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    created = httpx.post(
        f"{base}/api/v1/lots",
        headers=headers,
        timeout=30,
        json={"lot": "E2E-API", "product": "EXO-E2E"},
    )
    assert created.status_code == 201
    with open(video, "rb") as fh:
        response = httpx.post(
            f"{base}/api/v1/lots/E2E-API/measurements",
            headers=headers,
            files={"file": ("capture.tif", fh)},
            timeout=60,
            data={
                "fps": "30",
                "pixel_size_um": "0.166",
                "temperature_c": "25",
                "exposure_ms": "15",
                "allow_reuse": "same capture",
            },
        )
    assert response.status_code == 202
    job = response.json()["job"]
    assert isinstance(job, int)
    deadline = time.monotonic() + 240
    seen = set()
    while time.monotonic() < deadline:
        state = httpx.get(f"{base}/api/v1/jobs/{job}", headers=headers, timeout=30).json()
        seen.add(state["status"])
        assert state["status"] in ("queued", "running", "done", "failed")
        if state["status"] in ("done", "failed"):
            break
        time.sleep(0.3)
    # the capture is already a measurement of lot E2E-001: analysed, but refused by this lot
    assert state["status"] == "failed" and seen <= {"queued", "running", "failed"}, state
    assert "already a measurement of lot E2E-001" in state["error"], state
    assert state["measurement"] is None and "\n" not in state["error"]
    missing = httpx.get(f"{base}/api/v1/jobs/99999", headers=headers, timeout=30)
    assert missing.status_code == 404 and set(missing.json()) == {"detail"}
