"""The organisation's letterhead in the keyring: name, address and logo set once with the keys
(``keys init --address --logo``) or later (``keys letterhead``); logos checked (PNG or plain
SVG, bounded size) and refused with one line, nothing written; keyrings made before the
letterhead keep working."""

from __future__ import annotations

import io
import json
import struct
import sys
import zlib

import pytest

from exocheck.certify import Keyring, KeyringError
from exocheck.certify.keys import MAX_LOGO_BYTES, MAX_LOGO_PX, clean_address
from exocheck.cli.main import run
from exocheck.errors import ParameterError

SVG = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><circle r="4"/></svg>'


def png(width: int, height: int) -> bytes:
    """A valid grey PNG of ``width`` × ``height`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def cli(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["exocheck", *args])
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code = 0
    try:
        run()
    except SystemExit as exc:
        code = exc.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def test_init_keeps_address_and_logo(tmp_path):
    (tmp_path / "logo.png").write_bytes(png(120, 40))
    ring = Keyring(tmp_path / "keys")
    ring.init(
        "Example Biologics",
        address=" QC lab,  5 Example Road;12345 Town ",
        logo=tmp_path / "logo.png",
    )
    head = ring.letterhead()
    assert head.organisation == "Example Biologics"
    assert head.address_lines == ["QC lab, 5 Example Road", "12345 Town"]
    assert head.logo == png(120, 40) and head.logo_media_type == "image/png"
    assert head.logo_data_uri.startswith("data:image/png;base64,iVBORw0KGgo")
    assert (ring.folder / "logo.png").read_bytes() == png(120, 40)  # a copy in the keyring
    (ring.folder / "logo.png").write_bytes(png(121, 40))
    with pytest.raises(KeyringError, match="the logo changed since it was set"):
        ring.letterhead()


def test_a_keyring_made_before_the_letterhead_keeps_working(tmp_path):
    ring = Keyring(tmp_path / "keys")
    ring.init("Example Biologics")
    index = json.loads(ring.index_path.read_text())
    for key in ("address", "logo"):
        del index[key]  # as keyrings were written before
    ring.index_path.write_text(json.dumps(index))
    head = ring.letterhead()
    assert (head.organisation, head.address, head.logo, head.logo_data_uri) == (
        "Example Biologics",
        None,
        None,
        None,
    )
    (tmp_path / "logo.svg").write_text(SVG)
    head = ring.set_letterhead(address="1 Road", logo=tmp_path / "logo.svg")
    assert head.address == "1 Road" and head.logo_media_type == "image/svg+xml"
    assert ring.private_key("data")[0]  # the keys are untouched
    head = ring.set_letterhead(remove_logo=True)
    assert head.logo is None and head.address == "1 Road"
    assert not (ring.folder / "logo.svg").exists()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("logo.gif", b"GIF89a", "a logo is a .png or .svg file"),
        ("logo.png", b"not a png", "not a PNG image"),
        ("logo.png", png(MAX_LOGO_PX + 1, 10), f"at most {MAX_LOGO_PX} px a side"),
        ("logo.png", b"\x89PNG" + b"\x00" * MAX_LOGO_BYTES, "more than 256 KiB"),
        ("logo.png", b"", "the logo file is empty"),
        ("logo.svg", SVG.replace("<circle", "<script>alert(1)</script><circle"), "<script>"),
        ("logo.svg", SVG.replace("<circle", '<circle onload="x()"'), "event handlers"),
        (
            "logo.svg",
            SVG.replace("<circle r", '<image href="file:///etc/passwd"/><circle r'),
            "may not link to other files",
        ),
        (
            "logo.svg",
            SVG.replace("<circle", '<circle style="fill: url(http://x.org/a)"'),
            "may not load other files",
        ),
        ("logo.svg", '<!DOCTYPE svg [<!ENTITY a "b">]>' + SVG, "DOCTYPE or entities"),
        ("logo.svg", SVG.replace(' viewBox="0 0 10 10"', ""), "needs a viewBox"),
        ("logo.svg", "<html/>", "its root element is not <svg>"),
        ("logo.svg", "<svg", "not a readable SVG"),
    ],
)
def test_a_bad_logo_is_refused_and_nothing_is_written(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    ring = Keyring(tmp_path / "keys")
    with pytest.raises(ParameterError, match=message):
        ring.init("Example Biologics", logo=path)
    assert not ring.folder.exists()
    ring.init("Example Biologics")
    before = ring.index_path.read_bytes()
    with pytest.raises(ParameterError, match=message):
        ring.set_letterhead(address="changed", logo=path)
    assert ring.index_path.read_bytes() == before
    assert sorted(p.name for p in ring.folder.glob("logo*")) == []


def test_address_is_checked():
    assert clean_address("  ") is None
    assert clean_address("a\n\n  b ") == "a\nb"
    with pytest.raises(ParameterError, match="control characters"):
        clean_address("a\x07b")
    with pytest.raises(ParameterError, match="longer than 5 lines"):
        clean_address(";".join("abcdef"))
    with pytest.raises(ParameterError, match="300 characters"):
        clean_address("x" * 301)


def test_cli_sets_and_shows_the_letterhead(tmp_path, monkeypatch, capsys):
    keys = str(tmp_path / "keys")
    (tmp_path / "logo.svg").write_text(SVG)
    (tmp_path / "big.png").write_bytes(png(MAX_LOGO_PX + 5, 2))
    code, out, err = cli(
        monkeypatch, capsys, "keys", "init", "--org", "Example Biologics", "--address",
        "5 Example Road; 12345 Town", "--logo", str(tmp_path / "big.png"), "--keys", keys,
    )  # fmt: skip
    assert code == 2 and "at most 2000 px a side" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "keys").exists()
    code, out, err = cli(
        monkeypatch, capsys, "keys", "init", "--org", "Example Biologics", "--address",
        "5 Example Road; 12345 Town", "--logo", str(tmp_path / "logo.svg"), "--keys", keys,
    )  # fmt: skip
    assert code == 0, err
    code, out, err = cli(monkeypatch, capsys, "keys", "letterhead", "--keys", keys)
    assert code == 0, err
    assert "Example Biologics; 5 Example Road / 12345 Town; logo image/svg+xml" in out
    code, out, err = cli(
        monkeypatch, capsys, "keys", "letterhead", "--address", "", "--no-logo", "--keys", keys
    )
    assert code == 0 and "Example Biologics; no address; no logo" in out, err
    code, out, err = cli(
        monkeypatch, capsys, "keys", "letterhead", "--logo", str(tmp_path / "logo.svg"),
        "--no-logo", "--keys", keys,
    )  # fmt: skip
    assert code == 2 and "exclude each other" in err
