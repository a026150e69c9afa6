"""The pages of the instrument register and the analytical methods, without a browser: who may
add and approve (roles, four eyes, the password again, the form's token), one-line refusals that
keep nothing, escaped text, and the upload form offering only approved methods."""

from __future__ import annotations

import re

from web_helpers import CSRF, api_login, page_login, password

from exocheck.store import Store

SERIAL = "NS-0042"
MODEL = "NanoSight NS300"
METHOD_YAML = f"""\
schema: exocheck.method/1
name: nta-ev
version: 1
title: EV size <b>and</b> concentration
instrument_model: {MODEL}
acquisition: {{fps: 30, exposure_ms: 15, pixel_size_um: 0.166, temperature_c: 25}}
detection: {{threshold_sigma: 5, min_track_frames: 10}}
sizing: {{bootstrap: 3}}
calibration: {{required: true, interval_days: 30}}
reportable_range_nm: [50, 1000]
product_refractive_index: 1.39
"""


def _error(html: str) -> str:
    found = re.search(r'<div class="error" id="error">([^<]*)</div>', html)
    assert found, html[-1500:]
    return found.group(1).replace("&#39;", "'")


def _instrument(client, csrf: str, **fields):
    data = {"csrf_token": csrf, "serial": SERIAL, "model": MODEL} | fields
    return client.post("/instruments", data=data, follow_redirects=False)


def test_instrument_register_pages(client, db_url):
    csrf = page_login(client, "ana")
    listing = client.get("/instruments").text
    assert '<a href="/instruments">Instruments</a>' in listing
    assert '<a href="/methods">Methods</a>' in listing
    assert 'id="add-instrument"' not in listing and "QA keeps the register" in listing
    refused = _instrument(client, csrf)
    assert refused.status_code == 403 and "instrument register" in refused.text
    client.cookies.clear()
    csrf = page_login(client, "quinn")
    assert 'id="add-instrument"' in client.get("/instruments").text
    assert '<label for="pixel_size_um">Pixel size (µm)</label>' in client.get("/instruments").text
    forged = _instrument(client, "forged")
    assert forged.status_code == 403 and "CSRF" in forged.text
    # unit sense and numbers, one line each, the form kept and nothing stored
    nm = _instrument(client, csrf, pixel_size_um="166", laser_wavelength_nm="488")
    assert nm.status_code == 422
    assert _error(nm.text) == "pixel_size_um 166: above 5 µm; was it nm? (0.166 µm)"
    assert 'value="166"' in nm.text and f'value="{SERIAL}"' in nm.text
    word = _instrument(client, csrf, laser_wavelength_nm="blue")
    assert _error(word.text) == (
        "Laser wavelength (nm) (laser_wavelength_nm): not a number: 'blue'"
    )
    late = _instrument(client, csrf, qualification_due="01/03/2027")
    assert "qualification due: not an ISO date" in _error(late.text)
    with Store.open(db_url) as store:
        assert not any(e["action"] == "instrument.add" for e in store.history())
    added = _instrument(
        client,
        csrf,
        pixel_size_um="0.166",
        laser_wavelength_nm="488",
        camera='<script>alert("x")</script>',
        qualification_due="2000-01-01",
    )
    assert added.status_code == 303 and added.headers["location"] == f"/instruments/{SERIAL}"
    shown = client.get(added.headers["location"]).text
    assert "<script>alert" not in shown and "&lt;script&gt;alert" in shown
    assert "its qualification was due 2000-01-01" in shown  # past due: said at the top
    again = _instrument(client, csrf)
    assert again.status_code == 409 and "in the register already" in _error(again.text)
    assert f'data-serial="{SERIAL}"' in client.get("/instruments").text
    assert client.get("/instruments/NO-SUCH").status_code == 404
    headers = api_login(client, "ana")
    assert client.get("/api/v1/instruments/NO-SUCH", headers=headers).status_code == 404


def _approve(client, csrf: str, secret: str, ref: str = "nta-ev@1"):
    return client.post(
        f"/methods/{ref}/approval",
        data={"csrf_token": csrf, "password": secret},
        follow_redirects=False,
    )


def test_method_written_then_approved_by_another_with_the_password(client, db_url):
    csrf = page_login(client, "rita")
    assert 'id="add-method"' not in client.get("/methods").text  # a reviewer does not write
    client.cookies.clear()
    csrf = page_login(client, "ana")
    bad = client.post(
        "/methods",
        data={"csrf_token": csrf, "yaml": "name: x\nversion: 1\n"},
        follow_redirects=False,
    )
    assert bad.status_code == 422 and "the method" in _error(bad.text)
    assert "name: x" in bad.text  # the text comes back to be corrected
    written = client.post(
        "/methods", data={"csrf_token": csrf, "yaml": METHOD_YAML}, follow_redirects=False
    )
    assert written.status_code == 303 and written.headers["location"] == "/methods/nta-ev%401"
    page = client.get(written.headers["location"]).text
    assert 'id="method-status">draft<' in page and 'id="approve-method"' not in page
    assert "EV size &lt;b&gt;and&lt;/b&gt; concentration" in page
    assert re.search(r"Pixel size \(µm\)</th><td class=\"num\">0\.166<", page)
    assert re.search(r"Bootstrap resamples</th><td class=\"num\">3<", page)
    assert 'id="limit-nm">—<' in page and "Known once a bead calibration" in page
    # an analyst may not approve, nor can anyone without the password again
    assert _approve(client, csrf, password("ana")).status_code == 403
    client.cookies.clear()
    csrf = page_login(client, "quinn")
    page = client.get("/methods/nta-ev@1").text
    assert 'id="approve-method"' in page
    wrong = _approve(client, csrf, "not-the-password")
    assert wrong.status_code == 401 and 'id="method-status">draft<' in wrong.text
    assert _approve(client, "forged", password("quinn")).status_code == 403
    ok = _approve(client, csrf, password("quinn"))
    assert ok.status_code == 303, ok.text[-800:]
    page = client.get("/methods/nta-ev@1").text
    assert 'id="method-status">approved<' in page and "approved by quinn" in page
    twice = _approve(client, csrf, password("quinn"))
    assert twice.status_code == 409 and "approved already" in _error(twice.text)
    # QA's own method: the page says so, and the approval is refused (four eyes)
    own = METHOD_YAML.replace("name: nta-ev", "name: nta-qa")
    client.post("/methods", data={"csrf_token": csrf, "yaml": own})
    page = client.get("/methods/nta-qa@1").text
    assert 'id="own-method"' in page and 'id="approve-method"' not in page
    mine = _approve(client, csrf, password("quinn"), "nta-qa@1")
    assert mine.status_code == 403 and "four eyes" in _error(mine.text)
    assert client.get("/methods/none@1").status_code == 404
    listing = client.get("/methods").text
    assert 'data-method="nta-ev@1"' in listing and 'data-method="nta-qa@1"' in listing
    with Store.open(db_url) as store:
        actions = [e["action"] for e in store.history() if e["action"].startswith("method")]
    assert actions == ["method.add", "method.approve", "method.add"]
    # the upload form offers the approved method only, and the register's instruments
    client.cookies.clear()
    page_login(client, "ana")
    with Store.open(db_url) as store:
        store.add_lot("L-1", "EXO-1", by="ana")
    form = client.get("/lots/L-1/upload").text
    assert '<option value="nta-ev@1">' in form and "nta-qa@1" not in form
    assert 'name="instrument"' in form and 'name="calibration"' in form
    assert CSRF.search(form)
