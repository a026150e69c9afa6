"""Video containers (AVI, MP4, MOV, MKV, ...) decoded with PyAV (FFmpeg).

Frames are decoded sequentially. The frame count is the number of video packets the
demuxer delivers (one pass over the file without decoding, done when the video is opened);
a file whose packets stop short of the count its header states, or that fails while demuxing
or decoding, raises :class:`~exocheck.errors.VideoError` naming the file and the cause.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from exocheck.io._common import Reader, luminance, video_error

_JPEG_RANGE = 2  # AVCOL_RANGE_JPEG: full-range YUV
# Limited-range luma (16-235) to full range (0-255), rounded and clipped like swscale.
_TV_TO_FULL = np.clip(np.rint((np.arange(256) - 16) * 255 / 219), 0, 255).astype(np.uint8)


def _luma_plane_only(fmt: av.VideoFormat) -> bool:
    """True if plane 0 of ``fmt`` holds only the 8-bit luma (planar YUV, NV12, grey)."""
    components = fmt.components
    if not components or fmt.is_big_endian or fmt.is_bayer:
        return False
    in_plane0 = [c for c in components if c.plane == 0]
    return len(in_plane0) == 1 and in_plane0[0].is_luma and in_plane0[0].bits == 8


def _bits(fmt: av.VideoFormat) -> int:
    return max((c.bits for c in fmt.components), default=8)


class ContainerReader(Reader):
    """The first video stream of a container file."""

    format = "video"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        try:
            container = av.open(str(path))
        except Exception as exc:  # av.FFmpegError, UnicodeDecodeError on odd headers, ...
            reason = getattr(exc, "strerror", None) or exc
            raise video_error(path, f"not a readable video file, or truncated ({reason})") from exc
        try:
            self._inspect(container)
        finally:
            container.close()

    def _inspect(self, container: av.container.InputContainer) -> None:
        if not container.streams.video:
            raise video_error(self.path, "file holds no video stream")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        self.codec = ctx.name
        self.height, self.width = ctx.height or stream.height, ctx.width or stream.width
        fmt = stream.format if ctx.pix_fmt else None
        self._pix_fmt = ctx.pix_fmt
        self.wide = fmt is not None and _bits(fmt) > 8
        self.dtype = np.dtype(np.uint16 if self.wide else np.uint8)
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate and float(rate) > 0 else None
        stated = int(stream.frames or 0)
        counted = 0
        try:
            for packet in container.demux(stream):
                if packet.size:
                    counted += 1
        except Exception as exc:
            raise video_error(
                self.path,
                f"damaged or truncated video: demuxing stopped after {counted} frames ({exc})",
            ) from exc
        if counted == 0 or not self.width or not self.height:
            raise video_error(self.path, "video stream holds no frames")
        if stated and counted < stated:
            raise video_error(
                self.path,
                f"truncated video: the header states {stated} frames, only {counted} are present",
            )
        self.n_frames = counted

    def _frame_array(self, frame: av.VideoFrame) -> np.ndarray:
        fmt = frame.format
        if fmt.is_rgb or fmt.has_palette:  # same luma weights as TIFF and PNG frames
            return luminance(frame.to_ndarray(format="rgb48le" if self.wide else "rgb24"))
        if not self.wide and _luma_plane_only(fmt):
            # FFmpeg's grey conversion, without its cost: the luma plane, expanded to full range
            # for limited-range (TV) YUV exactly as swscale does it (tested against it).
            plane = frame.planes[0]
            rows = np.frombuffer(plane, np.uint8, count=plane.line_size * frame.height)
            luma = rows.reshape(frame.height, plane.line_size)[:, : frame.width]
            full = fmt.name.startswith(("gray", "yuvj")) or frame.color_range == _JPEG_RANGE
            return luma if full else _TV_TO_FULL[luma]
        # anything else: FFmpeg's luma, full range
        return frame.to_ndarray(format="gray16le" if self.wide else "gray")

    def _frames(self) -> Iterator[av.VideoFrame]:
        try:
            container = av.open(str(self.path))
        except Exception as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise video_error(self.path, f"cannot reopen video ({reason})") from exc
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            yield from container.decode(stream)
        finally:
            container.close()

    def chunks(self, chunk_frames: int, start: int, stop: int) -> Iterator[tuple[int, np.ndarray]]:
        shape = (self.height, self.width)
        index = 0
        out = np.empty((min(chunk_frames, stop - start), *shape), dtype=self.dtype)
        filled, first = 0, start
        frames = self._frames()
        try:
            while index < stop:
                try:
                    frame = next(frames, None)
                except Exception as exc:
                    raise video_error(
                        self.path, f"decoding failed at frame {index} ({exc})"
                    ) from exc
                if frame is None:
                    raise video_error(
                        self.path, f"truncated video: decoded {index} of {self.n_frames} frames"
                    )
                if index >= start:
                    array = self._frame_array(frame)
                    if array.shape != shape:
                        raise video_error(
                            self.path, f"frame {index} is {array.shape[1]}x{array.shape[0]}, "
                            f"expected {shape[1]}x{shape[0]} (size changes mid-stream)",
                        )  # fmt: skip
                    out[filled] = array
                    filled += 1
                    if filled == out.shape[0]:
                        yield first, out
                        first += filled
                        filled = 0
                        out = np.empty((min(chunk_frames, stop - first), *shape), dtype=self.dtype)
                index += 1
        finally:
            frames.close()

    def read_range(self, start: int, stop: int) -> np.ndarray:
        parts = [chunk for _, chunk in self.chunks(max(stop - start, 1), start, stop)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
