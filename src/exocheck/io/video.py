"""Video input: multi-page TIFF, video containers and frame folders, read lazily in chunks.

``open_video`` looks at the path and picks a reader:

* ``.tif`` / ``.tiff`` / ``.ome.tif`` - tifffile. Uncompressed contiguous data (what
  :func:`write_tiff`, ImageJ and most cameras write) is memory-mapped, so a chunk is one copy;
  compressed pages are decoded by page range. Metadata: ImageJ (``finterval``/``fps``, ``unit``
  with X resolution, ``exposure_ms``), OME-XML (``PhysicalSizeX``, ``TimeIncrement`` or plane
  ``DeltaT``, ``ExposureTime``); plain resolution tags count as a pixel size only with an
  explicit millimetre/micrometre unit (inch/cm values are nearly always display dpi).
* a folder - its PNG / TIFF / JPEG / BMP files in natural order (``frame2 < frame10``), all the
  same size; a folder of JPEG frames is ``meta.lossy``.
* anything else - PyAV (FFmpeg): AVI, MP4, MOV, MKV with raw, MJPEG, H.264, ... The frame rate
  is the stream's average rate; containers carry no pixel size. Decoding is sequential: a chunk
  that starts at frame ``k`` costs decoding frames ``0..k`` (read videos front to back).

  The frame count is the number of video packets, counted at open without decoding. A file
  that holds fewer frames than its header states, or that fails to demux or decode, raises
  :class:`VideoError` (at open, or at the frame where decoding fails) rather than returning a
  shorter video.

Colour frames become grey: RGB(A) by ITU-R BT.601 luma weights (Pillow's ``L``); YUV video by
FFmpeg's luma, limited-range (TV) video expanded to full range (what ``to_ndarray("gray")``
gives). Frames keep their native dtype (uint8 or uint16). Every failure to read is a
:class:`VideoError` whose message starts with the path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

from exocheck.errors import ParameterError
from exocheck.io._common import Reader, check_positive, video_error
from exocheck.io._tiff import TiffReader, write_tiff

__all__ = ["Video", "VideoMeta", "open_video", "write_tiff"]

TIFF_SUFFIXES = frozenset({".tif", ".tiff", ".btf", ".tf8"})


@dataclass(frozen=True)
class VideoMeta:
    """What is known about a video before any frame is decoded."""

    path: Path
    n_frames: int
    height: int
    width: int
    dtype: np.dtype
    fps: float | None
    pixel_size_um: float | None
    exposure_ms: float | None
    format: str  # "tiff", "video" or "frames"
    lossy: bool = False  # frames stored with lossy compression (a folder of JPEG frames)

    @property
    def duration_s(self) -> float | None:
        """Length of the recording in seconds, if the frame rate is known."""
        return self.n_frames / self.fps if self.fps else None


class Video:
    """An opened video: metadata plus lazy, chunked access to grey frames.

    Use as a context manager, or call :meth:`close`. Created by :func:`open_video`.
    """

    def __init__(self, reader: Reader, meta: VideoMeta) -> None:
        self._reader = reader
        self.meta = meta

    def __len__(self) -> int:
        return self.meta.n_frames

    def __repr__(self) -> str:
        m = self.meta
        return (f"Video({str(m.path)!r}, {m.n_frames} frames {m.width}x{m.height} {m.dtype}, "
                f"fps={m.fps}, pixel_size_um={m.pixel_size_um})")  # fmt: skip

    def __enter__(self) -> Video:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _range(self, start: int, stop: int | None) -> tuple[int, int]:
        n = self.meta.n_frames
        stop = n if stop is None else stop
        if not (0 <= int(start) <= int(stop) <= n):
            raise ParameterError(
                f"{self.meta.path}: frame range [{start}, {stop}) is outside the video's {n} frames"
            )
        return int(start), int(stop)

    def iter_chunks(
        self, chunk_frames: int = 64, start: int = 0, stop: int | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(first_frame_index, frames[n, h, w])`` for frames ``[start, stop)``.

        Each chunk holds at most ``chunk_frames`` frames (the last may be shorter), is a new
        array the caller may keep or modify, and is grey in the file's native dtype. Only one
        chunk is in memory at a time, whatever the video's length.
        """
        if int(chunk_frames) != chunk_frames or chunk_frames < 1:
            raise ParameterError(f"chunk_frames must be a positive integer, got {chunk_frames!r}")
        start, stop = self._range(start, stop)  # checked now, not at the first next()
        if start == stop:
            return iter(())
        return self._reader.chunks(int(chunk_frames), start, stop)

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Frames ``[start, stop)`` as one array ``[n, h, w]`` (the whole video by default)."""
        start, stop = self._range(start, stop)
        if start == stop:
            return np.empty((0, self.meta.height, self.meta.width), dtype=self.meta.dtype)
        return self._reader.read_range(start, stop)

    def close(self) -> None:
        """Release the file; further reads are not possible."""
        self._reader.close()


def _reader_for(path: Path) -> Reader:
    if not path.exists():
        raise video_error(path, "no such file or folder")
    # Readers are imported when needed: PyAV and Pillow cost start-up time for TIFF input.
    if path.is_dir():
        from exocheck.io._frames import FrameFolderReader

        return FrameFolderReader(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise video_error(path, f"cannot read ({exc.strerror or exc})") from exc
    if size == 0:
        raise video_error(path, "file is empty (0 bytes)")
    if not os.access(path, os.R_OK):
        raise video_error(path, "permission denied")
    if path.suffix.lower() in TIFF_SUFFIXES:
        return TiffReader(path)
    from exocheck.io._container import ContainerReader

    return ContainerReader(path)


def open_video(
    path: str | os.PathLike[str],
    *,
    fps: float | None = None,
    pixel_size_um: float | None = None,
    exposure_ms: float | None = None,
) -> Video:
    """Open a TIFF stack, a video container file or a folder of frames.

    Parameters
    ----------
    path
        File or folder.
    fps, pixel_size_um, exposure_ms
        Override what the file's metadata says (each must be finite and > 0).

    Returns
    -------
    Video
        Headers are read (and, for containers, the packets counted); no frame is decoded.

    Raises
    ------
    VideoError
        The path is missing, empty, not a readable video, truncated or inconsistent.
    ParameterError
        An override is not a finite positive number.
    """
    fps = check_positive("fps", fps)
    pixel_size_um = check_positive("pixel_size_um", pixel_size_um)
    exposure_ms = check_positive("exposure_ms", exposure_ms)
    path = Path(path)
    reader = _reader_for(path)
    meta = VideoMeta(
        path=path,
        n_frames=reader.n_frames,
        height=reader.height,
        width=reader.width,
        dtype=np.dtype(reader.dtype),
        fps=fps if fps is not None else reader.fps,
        pixel_size_um=pixel_size_um if pixel_size_um is not None else reader.pixel_size_um,
        exposure_ms=exposure_ms if exposure_ms is not None else reader.exposure_ms,
        format=reader.format,
        lossy=bool(getattr(reader, "lossy", False)),
    )
    return Video(reader, meta)
