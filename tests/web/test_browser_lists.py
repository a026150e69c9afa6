"""In a real browser (Debian's headless Chromium, a real ``exocheck serve``), at 1280 px: the audit
trail searched, paged and downloaded as CSV; the lots list with a 200-character legacy lot number
staying within the window; replicate videos uploaded with a bead calibration analysed together
into one measurement, followed on the job page (each replicate's figures and the pooled result),
and the lot's concentration no longer inconclusive for want of a calibration. Screenshots go where :mod:`test_browser` puts them."""

from __future__ import annotations

import csv
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from test_browser import _login, _replaced, _shot, _wait, driver  # noqa: F401 (driver: a fixture)
from web_helpers import PRODUCT
from web_server import Server

from exocheck.nta.concentration import Calibration
from exocheck.simulate import make_params, make_population, simulate
from exocheck.store import Store

WIDTH_PX = 1280
LEGACY = ("LEGACY-" + "0123456789" * 20)[:200]
LONG_PRODUCT = ("Mesenchymal-stromal-cell-extracellular-vesicles-" * 5)[:200]


def _window(browser) -> int:
    """Set the window to 1280x800; the width of the page's viewport (without a scroll bar)."""
    browser.set_window_size(WIDTH_PX, 800)
    return browser.execute_script("return document.documentElement.clientWidth")


def _within(browser, selector: str, width: int) -> int:
    """Assert that every element matching ``selector`` ends within ``width``; how many there are."""
    rights = browser.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0]))"
        ".map(e => e.getBoundingClientRect().right)",
        selector,
    )
    assert rights and max(rights) <= width + 0.5, (selector, max(rights or [0]), width)
    return len(rights)


def _fits(browser) -> None:
    """Nothing on the page is wider than the window: no horizontal scrolling."""
    width = _window(browser)
    assert width >= WIDTH_PX - 30  # the window is 1280 px wide (less a scroll bar)
    scroll = browser.execute_script("return document.documentElement.scrollWidth")
    assert scroll <= width, (scroll, width)


def test_audit_trail_search_pages_and_csv_download(driver, db_url, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with Store.open(db_url) as store:
        for i in range(70):
            store.add_lot(f"A-{i:03d}", PRODUCT, by="ana")
        store.add_lot("B-1", PRODUCT, by="ben")
    server = Server(db_url, tmp_path / "data")
    try:
        _login(driver, server.base, "rita")
        driver.get(f"{server.base}/audit")
        total = int(_wait(driver, "audit-total").text)
        assert total > 71
        width = _window(driver)
        _fits(driver)
        assert _within(driver, "#audit tr[data-event]", width) == 50
        _within(driver, "#audit td, #audit-search, .pager", width)
        _shot(driver, "audit")

        # the next page holds the next events, older ones
        newest = driver.find_element(By.CSS_SELECTOR, "#audit tr[data-event]")
        first_id = int(newest.get_attribute("data-event"))
        driver.find_element(By.CSS_SELECTOR, "#audit-pages a[rel=next]").click()
        WebDriverWait(driver, 20).until(_replaced(newest))
        rows = driver.find_elements(By.CSS_SELECTOR, "#audit tr[data-event]")
        assert len(rows) == min(50, total - 50)
        assert int(rows[0].get_attribute("data-event")) == first_id - 50
        assert driver.find_element(By.CSS_SELECTOR, "#audit-pages b").text == "2"

        # a search through the form: user, action and dates
        driver.get(f"{server.base}/audit")
        driver.find_element(By.ID, "q-user").send_keys("ana")
        driver.find_element(By.ID, "q-action").send_keys("lot")
        today = datetime.now(UTC).date()
        for field, day in (("q-since", today - timedelta(days=1)), ("q-until", today)):
            driver.execute_script(
                "document.getElementById(arguments[0]).value = arguments[1]", field, str(day)
            )
        old = driver.find_element(By.ID, "audit-total")
        driver.find_element(By.ID, "audit-search-button").click()
        WebDriverWait(driver, 20).until(_replaced(old))
        assert _wait(driver, "audit-total").text == "70"
        assert driver.find_element(By.ID, "q-user").get_attribute("value") == "ana"
        actors = driver.find_elements(By.CSS_SELECTOR, "#audit tr[data-event] td:nth-child(3)")
        assert len(actors) == 50 and {a.text for a in actors} == {"ana"}
        _fits(driver)
        _shot(driver, "audit-search")

        # its CSV: the same 70 events, oldest first
        driver.find_element(By.ID, "audit-csv").click()
        target = driver.downloads / "audit-trail.csv"
        deadline = time.monotonic() + 30
        while not target.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        with open(target, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        assert [r["lot"] for r in rows] == [f"A-{i:03d}" for i in range(70)]
        assert {(r["actor"], r["action"]) for r in rows} == {("ana", "lot.add")}
    finally:
        server.stop()


def test_lots_list_with_a_200_character_legacy_lot_stays_within_the_window(
    driver,  # noqa: F811
    db_url,
    tmp_path,
):
    from selenium.webdriver.common.by import By

    with Store.open(db_url) as store:
        store.add_product(LONG_PRODUCT, particles_per_unit=1e11, fill_volume_ml=1.0, by="qa")
        for i in range(3):
            store.add_lot(f"L-{i}", PRODUCT, by="ana")
        store.add_lot("LEG-1", LONG_PRODUCT, by="ana")
        with store.engine.begin() as conn:  # a number from before the 64-character rule
            from sqlalchemy import text

            conn.execute(text("UPDATE lots SET number = :n WHERE number = 'LEG-1'"), {"n": LEGACY})
    server = Server(db_url, tmp_path / "data")
    try:
        _login(driver, server.base, "ana")
        width = _window(driver)
        driver.get(f"{server.base}/")
        _wait(driver, "lots")
        _fits(driver)
        assert _within(driver, "#lots tr[data-lot]", width) == 4
        _within(driver, "#lots td, #lots th, #lot-search, .statuses a, #new-lot select", width)
        legacy = driver.find_element(By.CSS_SELECTOR, "#lots tr[data-lot] td.clip")  # newest
        assert legacy.get_attribute("title") == LEGACY
        assert legacy.find_element(By.TAG_NAME, "a").text.startswith("LEGACY-0123")
        # one line, cut with an ellipsis: the cell's text is wider than the cell
        assert legacy.size["height"] < 40
        assert driver.execute_script(
            "return arguments[0].scrollWidth > arguments[0].clientWidth", legacy
        )
        product = driver.find_element(By.CSS_SELECTOR, "#lots tr[data-lot] td:nth-child(2)")
        assert product.get_attribute("title") == LONG_PRODUCT and product.size["height"] < 40
        _shot(driver, "dashboard-legacy")

        # the search finds it by a part of its number, and its audit events fit too
        driver.get(f"{server.base}/?lot=legacy-0123")
        assert len(driver.find_elements(By.CSS_SELECTOR, "#lots tr[data-lot]")) == 1
        driver.get(f"{server.base}/audit?action=lot.add")
        _wait(driver, "audit")
        _fits(driver)
        _within(driver, "#audit td", width)
    finally:
        server.stop()


def _capture(folder: Path, seed: int) -> Path:
    """A 100-frame 256x192 capture of 100-nm beads (about 3 s of analysis)."""
    beads = make_population(name="beads", diameter_nm=100.0, cv=0.03, concentration_per_ml=1e9)
    params = make_params(
        populations=[beads],
        frames=100,
        width_px=256,
        height_px=192,
        fps=30.0,
        exposure_ms=15.0,
        pixel_size_um=0.166,
        temperature_c=25.0,
        seed=seed,
    )
    simulate(params, folder / f"sim-{seed}")
    target = folder / f"replicate-{seed}.tif"
    (folder / f"sim-{seed}" / "video.tif").rename(target)
    return target


def test_replicate_videos_with_a_calibration_become_one_measurement(
    driver,  # noqa: F811
    db_url,
    tmp_path,
):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with Store.open(db_url) as store:
        store.add_lot("MV-1", PRODUCT, by="ana")
    videos = [_capture(tmp_path, seed) for seed in (11, 12, 13)]
    calibration = tmp_path / "beads.json"
    Calibration(
        depth_um=8.0,
        bead_brightness_ratio=6.0,
        bead_diameter_nm=100.0,
        known_concentration_per_ml=1e9,
        pixel_size_um=0.166,
        fps=30.0,
        temperature_c=25.0,
        exposure_ms=15.0,
    ).save(calibration)
    server = Server(db_url, tmp_path / "data")
    try:
        _login(driver, server.base, "ana")
        driver.get(f"{server.base}/lots/MV-1/upload")
        _wait(driver, "upload-form")
        assert driver.find_element(By.CSS_SELECTOR, "label[for=pixel_size_um]").text == (
            "Pixel size (µm)"
        )
        driver.find_element(By.ID, "file").send_keys("\n".join(str(v) for v in videos))
        driver.find_element(By.ID, "calibration_file").send_keys(str(calibration))
        for field, value in (("fps", "30"), ("pixel_size_um", "0.166"), ("exposure_ms", "15")):
            driver.find_element(By.ID, field).send_keys(value)
        _fits(driver)
        _shot(driver, "upload-replicates")
        driver.find_element(By.ID, "upload-button").click()
        _wait(driver, "replicates")
        rows = driver.find_elements(By.CSS_SELECTOR, "#replicates tr.replicate")
        assert [r.find_element(By.CSS_SELECTOR, "td.clip").text for r in rows] == [
            v.name for v in videos
        ]
        _shot(driver, "job-running")
        WebDriverWait(driver, 300, ignored_exceptions=[StaleElementReferenceException]).until(
            lambda d: d.find_element(By.ID, "job-state").text in ("done", "failed")
        )
        assert driver.find_element(By.ID, "job-state").text == "done", driver.page_source[-3000:]
        _fits(driver)
        _shot(driver, "job-replicates")
        rows = driver.find_elements(By.CSS_SELECTOR, "#replicates tr.replicate")
        assert len(rows) == 3
        for row in rows:  # each replicate's own figures, from the one record
            cells = row.find_elements(By.TAG_NAME, "td")
            assert 60 < float(cells[4].text) < 160  # D50 of 100-nm beads, nm
            assert float(cells[5].text) > 0
        assert 60 < float(driver.find_element(By.ID, "result-d50").text) < 160  # pooled
        assert "bead-calibrated" in driver.find_element(By.ID, "result").text
        link = driver.find_element(By.ID, "job-record").get_attribute("href")
        assert "/lots/MV-1#measurement-" in link
        driver.get(link)
        anchor = link.rsplit("#", 1)[1]
        assert "counts" in _wait(driver, anchor).text
    finally:
        server.stop()
    with Store.open(db_url) as store:
        data = store.lot_data("MV-1")
        result = store.evaluate("MV-1")
    (record,) = data.nta_all  # the three replicates are one measurement, as on the command line
    assert record.concentration.calibrated and len(record.per_video) == 3
    assert record.concentration.sd_per_ml is not None  # the spread over the replicates
    claim = next(c for c in result.criteria if c.kind == "label_claim")
    assert claim.result in ("pass", "fail"), claim  # measured, not inconclusive
    assert not any("calibrat" in str(c) for c in result.open_caveats)
