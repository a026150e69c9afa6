"""Reading back what a certificate PDF shows and carries, with pyHanko's PDF reader: the text of
its pages (decoded through the fonts' ToUnicode maps), its image XObjects and its embedded files.

This is enough for the PDFs exocheck renders (WeasyPrint: CID fonts with ToUnicode maps, no
inline images); it is not a general text extractor. Whatever it cannot read makes the
verification fail, never pass.
"""

from __future__ import annotations

import io
import re
import zlib
from collections.abc import Iterator
from typing import Any

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import PdfFileReader

_WHITESPACE = b" \t\r\n\f\x00"
_DELIMITERS = b"()<>[]{}/%"
_ESCAPES = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b", ord("f"): b"\f"}


def open_pdf(pdf: bytes) -> PdfFileReader:
    return PdfFileReader(io.BytesIO(pdf), strict=False)


def _deref(value: Any) -> Any:
    return value.get_object() if isinstance(value, generic.IndirectObject) else value


def _literal(data: bytes, i: int) -> tuple[bytes, int]:
    """A ``( … )`` string starting after its opening parenthesis."""
    out = bytearray()
    depth = 1
    while i < len(data):
        c = data[i]
        if c == 0x5C:  # backslash
            i += 1
            e = data[i] if i < len(data) else 0
            if e in _ESCAPES:
                out += _ESCAPES[e]
            elif 0x30 <= e <= 0x37:
                octal = re.match(rb"[0-7]{1,3}", data[i : i + 3]).group()
                out.append(int(octal, 8) & 0xFF)
                i += len(octal) - 1
            elif e in (0x0D, 0x0A):  # line continuation
                if e == 0x0D and data[i + 1 : i + 2] == b"\n":
                    i += 1
            else:
                out.append(e)
        elif c == 0x28:
            depth += 1
            out.append(c)
        elif c == 0x29:
            depth -= 1
            if depth == 0:
                return bytes(out), i + 1
            out.append(c)
        else:
            out.append(c)
        i += 1
    raise ValueError("unterminated string in a content stream")


def operators(data: bytes) -> Iterator[tuple[str, list[Any]]]:
    """``(operator, operands)`` of a content stream. Strings are ``bytes``, names ``/Name``,
    arrays and dictionaries lists."""
    stack: list[list[Any]] = [[]]
    i, n = 0, len(data)
    while i < n:
        c = data[i]
        if c in _WHITESPACE:
            i += 1
        elif c == 0x25:  # % comment
            while i < n and data[i] not in b"\r\n":
                i += 1
        elif c == 0x28:
            value, i = _literal(data, i + 1)
            stack[-1].append(value)
        elif data.startswith(b"<<", i) or c == 0x5B:  # << or [
            stack.append([])
            i += 2 if c == 0x3C else 1
        elif data.startswith(b">>", i) or c == 0x5D:  # >> or ]
            if len(stack) < 2:
                raise ValueError("unbalanced brackets in a content stream")
            inner = stack.pop()
            stack[-1].append(inner)
            i += 2 if c == 0x3E else 1
        elif c == 0x3C:  # <hex>
            end = data.index(b">", i)
            digits = re.sub(rb"\s", b"", data[i + 1 : end])
            stack[-1].append(bytes.fromhex((digits + b"0" * (len(digits) % 2)).decode()))
            i = end + 1
        else:
            start = i
            i += 1
            while i < n and data[i] not in _WHITESPACE and data[i] not in _DELIMITERS:
                i += 1
            token = data[start:i].decode("latin-1")
            if c == 0x2F:
                stack[-1].append(token)
            elif re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)", token):
                stack[-1].append(float(token))
            elif token == "BI":
                raise ValueError("inline images are not read")
            else:
                if len(stack) != 1:
                    raise ValueError(f"operator {token} inside brackets in a content stream")
                yield token, stack[0]
                stack = [[]]


def _utf16(hex_digits: str) -> str:
    return bytes.fromhex(hex_digits).decode("utf-16-be", "replace")


def _to_unicode(stream) -> dict[int, str]:
    text = stream.data.decode("latin-1")
    table: dict[int, str] = {}
    for block in re.findall(r"beginbfchar(.*?)endbfchar", text, re.S):
        for src, dst in re.findall(r"<([0-9a-fA-F]+)>\s*<([0-9a-fA-F]*)>", block):
            table[int(src, 16)] = _utf16(dst)
    for block in re.findall(r"beginbfrange(.*?)endbfrange", text, re.S):
        ranges = re.findall(
            r"<([0-9a-fA-F]+)>\s*<([0-9a-fA-F]+)>\s*(\[[^\]]*\]|<[0-9a-fA-F]*>)", block
        )
        for low, high, dst in ranges:
            low_code, high_code = int(low, 16), int(high, 16)
            if dst.startswith("["):
                for k, item in enumerate(re.findall(r"<([0-9a-fA-F]*)>", dst)):
                    table[low_code + k] = _utf16(item)
            else:
                first = bytes.fromhex(dst[1:-1])
                start = int.from_bytes(first, "big")
                for k in range(high_code - low_code + 1):
                    table[low_code + k] = (
                        (start + k).to_bytes(len(first), "big").decode("utf-16-be", "replace")
                    )
    return table


def pages(reader: PdfFileReader) -> list[Any]:
    out: list[Any] = []

    def walk(node: Any, depth: int = 0) -> None:
        node = _deref(node)
        if "/Kids" in node and depth < 32:
            for kid in node["/Kids"]:
                walk(kid, depth + 1)
        else:
            out.append(node)

    walk(reader.root["/Pages"])
    return out


def _contents(page: Any) -> bytes:
    contents = _deref(page.get("/Contents"))
    parts = contents if isinstance(contents, generic.ArrayObject) else [contents]
    return b"\n".join(_deref(p).data for p in parts if p is not None)


def _text(data: bytes, resources: Any, out: list[str], depth: int) -> None:
    resources = _deref(resources) or generic.DictionaryObject()
    fonts = _deref(resources.get("/Font")) or {}
    xobjects = _deref(resources.get("/XObject")) or {}
    decoders: dict[str, tuple[int, dict[int, str]]] = {}
    font: tuple[int, dict[int, str]] | None = None
    for op, args in operators(data):
        if op == "Tf" and args:
            name = args[0]
            if name not in decoders:
                spec = _deref(fonts[name])
                width = 2 if spec.get("/Subtype") == "/Type0" else 1
                cmap = _deref(spec.get("/ToUnicode"))
                decoders[name] = (width, _to_unicode(cmap) if cmap is not None else {})
            font = decoders[name]
        elif op in ("Tj", "'", '"', "TJ") and font is not None and args:
            width, table = font
            shown = args[-1] if op != "TJ" else args[0]
            for item in shown if isinstance(shown, list) else [shown]:
                if isinstance(item, bytes):
                    out.extend(
                        table.get(int.from_bytes(item[k : k + width], "big"), "")
                        for k in range(0, len(item) - width + 1, width)
                    )
        elif op in ("Td", "TD", "T*", "Tm", "ET", "'", '"'):
            out.append(" ")
        elif op == "Do" and args and depth < 4:
            xobject = _deref(xobjects.get(args[0]))
            if xobject is not None and xobject.get("/Subtype") == "/Form":
                _text(xobject.data, xobject.get("/Resources") or resources, out, depth + 1)


def page_text(reader: PdfFileReader, page: Any) -> str:
    """The text a page shows, in content order (spaces where text moves)."""
    out: list[str] = []
    _text(_contents(page), page.get("/Resources"), out, 0)
    return "".join(out)


def images(resources: Any, depth: int = 0) -> Iterator[Any]:
    """Image XObjects of a page's resources, form XObjects included."""
    resources = _deref(resources)
    if resources is None or depth > 4:
        return
    for ref in (_deref(resources.get("/XObject")) or {}).values():
        obj = _deref(ref)
        if obj.get("/Subtype") == "/Image":
            yield obj
        elif obj.get("/Subtype") == "/Form":
            yield from images(obj.get("/Resources"), depth + 1)


def embedded_files(reader: PdfFileReader) -> dict[str, list[bytes]]:
    """Every embedded file by name (a name added again later has several versions)."""
    found: dict[str, list[bytes]] = {}
    names = _deref(reader.root.get("/Names"))
    tree = _deref(names.get("/EmbeddedFiles")) if names is not None else None

    def walk(node: Any, depth: int = 0) -> None:
        node = _deref(node)
        pairs = _deref(node.get("/Names")) or []
        for k in range(0, len(pairs) - 1, 2):
            spec = _deref(pairs[k + 1])
            stream = _deref(_deref(spec.get("/EF") or {}).get("/F"))
            if stream is not None:
                found.setdefault(str(pairs[k]), []).append(stream.data)
        for kid in (_deref(node.get("/Kids")) or []) if depth < 32 else []:
            walk(kid, depth + 1)

    if tree is not None:
        walk(tree)
    return found


def _unpredict_png(data: bytes, row_bytes: int, pixel_bytes: int) -> bytes:
    """Undo the PNG row filters (PDF predictors 10 to 15)."""
    out = bytearray()
    previous = bytearray(row_bytes)
    for start in range(0, len(data), row_bytes + 1):
        kind, row = data[start], bytearray(data[start + 1 : start + 1 + row_bytes])
        if len(row) != row_bytes:
            raise ValueError("truncated image data")
        for k in range(row_bytes):
            left = row[k - pixel_bytes] if k >= pixel_bytes else 0
            up = previous[k]
            up_left = previous[k - pixel_bytes] if k >= pixel_bytes else 0
            if kind == 1:
                row[k] = (row[k] + left) & 0xFF
            elif kind == 2:
                row[k] = (row[k] + up) & 0xFF
            elif kind == 3:
                row[k] = (row[k] + (left + up) // 2) & 0xFF
            elif kind == 4:
                estimate = left + up - up_left
                pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - up_left)
                nearest = left if pa <= pb and pa <= pc else up if pb <= pc else up_left
                row[k] = (row[k] + nearest) & 0xFF
            elif kind != 0:
                raise ValueError(f"unknown PNG row filter {kind}")
        out += row
        previous = row
    return bytes(out)


def image_samples(image: Any) -> tuple[int, int, int, bytes]:
    """``(width, height, channels, samples)`` of an 8-bit DeviceGray or DeviceRGB image XObject
    compressed with Flate (with or without a PNG predictor)."""
    width, height = int(image.get("/Width", 0)), int(image.get("/Height", 0))
    channels = {"/DeviceRGB": 3, "/DeviceGray": 1}.get(str(image.get("/ColorSpace")))
    if channels is None or image.get("/BitsPerComponent") != 8:
        raise ValueError("not an 8-bit grey or RGB image")
    if image.get("/Filter") not in ("/FlateDecode", None):
        raise ValueError("not a Flate image")
    data = image.encoded_data
    if image.get("/Filter") == "/FlateDecode":
        data = zlib.decompress(data)
    params = _deref(image.get("/DecodeParms")) or {}
    if int(params.get("/Predictor", 1)) >= 10:
        data = _unpredict_png(data, width * channels, channels)
    if len(data) != width * height * channels:
        raise ValueError("image data of the wrong size")
    return width, height, channels, data
