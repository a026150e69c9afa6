"""A folder of single-frame PNG / TIFF / JPEG / BMP images, in natural name order.

PNG, JPEG and BMP are read with Pillow, TIFF with tifffile. JPEG frames are lossy: block
artefacts and smoothing change the faint particle images and their positions, so a folder of
JPEG frames is marked ``lossy`` and :func:`lossy_frames` gives the note an analysis result carries.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from exocheck.io._common import Reader, luminance, natural_key, video_error

FRAME_SUFFIXES = frozenset({".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp"})
LOSSY_SUFFIXES = frozenset({".jpg", ".jpeg"})
_TIFF = frozenset({".tif", ".tiff"})

# Pillow mode -> (dtype, samples per pixel) of np.asarray(image).
_PIL_MODES = {
    "L": (np.uint8, 1), "LA": (np.uint8, 2), "RGB": (np.uint8, 3), "RGBA": (np.uint8, 4),
    "I;16": (np.uint16, 1), "I;16L": (np.uint16, 1), "I;16B": (np.uint16, 1),
    "I": (np.int32, 1), "F": (np.float32, 1),
}  # fmt: skip


def _header(file: Path) -> tuple[tuple[int, ...], np.dtype]:
    """(height, width[, samples]) and dtype of one frame file, from its header only."""
    if file.suffix.lower() not in _TIFF:
        with Image.open(file) as image:
            mode = image.mode
            if mode in ("P", "PA", "1"):  # palette / bilevel: read as 8-bit RGB or grey
                return (image.height, image.width, 3 if mode != "1" else 1), np.dtype(np.uint8)
            if mode == "CMYK":
                return (image.height, image.width, 3), np.dtype(np.uint8)
            if mode not in _PIL_MODES:
                raise ValueError(f"unsupported {image.format or 'image'} pixel mode {mode}")
            dtype, samples = _PIL_MODES[mode]
            return (image.height, image.width, samples), np.dtype(dtype)
    with tifffile.TiffFile(file) as tif:
        page = tif.pages.first
        shape = page.shape
        if "S" in page.axes and page.axes.index("S") == 0:  # planar samples first
            shape = (*shape[1:], shape[0])
        elif "S" not in page.axes:
            shape = (*shape, 1)
        if len(shape) != 3:
            raise ValueError(f"TIFF page is not a single 2-D frame (shape {page.shape})")
        return tuple(shape), np.dtype(page.dtype)


def _read(file: Path) -> np.ndarray:
    """One frame as an array [h, w] or [h, w, samples]."""
    if file.suffix.lower() not in _TIFF:
        with Image.open(file) as image:
            if image.mode in ("P", "PA", "CMYK"):
                image = image.convert("RGB")
            elif image.mode == "1":
                image = image.convert("L")
            return np.asarray(image)
    with tifffile.TiffFile(file) as tif:
        page = tif.pages.first
        data = page.asarray()
        if "S" in page.axes and page.axes.index("S") == 0:
            data = np.moveaxis(data, 0, -1)
        return data


class FrameFolderReader(Reader):
    """Frames are the image files of one folder, sorted naturally (``frame2 < frame10``)."""

    format = "frames"
    lossy = False

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        files = [
            f for f in path.iterdir()
            if f.suffix.lower() in FRAME_SUFFIXES and not f.name.startswith(".") and f.is_file()
        ]  # fmt: skip
        if not files:
            raise video_error(path, "folder holds no PNG, TIFF, JPEG or BMP frames")
        self.files = sorted(files, key=lambda f: natural_key(f.name))
        self.lossy = any(f.suffix.lower() in LOSSY_SUFFIXES for f in files)
        first_shape: tuple[int, ...] | None = None
        for file in self.files:
            try:
                shape, dtype = _header(file)
            except Exception as exc:
                raise video_error(path, f"cannot read frame {file.name} ({exc})") from exc
            if first_shape is None:
                first_shape, first_dtype = shape, dtype
            elif (shape[:2], dtype) != (first_shape[:2], first_dtype):
                raise video_error(
                    path,
                    f"frame {file.name} is {dtype} {shape[0]}x{shape[1]} but "
                    f"{self.files[0].name} is {first_dtype} {first_shape[0]}x{first_shape[1]}; "
                    "all frames must have the same size and bit depth",
                )
        assert first_shape is not None
        self.n_frames = len(self.files)
        self.height, self.width = first_shape[:2]
        self.dtype = first_dtype
        self._pool = ThreadPoolExecutor(max_workers=2) if self.n_frames > 1 else None

    def _gray(self, file: Path) -> np.ndarray:
        try:
            data = _read(file)
        except Exception as exc:
            raise video_error(self.path, f"cannot read frame {file.name} ({exc})") from exc
        if data.ndim == 3:
            data = luminance(data)
        if data.shape != (self.height, self.width):
            raise video_error(self.path, f"frame {file.name} has shape {data.shape}, expected "
                              f"{(self.height, self.width)}")  # fmt: skip
        return data.astype(self.dtype, copy=False)

    def read_range(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start, self.height, self.width), dtype=self.dtype)
        files = self.files[start:stop]
        frames = self._pool.map(self._gray, files) if self._pool else map(self._gray, files)
        for i, frame in enumerate(frames):
            out[i] = frame
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def lossy_frames(path: Path) -> str | None:
    """A note for an analysis result when ``path`` is a folder of lossy (JPEG) frames, else None."""
    path = Path(path)
    if not path.is_dir():
        return None
    try:
        count = sum(
            1
            for f in path.iterdir()
            if f.suffix.lower() in LOSSY_SUFFIXES and not f.name.startswith(".")
        )
    except OSError:
        return None
    if not count:
        return None
    return (
        f"{path.name}: {count} lossy JPEG frames were analysed: compression artefacts bias the "
        "detection of faint particles and the localisation; record uncompressed frames "
        "(TIFF, PNG) for release data"
    )
