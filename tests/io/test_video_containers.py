"""exocheck.io.video on video containers decoded by PyAV: AVI (raw, MJPEG), MP4/MOV (H.264),
MKV (FFV1 16-bit), truncated files, and the real bright-field recording tests/data/bulk-water.mov.
"""

from __future__ import annotations

import itertools
import tracemalloc
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from exocheck.errors import VideoError
from exocheck.io.video import open_video

DATA = Path(__file__).resolve().parent.parent / "data"
H264_ENCODERS = ("libx264", "libopenh264", "h264")


def encoder(candidates: tuple[str, ...]) -> str:
    """First encoder of ``candidates`` this PyAV/FFmpeg build has; fail loudly if none."""
    for name in candidates:
        if name not in av.codecs_available:
            continue
        try:
            av.codec.Codec(name, "w")
        except Exception:  # decoder only
            continue
        return name
    pytest.fail(
        f"PyAV's FFmpeg has none of the encoders {candidates} needed to make the test video; "
        "install a PyAV build with them (the PyPI wheels include libx264)"
    )


def scene(n: int, h: int = 48, w: int = 64) -> np.ndarray:
    """Smooth grey frames: a gradient background with dark and bright blobs moving across."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    frames = np.empty((n, h, w), dtype=np.uint8)
    for i in range(n):
        image = 90 + 60 * x / w + 20 * y / h
        image -= 70 * np.exp(-((x - 10 - 2 * i) ** 2 + (y - 20) ** 2) / 18)
        image += 80 * np.exp(-((x - 40) ** 2 + (y - 8 - i) ** 2) / 12)
        frames[i] = np.clip(np.rint(image), 0, 255)
    return frames


def encode(path: Path, frames: np.ndarray, codec: str, pix_fmt: str, rate=25, **options) -> Path:
    """Write ``frames`` ([n,h,w] grey or [n,h,w,3] RGB) with PyAV."""
    source = {1: "gray", 3: "rgb24"}[1 if frames.ndim == 3 else frames.shape[-1]]
    if frames.dtype == np.uint16:
        source = "gray16le"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = pix_fmt
        stream.options = {k: str(v) for k, v in options.items()}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format=source)))
        container.mux(stream.encode())
    return path


def read_all(path: Path, **kwargs) -> tuple:
    with open_video(path, **kwargs) as video:
        return video.meta, video.read()


def test_avi_raw_gray_is_exact(tmp_path):
    data = scene(17)
    path = encode(tmp_path / "raw.avi", data, "rawvideo", "gray")
    meta, frames = read_all(path)
    assert (meta.n_frames, meta.height, meta.width) == (17, 48, 64)
    assert meta.format == "video" and meta.dtype == np.uint8
    assert meta.fps == pytest.approx(25.0)
    assert meta.pixel_size_um is None  # containers carry none
    np.testing.assert_array_equal(frames, data)


def test_avi_raw_rgb_becomes_luminance(tmp_path):
    rgb = np.random.default_rng(4).integers(0, 256, (5, 16, 24, 3), dtype=np.uint8)
    path = encode(tmp_path / "rgb.avi", rgb, "rawvideo", "bgr24")
    _, frames = read_all(path)
    expected = np.stack([np.asarray(Image.fromarray(f).convert("L")) for f in rgb])
    np.testing.assert_array_equal(frames, expected)


def test_mkv_ffv1_16bit_is_exact(tmp_path):
    data = scene(6).astype(np.uint16) * 257 + 3
    path = encode(tmp_path / "deep.mkv", data, "ffv1", "gray16le")
    meta, frames = read_all(path)
    assert meta.dtype == np.uint16 and meta.n_frames == 6
    np.testing.assert_array_equal(frames, data)


@pytest.mark.parametrize(
    ("name", "codecs", "pix_fmt", "rate", "options"),
    [
        ("mjpeg.avi", ("mjpeg",), "yuvj420p", 25, {"qmin": 1, "qmax": 2}),
        ("h264.mp4", H264_ENCODERS, "yuv420p", Fraction(30000, 1001), {"crf": 12}),
        ("h264.mov", H264_ENCODERS, "yuv420p", 24, {"crf": 12}),
    ],
)
def test_lossy_containers_are_close(tmp_path, name, codecs, pix_fmt, rate, options):
    data = scene(30)
    codec = encoder(codecs)
    if codec.startswith("h264") or codec == "libopenh264":
        options = {}  # crf is a libx264 option
    path = encode(tmp_path / name, data, codec, pix_fmt, rate=rate, **options)
    meta, frames = read_all(path)
    assert (meta.n_frames, meta.height, meta.width) == (30, 48, 64)
    assert meta.dtype == np.uint8
    assert meta.fps == pytest.approx(float(rate), rel=1e-6)
    # High-quality lossy coding of a smooth scene: a few grey levels on average, and the
    # blobs (70 and 80 levels deep) keep their position and contrast.
    error = np.abs(frames.astype(np.int16) - data.astype(np.int16))
    assert error.mean() < 2.0, error.mean()
    assert np.percentile(error, 99) <= 8
    for i in (0, 15, 29):
        assert np.unravel_index(np.argmin(frames[i]), data[i].shape) == np.unravel_index(
            np.argmin(data[i]), data[i].shape
        )


@pytest.mark.parametrize(
    ("name", "pix_fmt"),
    [("tv.mp4", "yuv420p"), ("full.avi", "yuvj420p"), ("bulk-water.mov", None)],
)
def test_luma_equals_ffmpeg_grey_conversion(tmp_path, name, pix_fmt):
    # Limited-range (TV) YUV is expanded to full range, full-range (JPEG) YUV is the luma
    # plane as is: both exactly as FFmpeg's own conversion to "gray" does it.
    if pix_fmt is None:
        path = DATA / name
    else:
        codec = encoder(H264_ENCODERS) if pix_fmt == "yuv420p" else "mjpeg"
        path = encode(tmp_path / name, scene(12), codec, pix_fmt)
    with av.open(str(path)) as container:
        frames = itertools.islice(container.decode(video=0), 40)
        reference = [f.to_ndarray(format="gray") for f in frames]
    with open_video(path) as video:
        ours = video.read(0, len(reference))
    np.testing.assert_array_equal(ours, np.stack(reference))


def test_container_chunks_start_stop_and_override(tmp_path):
    data = scene(29)
    path = encode(tmp_path / "raw.avi", data, "rawvideo", "gray")
    with open_video(path, fps=100.0) as video:
        assert video.meta.fps == 100.0
        chunks = list(video.iter_chunks(7, start=5, stop=27))
        assert [i for i, _ in chunks] == [5, 12, 19, 26]
        assert [c.shape[0] for _, c in chunks] == [7, 7, 7, 1]
        np.testing.assert_array_equal(np.concatenate([c for _, c in chunks]), data[5:27])
        np.testing.assert_array_equal(video.read(20), data[20:])
        # an abandoned iteration does not disturb the next one
        next(video.iter_chunks(4))
        np.testing.assert_array_equal(np.concatenate([c for _, c in video.iter_chunks(8)]), data)


def test_container_memory_is_one_chunk(tmp_path):
    n, h, w, chunk = 300, 96, 128, 10
    data = np.random.default_rng(5).integers(0, 256, (n, h, w), dtype=np.uint8)
    path = encode(tmp_path / "long.avi", data, "rawvideo", "gray")
    with open_video(path) as video:
        tracemalloc.start()
        try:
            count = sum(frames.shape[0] for _, frames in video.iter_chunks(chunk))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert count == n
    assert peak < 4 * chunk * h * w, peak  # the file is 3.7 MB, a chunk 123 kB


def encode_faststart(path: Path, frames: np.ndarray) -> Path:
    """H.264 MP4 with its index (moov) before the frame data, as streaming-ready files are."""
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream(encoder(H264_ENCODERS), rate=25)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="gray")))
        container.mux(stream.encode())
    return path


@pytest.mark.parametrize(
    ("kind", "fraction"),
    [
        ("raw.avi", 0.3),
        ("raw.avi", 0.55),
        ("raw.avi", 0.97),
        ("mjpeg.avi", 0.3),
        ("mjpeg.avi", 0.97),
        ("h264.mp4", 0.3),  # index at the end: lost with any cut into the frame data
        ("h264.mp4", 0.55),
        ("faststart.mp4", 0.55),  # index first: states more frames than the data holds
        ("faststart.mp4", 0.97),
        ("bulk-water.mov", 0.5),
        ("bulk-water.mov", 0.97),
    ],
)
def test_truncated_containers_raise_video_error(tmp_path, kind, fraction):
    if kind == "bulk-water.mov":
        source = DATA / kind
    elif kind == "raw.avi":
        source = encode(tmp_path / kind, scene(40), "rawvideo", "gray")
    elif kind == "mjpeg.avi":
        source = encode(tmp_path / kind, scene(40), "mjpeg", "yuvj420p")
    elif kind == "faststart.mp4":
        source = encode_faststart(tmp_path / kind, scene(40))
    else:
        source = encode(tmp_path / kind, scene(40), encoder(H264_ENCODERS), "yuv420p")
    payload = source.read_bytes()
    cut = tmp_path / f"cut-{kind}"
    cut.write_bytes(payload[: int(len(payload) * fraction)])
    with pytest.raises(VideoError) as info:  # at open or while decoding
        with open_video(cut) as video:
            for _ in video.iter_chunks(16):
                pass
            pytest.fail(f"{cut} opened and decoded without error")
    message = str(info.value)
    assert message.startswith(f"{cut}: ")
    assert any(word in message for word in ("truncated", "not a readable", "damaged")), message


def test_bulk_water_recording(tmp_path):
    path = DATA / "bulk-water.mov"
    with open_video(path) as video:
        meta = video.meta
        assert meta.n_frames == 480
        assert (meta.height, meta.width) == (424, 640)
        assert meta.fps == pytest.approx(24000 / 1001, rel=1e-6)
        assert meta.dtype == np.uint8 and meta.format == "video"
        first = video.read(0, 10)
        last = video.read(470, 480)
    assert first.shape == (10, 424, 640) and last.dtype == np.uint8
    # Bright field: 1 µm latex beads are dark spots on a bright, even background, so the dark
    # tail of the histogram reaches much further from the median than the bright tail.
    for frames in (first, last):
        median = np.median(frames)
        dark, bright = np.percentile(frames, [0.1, 99.9])
        assert median > 100
        assert median - dark > 3 * (bright - median), (dark, median, bright)
