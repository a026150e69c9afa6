"""The public verification page (no login) in a real browser: Debian's headless Chromium, driven
by Selenium, against ``exocheck serve`` on loopback. A signed certificate shows "genuine" and
"released"; after QA recalls the lot (an electronic signature with a reason) the same page shows
"recalled" with the reason at once; an unknown number is a 404 that says so."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx2 as httpx
from test_browser import _wait, driver  # noqa: F401  (the browser fixture)
from web_server import Server

from exocheck.auth import Accounts
from exocheck.certify import Keyring, issue_certificate, recall_lot
from exocheck.store import Store

sys.path.insert(0, str(Path(__file__).parents[1] / "certify"))
from signing_factories import PUBLIC_URL, stock

REASON = "particle count below the label claim at 6 months"


def test_verification_page_shows_genuine_then_recalled(tmp_path, driver):  # noqa: F811
    from selenium.webdriver.common.by import By

    url = f"sqlite:///{tmp_path / 'qc.db'}"
    with Store.open(url, create=True) as store:
        stock(store, tmp_path)
        Accounts(store).add_user("quinn", role="qa", password="correct horse 1", by="admin")
        keyring = Keyring(tmp_path / "keys")
        keyring.init("Example Biologics", public_url=PUBLIC_URL)
        certificate = issue_certificate(store, "L-OK", keyring, by="bob")
    server = Server(url, tmp_path / "data")
    try:
        page = f"{server.base}/verify/{certificate.certificate_id}"
        driver.get(page)
        verdict = _wait(driver, "verdict").text
        assert "Genuine" in verdict and "Example Biologics" in verdict
        assert driver.find_element(By.ID, "status").text == "released"
        assert "L-OK" in driver.page_source and "/login" not in driver.current_url
        with Store.open(url) as store:
            recall_lot(store, "L-OK", user="quinn", password="correct horse 1", reason=REASON)
        driver.refresh()
        assert _wait(driver, "status").text == "recalled"
        assert REASON in driver.find_element(By.ID, "recall").text
        unknown = httpx.get(f"{server.base}/verify/COA-0000-0000-0000-0000", timeout=10)
        assert unknown.status_code == 404 and "Unknown certificate" in unknown.text
        odd = httpx.get(f"{server.base}/verify/%3Cscript%3E", timeout=10)
        assert odd.status_code == 404 and "<script>" not in odd.text
    finally:
        server.stop()
