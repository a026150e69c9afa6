"""Multi-page TIFF (plain, ImageJ, OME-TIFF): chunked reading with metadata, streamed writing."""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import re
import tempfile
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from exocheck.errors import ParameterError, VideoError
from exocheck.io._common import Reader, check_positive, luminance, video_error

# Length units to micrometres, as ImageJ and OME write them.
_TO_UM = {
    "micron": 1.0, "microns": 1.0, "um": 1.0, "µm": 1.0, "μm": 1.0, "\\u00b5m": 1.0,
    "nm": 1e-3, "nanometer": 1e-3, "mm": 1e3, "millimeter": 1e3, "cm": 1e4, "m": 1e6,
}  # fmt: skip
# Time units to seconds (OME TimeIncrementUnit / ExposureTimeUnit).
_TO_S = {"s": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "min": 60.0, "h": 3600.0}


def _positive(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _tidy(value: float | None) -> float | None:
    """Drop the float noise of rational tags and 1/x round trips (0.16599999999999998)."""
    return None if value is None else float(f"{value:.12g}")


def _resolution_um(page: tifffile.TiffPage, unit_to_um: float | None) -> float | None:
    """Pixel size from the XResolution tag (pixels per unit), if the unit is known."""
    if unit_to_um is None:
        return None
    tag = page.tags.get("XResolution")
    if tag is None:
        return None
    num, den = tag.value
    pixels_per_unit = _positive(num / den if den else None)
    return _tidy(unit_to_um / pixels_per_unit) if pixels_per_unit else None


def _imagej_meta(tif: tifffile.TiffFile) -> dict[str, float | None]:
    meta = tif.imagej_metadata or {}
    fps = None
    interval = _positive(meta.get("finterval"))
    if interval:
        fps = _tidy(1.0 / interval)
    elif _positive(meta.get("fps")):
        fps = float(meta["fps"])
    unit = str(meta.get("unit", "")).strip().lower()
    pixel = _resolution_um(tif.pages.first, _TO_UM.get(unit))
    return {"fps": fps, "pixel_size_um": pixel, "exposure_ms": _positive(meta.get("exposure_ms"))}


def _ome_meta(xml: str) -> dict[str, float | None]:
    out: dict[str, float | None] = {"fps": None, "pixel_size_um": None, "exposure_ms": None}
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return out
    pixels = next((el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None:
        return out
    size = _positive(pixels.get("PhysicalSizeX"))
    scale = _TO_UM.get(pixels.get("PhysicalSizeXUnit", "µm").lower())
    if size and scale:
        out["pixel_size_um"] = size * scale
    planes = [el for el in pixels if el.tag.rsplit("}", 1)[-1] == "Plane"]
    step = _positive(pixels.get("TimeIncrement"))
    step_scale = _TO_S.get(pixels.get("TimeIncrementUnit", "s"))
    if not (step and step_scale):
        # mean interval between the first-channel, first-plane time points
        times = {}
        for plane in planes:
            if plane.get("TheC", "0") == "0" and plane.get("TheZ", "0") == "0":
                with contextlib.suppress(TypeError, ValueError):
                    times[int(plane.get("TheT", "0"))] = float(plane.get("DeltaT"))  # type: ignore[arg-type]
        step, step_scale = None, _TO_S.get(planes[0].get("DeltaTUnit", "s")) if planes else None
        if len(times) >= 2:
            first, last = min(times), max(times)
            step = _positive((times[last] - times[first]) / (last - first))
    if step and step_scale:
        out["fps"] = _tidy(1.0 / (step * step_scale))
    if planes and _positive(planes[0].get("ExposureTime")):
        exp_scale = _TO_S.get(planes[0].get("ExposureTimeUnit", "s"), 1.0)
        out["exposure_ms"] = float(planes[0].get("ExposureTime")) * exp_scale * 1e3
    return out


def _plain_meta(page: tifffile.TiffPage) -> dict[str, float | None]:
    # Resolution with no unit or in inch/cm is almost always a display dpi, not a calibration:
    # only the explicit (tifffile) millimetre and micrometre units are taken as a pixel size.
    unit = page.tags.get("ResolutionUnit")
    code = int(unit.value) if unit is not None else 2
    scale = {4: 1e3, 5: 1.0}.get(code)
    return {"fps": None, "pixel_size_um": _resolution_um(page, scale), "exposure_ms": None}


_DAMAGE = re.compile(r"invalid|corrupt|fail|truncat", re.IGNORECASE)


class _TiffWarnings(logging.Handler):
    """Collect (and keep off the console) what tifffile logs while a file is opened."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        self.messages.append(text.split("> ", 1)[-1] if text.startswith("<") else text)

    def __enter__(self) -> _TiffWarnings:
        logging.getLogger("tifffile").addHandler(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        logging.getLogger("tifffile").removeHandler(self)


class TiffReader(Reader):
    """First image series of a TIFF file; frames are the pages (leading axes flattened)."""

    format = "tiff"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._lock = threading.Lock()
        self._memmap: bool | None = None  # True: contiguous raw data read directly
        with _TiffWarnings() as warnings:
            try:
                self._tif = tifffile.TiffFile(path)
            except Exception as exc:  # TiffFileError, ValueError, struct.error, ...
                raise video_error(path, f"not a readable TIFF file ({exc})") from exc
            try:
                self._inspect()
                len(self._tif.pages)  # walk the whole page chain: a cut-off file shows here
                # tifffile reads around a broken page chain with a logged warning; a video
                # with silently missing frames is worse than an error.
                damage = [m for m in warnings.messages if _DAMAGE.search(m)]
                if damage:
                    raise video_error(path, f"damaged or truncated TIFF file ({damage[0]})")
            except VideoError:
                self.close()
                raise
            except Exception as exc:
                self.close()
                raise video_error(path, f"damaged TIFF file ({exc})") from exc

    def _inspect(self) -> None:
        tif = self._tif
        if not tif.series:
            raise video_error(self.path, "TIFF file holds no images")
        series = tif.series[0]
        axes, shape = series.axes, series.shape
        if "Y" not in axes or "X" not in axes:
            raise video_error(self.path, f"TIFF series has no image plane (axes {axes})")
        page = series.keyframe
        self._page_shape = tuple(page.shape)
        self._page_axes = page.axes
        self.n_frames = math.prod(shape) // math.prod(self._page_shape)
        if self.n_frames < 1:
            raise video_error(self.path, "TIFF file holds no frames")
        self.height, self.width = shape[axes.index("Y")], shape[axes.index("X")]
        self._samples = self._page_shape[page.axes.index("S")] if "S" in page.axes else 1
        if self._samples not in (1, 2, 3, 4):
            raise video_error(self.path, f"{self._samples} samples per pixel are not supported")
        self.dtype = np.dtype(series.dtype).newbyteorder("=")
        if tif.is_imagej:
            meta = _imagej_meta(tif)
        elif tif.is_ome and tif.ome_metadata:
            meta = _ome_meta(tif.ome_metadata)
        else:
            meta = _plain_meta(tif.pages.first)
        self.fps, self.pixel_size_um, self.exposure_ms = (
            meta["fps"], meta["pixel_size_um"], meta["exposure_ms"],
        )  # fmt: skip
        self._check_size(series)

    def _check_size(self, series: tifffile.TiffPageSeries) -> None:
        size = os.path.getsize(self.path)
        offset = series.dataoffset
        if offset is not None:  # contiguous, uncompressed: memory-map it
            end = offset + series.size * self.dtype.itemsize
            if end > size:
                raise video_error(
                    self.path, f"truncated TIFF file: image data needs {end} bytes, file has {size}"
                )
            # Contiguous, uncompressed data is read with plain file reads (not a memory map, whose
            # touched pages would stay in the process's resident memory for the whole video).
            self._raw_offset = offset
            self._raw_dtype = self.dtype.newbyteorder(self._tif.byteorder)
            self._raw_handle = open(self.path, "rb")  # closed in close()
            self._memmap = True
            return
        pages = series.pages
        if len(pages) < self.n_frames:
            raise video_error(
                self.path, f"truncated TIFF file: {len(pages)} of {self.n_frames} pages present"
            )
        last = pages[len(pages) - 1]
        end = max(o + n for o, n in zip(last.dataoffsets, last.databytecounts, strict=True))
        if end > size:
            raise video_error(
                self.path, f"truncated TIFF file: last page ends at byte {end}, file has {size}"
            )

    def read_range(self, start: int, stop: int) -> np.ndarray:
        try:
            with self._lock:
                if self._memmap is not None:
                    frame_items = int(np.prod(self._page_shape))
                    handle = self._raw_handle
                    handle.seek(self._raw_offset + start * frame_items * self._raw_dtype.itemsize)
                    count = (stop - start) * frame_items
                    data = np.fromfile(handle, dtype=self._raw_dtype, count=count)
                    if data.size != count:
                        raise OSError(f"file ended after {data.size} of {count} values")
                    data = data.astype(self.dtype, copy=False)
                else:
                    data = self._tif.asarray(key=range(start, stop), series=0, maxworkers=2)
        except Exception as exc:
            raise video_error(self.path, f"cannot read frames {start}-{stop - 1} ({exc})") from exc
        data = data.reshape(stop - start, *self._page_shape)
        if "S" in self._page_axes:
            data = luminance(np.moveaxis(data, 1 + self._page_axes.index("S"), -1))
        return data

    def close(self) -> None:
        self._memmap = None
        handle = getattr(self, "_raw_handle", None)
        if handle is not None:
            handle.close()
            self._raw_handle = None
        tif = getattr(self, "_tif", None)
        if tif is not None:
            tif.close()


def _frames_of(frames: np.ndarray | Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """Single frames from an array [h,w] / [n,h,w] or an iterable of frames or chunks."""
    items = [frames] if isinstance(frames, np.ndarray) else frames
    for item in items:
        array = np.asarray(item)
        if array.ndim == 2:
            yield array
        elif array.ndim == 3:
            yield from array
        else:
            raise ParameterError(
                f"frames must be [h, w] or [n, h, w] arrays, got shape {array.shape}"
            )


def write_tiff(
    path: str | os.PathLike[str],
    frames: np.ndarray | Iterable[np.ndarray],
    *,
    n_frames: int | None = None,
    fps: float,
    pixel_size_um: float,
    exposure_ms: float | None = None,
) -> None:
    """Write a grey 8- or 16-bit multi-page ImageJ TIFF, streamed, atomically.

    Parameters
    ----------
    path
        Output file; written to a temporary name in the same folder and renamed into place,
        so an error leaves no partial file.
    frames
        An array ``[n, h, w]`` (or one frame ``[h, w]``), or an iterable of single frames
        and/or chunks ``[n, h, w]``; only one item is held in memory at a time.
    n_frames
        Total number of frames, checked against what ``frames`` yields. Give it with an
        iterator to write the ImageJ header in one pass.
    fps, pixel_size_um, exposure_ms
        Stored as ImageJ metadata (``finterval = 1/fps``, ``unit=micron``, X/Y resolution
        ``1/pixel_size_um`` pixels per µm, custom key ``exposure_ms``), which
        :func:`exocheck.io.video.open_video` and ImageJ/Fiji read back.
    """
    path = Path(path)
    fps = check_positive("fps", fps)
    pixel_size_um = check_positive("pixel_size_um", pixel_size_um)
    exposure_ms = check_positive("exposure_ms", exposure_ms)
    if fps is None or pixel_size_um is None:
        raise ParameterError("write_tiff needs fps and pixel_size_um")
    if isinstance(frames, np.ndarray) and frames.ndim == 3:
        if n_frames is not None and n_frames != frames.shape[0]:
            raise ParameterError(
                f"n_frames={n_frames} but the array holds {frames.shape[0]} frames"
            )
        n_frames = frames.shape[0]
    if n_frames is not None and (int(n_frames) != n_frames or n_frames < 1):
        raise ParameterError(f"n_frames must be a positive integer, got {n_frames!r}")
    stream = _frames_of(frames)
    first = next(stream, None)
    if first is None:
        raise ParameterError(f"{path}: no frames to write")
    if first.dtype not in (np.uint8, np.uint16):
        raise ParameterError(f"frames must be uint8 or uint16, got {first.dtype}")
    shape, dtype = first.shape, first.dtype
    count = 0

    def checked() -> Iterator[np.ndarray]:
        nonlocal count
        for item in itertools.chain([first], stream):
            if item.shape != shape or item.dtype != dtype:
                raise ParameterError(
                    f"frame {count} is {item.dtype} {item.shape}, expected {dtype} {shape}"
                )
            if n_frames is not None and count >= n_frames:
                raise ParameterError(f"frames yields more than n_frames={n_frames} frames")
            count += 1
            yield item
        if n_frames is not None and count != n_frames:
            raise ParameterError(f"frames yielded {count} frames, n_frames={n_frames}")

    metadata: dict[str, Any] = {"axes": "TYX", "finterval": 1.0 / fps, "fps": fps, "unit": "micron"}
    if exposure_ms is not None:
        metadata["exposure_ms"] = exposure_ms
    resolution = (1.0 / pixel_size_um, 1.0 / pixel_size_um)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        writer = tifffile.TiffWriter(tmp, imagej=True)
        try:
            if n_frames is not None:
                writer.write(
                    checked(), shape=(int(n_frames), *shape), dtype=dtype,
                    resolution=resolution, metadata=metadata,
                )  # fmt: skip
            else:  # unknown length: append pages, then write the header for the final count
                for frame in checked():
                    writer.write(frame, contiguous=True, resolution=resolution, metadata=None)
        except BaseException:
            with contextlib.suppress(Exception):  # the first error is the one to report
                writer.close()
            raise
        writer.close()
        if n_frames is None:
            tifffile.tiffcomment(tmp, tifffile.imagej_description((count, *shape), **metadata))
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise video_error(path, f"cannot write TIFF ({exc})") from exc
        raise
