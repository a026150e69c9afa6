"""In a real browser (Debian's headless Chromium, a real ``exocheck serve``), at 1280 px: QA adds
an instrument to the register on its page; an analyst writes a method on the methods page and
QA approves it there with the password again (the author cannot); then the analyst uploads two
replicate videos with the approved method and the instrument, and the job page shows each
replicate and the pooled result of the one measurement, under the method, with the
instrument's stored calibration. Screenshots (full page, and the 1280x800 view) go where
:mod:`test_browser` puts them."""

from __future__ import annotations

import subprocess
from pathlib import Path

from test_browser import _login, _replaced, _shot, _wait, driver  # noqa: F401 (driver: a fixture)
from test_browser_lists import WIDTH_PX, _capture, _fits
from web_helpers import PRODUCT, password
from web_server import EXOCHECK, Server

from exocheck.simulate import make_params, make_population, simulate
from exocheck.store import Store

SERIAL = "NS-0042"
MODEL = "NanoSight NS300"
METHOD = "nta-ev-scatter"
METHOD_YAML = f"""schema: exocheck.method/1
name: {METHOD}
version: 1
title: EV size and concentration by scatter NTA
reference: SOP-QC-041 rev 3
instrument_model: {MODEL}
acquisition: {{fps: 30, exposure_ms: 15, pixel_size_um: 0.166, temperature_c: 25}}
detection: {{threshold_sigma: 5, min_track_frames: 10}}
sizing: {{bootstrap: 3}}
calibration: {{required: true, interval_days: 30, tolerance_percent: 5, max_span: 0.45}}
reportable_range_nm: [50, 1000]
product_refractive_index: 1.39
"""


def _view(browser, name: str) -> None:
    """The page as a 1280x800 window shows it (the top of it)."""
    browser.shots.mkdir(parents=True, exist_ok=True)
    browser.set_window_size(WIDTH_PX, 800)
    inner = browser.execute_script("return [window.innerWidth, window.innerHeight]")
    browser.set_window_size(2 * WIDTH_PX - inner[0], 2 * 800 - inner[1])
    browser.execute_script("window.scrollTo(0, 0)")
    assert browser.save_screenshot(str(browser.shots / f"web-{name}-1280x800.png"))


def _bead_standard(folder: Path) -> Path:
    """100 nm polystyrene beads (CV 3 %) at 1e9/mL, 320x240, 150 frames: D50 about 99 nm."""
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
        seed=11,
    )
    simulate(params, folder)
    return folder / "video.tif"


def _calibrate(db_url: str, beads: Path) -> None:
    """The instrument's bead calibration under the method, stored by the command line."""
    done = subprocess.run(
        [str(EXOCHECK), "calibrate", str(beads), "--known-concentration-per-ml", "1e9",
         "--bead-diameter-nm", "100", "--standard-lot", "PS100-2291",
         "--standard-expiry", "2099-12-31", "--instrument", SERIAL, "--method", METHOD,
         "--db", db_url, "--user", "ana", "--password-stdin"],
        input=password("ana") + "\n", capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_instrument_method_and_upload_under_the_method(driver, db_url, tmp_path):  # noqa: F811
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    with Store.open(db_url) as store:
        store.add_lot("MV-1", PRODUCT, by="ana")
    videos = [_capture(tmp_path, seed) for seed in (11, 12)]
    beads = _bead_standard(tmp_path / "beads")
    server = Server(db_url, tmp_path / "data")
    base = server.base
    try:
        # QA adds the instrument on the register's page
        _login(driver, base, "quinn")
        driver.find_element(By.LINK_TEXT, "Instruments").click()
        _wait(driver, "add-instrument")
        for field, value in (
            ("serial", SERIAL),
            ("model", MODEL),
            ("laser_wavelength_nm", "488"),
            ("pixel_size_um", "166"),  # nm typed as µm: refused, the unit probably meant named
            ("camera", "sCMOS <b>"),
        ):
            driver.find_element(By.ID, field).send_keys(value)
        driver.execute_script("document.getElementById('qualification_due').value = '2099-01-01'")
        driver.find_element(By.ID, "add-instrument-button").click()
        assert "was it nm? (0.166 µm)" in _wait(driver, "error").text
        field = driver.find_element(By.ID, "pixel_size_um")
        assert field.get_attribute("value") == "166"
        field.clear()
        field.send_keys("0.166")
        driver.find_element(By.ID, "add-instrument-button").click()
        assert "In qualification" in _wait(driver, "due").text
        assert driver.find_element(By.CSS_SELECTOR, "h1").text == f"Instrument {SERIAL}"
        assert "sCMOS <b>" in driver.find_element(By.ID, "instrument").text  # shown, not markup
        _fits(driver)
        driver.get(f"{base}/instruments")
        row = _wait(driver, "instruments").find_element(By.CSS_SELECTOR, "tr[data-serial]")
        assert SERIAL in row.text and MODEL in row.text
        _fits(driver)
        _view(driver, "instruments")

        # an analyst writes the method; its author cannot approve it; QA does, with the password
        _login(driver, base, "ana")
        driver.find_element(By.LINK_TEXT, "Methods").click()
        _wait(driver, "add-method")
        driver.find_element(By.ID, "yaml").send_keys(METHOD_YAML)
        driver.find_element(By.ID, "add-method-button").click()
        assert _wait(driver, "method-status").text == "draft"
        assert not driver.find_elements(By.ID, "approve-method")  # an analyst does not approve
        assert "0.166" in driver.find_element(By.ID, "acquisition").text
        _login(driver, base, "quinn")
        driver.get(f"{base}/methods")
        _wait(driver, "methods").find_element(By.LINK_TEXT, f"{METHOD}@1").click()
        _wait(driver, "approve-method")
        _fits(driver)
        _view(driver, "method-draft")
        driver.find_element(By.ID, "password").send_keys("not-the-password")
        driver.find_element(By.ID, "approve-button").click()
        assert "wrong user name or password" in _wait(driver, "error").text
        assert driver.find_element(By.ID, "method-status").text == "draft"
        driver.find_element(By.ID, "password").send_keys(password("quinn"))
        old = driver.find_element(By.ID, "approve-button")
        old.click()
        WebDriverWait(driver, 20).until(_replaced(old))
        assert _wait(driver, "method-status").text == "approved"
        assert "approved by quinn" in driver.page_source

        # a stored calibration of the instrument under the method; the method page states the
        # detection limit it implies
        _calibrate(db_url, beads)
        driver.refresh()
        limit = float(_wait(driver, "limit-nm").text)
        assert 20 < limit < 200, limit
        _fits(driver)
        _view(driver, "method")
        _shot(driver, "method")

        driver.get(f"{base}/instruments/{SERIAL}")
        row = _wait(driver, "calibrations").find_element(By.CSS_SELECTOR, "tr[data-calibration]")
        assert f"{METHOD}@1" in row.text and "PS100-2291" in row.text
        _fits(driver)
        _view(driver, "instrument")
        _shot(driver, "instrument")

        # the analyst uploads two replicates under the method, on the instrument
        _login(driver, base, "ana")
        driver.get(f"{base}/lots/MV-1/upload")
        _wait(driver, "upload-form")
        Select(driver.find_element(By.ID, "method")).select_by_value(f"{METHOD}@1")
        Select(driver.find_element(By.ID, "instrument")).select_by_value(SERIAL)
        driver.find_element(By.ID, "file").send_keys("\n".join(str(v) for v in videos))
        _fits(driver)
        _view(driver, "upload-method")
        _shot(driver, "upload-method")
        driver.find_element(By.ID, "upload-button").click()
        _wait(driver, "replicates")
        method = driver.find_element(By.ID, "job-method").text
        assert f"method {METHOD}@1 on instrument {SERIAL}, stored calibration 1" in method
        WebDriverWait(driver, 300, ignored_exceptions=[StaleElementReferenceException]).until(
            lambda d: d.find_element(By.ID, "job-state").text in ("done", "failed")
        )
        assert driver.find_element(By.ID, "job-state").text == "done", driver.page_source[-3000:]
        rows = driver.find_elements(By.CSS_SELECTOR, "#replicates tr.replicate")
        assert [r.find_element(By.CSS_SELECTOR, "td.clip").text for r in rows] == [
            v.name for v in videos
        ]
        for row in rows:
            cells = row.find_elements(By.TAG_NAME, "td")
            assert int(cells[2].text) > 0  # its own tracks
            assert 60 < float(cells[4].text) < 160  # its own D50 of 100-nm beads, nm
            assert float(cells[5].text) > 0
        pooled = driver.find_element(By.ID, "pooled").find_elements(By.TAG_NAME, "td")
        assert int(pooled[0].text) == sum(
            int(r.find_elements(By.TAG_NAME, "td")[2].text) for r in rows
        )
        assert 60 < float(driver.find_element(By.ID, "result-d50").text) < 160
        assert "bead-calibrated" in driver.find_element(By.ID, "result").text
        _fits(driver)
        _view(driver, "job-method")
        _shot(driver, "job-method")
        record = driver.find_element(By.ID, "job-record").get_attribute("href")
        assert "/lots/MV-1#measurement-" in record
    finally:
        server.stop()
    with Store.open(db_url) as store:
        (measurement,) = store.lot_data("MV-1").nta_all  # one measurement for both replicates
    assert measurement.concentration.calibrated
    assert measurement.settings["method"]["name"] == METHOD
    assert measurement.settings["method"]["calibration_id"] == 1
    assert [v.name for v in measurement.per_video] == [v.name for v in videos]
