"""exocheck.io.video: TIFF stacks, frame folders, chunking, overrides, memory and bad input.

Video containers (PyAV) are tested in test_video_containers.py.
"""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest
import tifffile
from PIL import Image

from exocheck.errors import ParameterError, VideoError
from exocheck.io._frames import lossy_frames
from exocheck.io.video import open_video, write_tiff


def frames_ramp(n: int, h: int = 24, w: int = 32, dtype: type = np.uint8) -> np.ndarray:
    """Frames whose every pixel encodes (frame, row, column), so any mix-up shows."""
    f, y, x = np.meshgrid(np.arange(n), np.arange(h), np.arange(w), indexing="ij")
    top = np.iinfo(dtype).max + 1
    return ((f * 37 + y * 5 + x * 3) % top).astype(dtype)


def pil_gray(rgb: np.ndarray) -> np.ndarray:
    """Reference luminance: Pillow's RGB -> L conversion, frame by frame."""
    return np.stack([np.asarray(Image.fromarray(frame[..., :3]).convert("L")) for frame in rgb])


# ---------------------------------------------------------------- write_tiff round trips


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_write_tiff_round_trip_pixels_and_metadata(tmp_path, dtype):
    data = frames_ramp(11, dtype=dtype)
    if dtype == np.uint16:
        data = data * 250  # use the high byte too
    path = tmp_path / "v.tif"
    write_tiff(path, data, fps=29.5, pixel_size_um=0.117, exposure_ms=4.5)
    with open_video(path) as video:
        meta = video.meta
        assert (meta.n_frames, meta.height, meta.width) == (11, 24, 32)
        assert len(video) == 11
        assert meta.dtype == np.dtype(dtype)
        assert meta.format == "tiff"
        assert meta.fps == pytest.approx(29.5, rel=1e-12)
        assert meta.pixel_size_um == 0.117  # a rational in the file, tidied on reading
        assert meta.exposure_ms == pytest.approx(4.5)
        assert meta.path == path
        out = video.read()
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, data)


def test_write_tiff_streams_mixed_frames_and_chunks_and_imagej_reads_it(tmp_path):
    data = frames_ramp(20)
    pieces = [data[0], data[1:7], data[7], data[8:20]]
    known = tmp_path / "known.tif"
    unknown = tmp_path / "unknown.tif"
    write_tiff(known, iter(pieces), n_frames=20, fps=25.0, pixel_size_um=0.2)
    write_tiff(unknown, (p for p in pieces), fps=25.0, pixel_size_um=0.2)
    for path in (known, unknown):
        with open_video(path) as video:
            np.testing.assert_array_equal(video.read(), data)
            assert video.meta.fps == pytest.approx(25.0)
            assert video.meta.exposure_ms is None
        # ImageJ/Fiji view of the file: a time series of 20 frames, µm calibration
        with tifffile.TiffFile(path) as tif:
            assert tif.is_imagej
            ij = tif.imagej_metadata
            assert ij["frames"] == 20 and ij["images"] == 20
            assert ij["finterval"] == pytest.approx(0.04)
            assert ij["unit"] == "micron"
            num, den = tif.pages.first.tags["XResolution"].value
            assert num / den == pytest.approx(5.0, rel=1e-6)
            num, den = tif.pages.first.tags["YResolution"].value
            assert num / den == pytest.approx(5.0, rel=1e-6)
            assert tif.series[0].axes == "TYX"


def test_write_tiff_failure_leaves_no_partial_file(tmp_path):
    path = tmp_path / "v.tif"
    write_tiff(path, frames_ramp(3), fps=10.0, pixel_size_um=0.1)
    before = path.read_bytes()

    def broken():
        yield frames_ramp(4)
        raise RuntimeError("simulation failed")

    with pytest.raises(RuntimeError, match="simulation failed"):
        write_tiff(path, broken(), n_frames=8, fps=10.0, pixel_size_um=0.1)
    with pytest.raises(ParameterError, match="n_frames"):
        write_tiff(path, iter([frames_ramp(5)]), n_frames=8, fps=10.0, pixel_size_um=0.1)
    with pytest.raises(ParameterError, match="expected"):
        write_tiff(path, iter([frames_ramp(2), frames_ramp(2, h=10)]), fps=10.0, pixel_size_um=0.1)
    assert path.read_bytes() == before  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.tif"]  # no temporary left behind


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fps": 0.0, "pixel_size_um": 0.1}, "fps"),
        ({"fps": math.nan, "pixel_size_um": 0.1}, "fps"),
        ({"fps": 10.0, "pixel_size_um": -0.1}, "pixel_size_um"),
        ({"fps": 10.0, "pixel_size_um": math.inf}, "pixel_size_um"),
        ({"fps": 10.0, "pixel_size_um": 0.1, "exposure_ms": 0.0}, "exposure_ms"),
    ],
)
def test_write_tiff_rejects_bad_parameters(tmp_path, kwargs, match):
    with pytest.raises(ParameterError, match=match):
        write_tiff(tmp_path / "v.tif", frames_ramp(2), **kwargs)
    assert not list(tmp_path.iterdir())


def test_write_tiff_rejects_float_frames(tmp_path):
    with pytest.raises(ParameterError, match="uint8 or uint16"):
        write_tiff(tmp_path / "v.tif", np.zeros((2, 4, 4)), fps=1.0, pixel_size_um=1.0)


def test_big_endian_16bit_tiff(tmp_path):
    data = frames_ramp(7, dtype=np.uint16) * 300
    path = tmp_path / "be.tif"
    tifffile.imwrite(path, data, byteorder=">", photometric="minisblack")
    with open_video(path) as video:
        assert video.meta.dtype == np.dtype("uint16")  # native order out
        out = video.read(2, 7)
    assert out.dtype.isnative
    np.testing.assert_array_equal(out, data[2:7])


# ---------------------------------------------------------------- TIFF metadata read


@pytest.mark.parametrize(
    ("unit", "pixels_per_unit", "expected_um"),
    [("um", 4.0, 0.25), ("micron", 2.0, 0.5), ("nm", 1 / 250, 0.25), ("\\u00B5m", 10.0, 0.1)],
)
def test_imagej_tiff_written_by_tifffile(tmp_path, unit, pixels_per_unit, expected_um):
    data = frames_ramp(6)
    path = tmp_path / "ij.tif"
    tifffile.imwrite(
        path,
        data,
        imagej=True,
        resolution=(pixels_per_unit, pixels_per_unit),
        metadata={"axes": "TYX", "finterval": 0.05, "unit": unit},
    )
    with open_video(path) as video:
        assert video.meta.fps == pytest.approx(20.0)
        assert video.meta.pixel_size_um == pytest.approx(expected_um, rel=1e-6)
        np.testing.assert_array_equal(video.read(), data)


def test_ome_tiff_time_increment_and_physical_size(tmp_path):
    data = frames_ramp(5)
    path = tmp_path / "a.ome.tif"
    metadata = {
        "axes": "TYX",
        "PhysicalSizeX": 0.166,
        "PhysicalSizeXUnit": "µm",
        "TimeIncrement": 40,
        "TimeIncrementUnit": "ms",
    }
    tifffile.imwrite(path, data, ome=True, metadata=metadata)
    with open_video(path) as video:
        assert video.meta.fps == pytest.approx(25.0)
        assert video.meta.pixel_size_um == pytest.approx(0.166)
        np.testing.assert_array_equal(video.read(), data)


def test_ome_tiff_plane_delta_t_exposure_and_nm(tmp_path):
    data = frames_ramp(6)
    path = tmp_path / "b.ome.tif"
    planes = {"DeltaT": [0.0, 0.05, 0.1, 0.15, 0.2, 0.25], "ExposureTime": [0.01] * 6}
    metadata = {"axes": "TYX", "PhysicalSizeX": 166, "PhysicalSizeXUnit": "nm", "Plane": planes}
    tifffile.imwrite(path, data, ome=True, metadata=metadata)
    with open_video(path) as video:
        assert video.meta.fps == pytest.approx(20.0)
        assert video.meta.pixel_size_um == pytest.approx(0.166)
        assert video.meta.exposure_ms == pytest.approx(10.0)


def test_plain_tiff_resolution_only_with_explicit_micrometre_unit(tmp_path):
    data = frames_ramp(3)
    dpi = tmp_path / "dpi.tif"
    cm = tmp_path / "cm.tif"
    um = tmp_path / "um.tif"
    tifffile.imwrite(
        dpi, data, resolution=(72, 72), resolutionunit="INCH", photometric="minisblack"
    )
    tifffile.imwrite(
        cm, data, resolution=(40000, 40000), resolutionunit="CENTIMETER", photometric="minisblack"
    )
    tifffile.imwrite(
        um, data, resolution=(4, 4), resolutionunit="MICROMETER", photometric="minisblack"
    )
    for path in (dpi, cm):
        with open_video(path) as video:
            assert video.meta.pixel_size_um is None
            assert video.meta.fps is None
    with open_video(um) as video:
        assert video.meta.pixel_size_um == pytest.approx(0.25)


@pytest.mark.parametrize("planar", [False, True])
def test_rgb_tiff_becomes_luminance(tmp_path, planar):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, size=(4, 16, 20, 3), dtype=np.uint8)
    path = tmp_path / "rgb.tif"
    if planar:
        tifffile.imwrite(path, np.moveaxis(rgb, -1, 1), photometric="rgb", planarconfig="separate")
    else:
        tifffile.imwrite(path, rgb, photometric="rgb")
    with open_video(path) as video:
        assert (video.meta.n_frames, video.meta.height, video.meta.width) == (4, 16, 20)
        gray = video.read()
    assert gray.dtype == np.uint8
    np.testing.assert_array_equal(gray, pil_gray(rgb))


# ---------------------------------------------------------------- chunks and overrides


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_chunk_boundaries_and_ranges(tmp_path, compression):
    data = frames_ramp(23)
    path = tmp_path / "c.tif"
    tifffile.imwrite(path, data, compression=compression)
    with open_video(path) as video:
        chunks = list(video.iter_chunks(5))
        assert [i for i, _ in chunks] == [0, 5, 10, 15, 20]
        assert [c.shape[0] for _, c in chunks] == [5, 5, 5, 5, 3]
        np.testing.assert_array_equal(np.concatenate([c for _, c in chunks]), data)
        sub = list(video.iter_chunks(4, start=3, stop=14))
        assert [i for i, _ in sub] == [3, 7, 11]
        np.testing.assert_array_equal(np.concatenate([c for _, c in sub]), data[3:14])
        np.testing.assert_array_equal(video.read(9, 17), data[9:17])
        assert list(video.iter_chunks(64, start=7, stop=7)) == []
        assert video.read(23).shape == (0, 24, 32)
        only = list(video.iter_chunks(100))
        assert len(only) == 1 and only[0][1].shape == (23, 24, 32)
        chunk = next(video.iter_chunks(4))[1]
        chunk[:] = 0  # chunks are the caller's to modify
        np.testing.assert_array_equal(video.read(0, 4), data[:4])
        for bad in [{"chunk_frames": 0}, {"start": -1}, {"stop": 24}, {"start": 5, "stop": 4}]:
            with pytest.raises(ParameterError):
                video.iter_chunks(**bad)  # raised at the call, before any iteration
        with pytest.raises(ParameterError, match="outside"):
            video.read(0, 30)


def test_explicit_arguments_override_metadata(tmp_path):
    path = tmp_path / "v.tif"
    write_tiff(path, frames_ramp(2), fps=25.0, pixel_size_um=0.2, exposure_ms=3.0)
    with open_video(path, fps=50.0, pixel_size_um=0.1, exposure_ms=1.5) as video:
        assert (video.meta.fps, video.meta.pixel_size_um, video.meta.exposure_ms) == (
            50.0,
            0.1,
            1.5,
        )
    with open_video(path, fps=12.5) as video:  # the others still come from the file
        assert video.meta.fps == 12.5
        assert video.meta.pixel_size_um == pytest.approx(0.2)
        assert video.meta.duration_s == pytest.approx(2 / 12.5)


@pytest.mark.parametrize("name", ["fps", "pixel_size_um", "exposure_ms"])
@pytest.mark.parametrize("value", [0.0, -1.0, math.nan, math.inf, "fast"])
def test_invalid_overrides_raise_parameter_error(tmp_path, name, value):
    path = tmp_path / "v.tif"
    write_tiff(path, frames_ramp(2), fps=25.0, pixel_size_um=0.2)
    with pytest.raises(ParameterError, match=name):
        open_video(path, **{name: value})


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_iter_chunks_memory_is_one_chunk_not_the_file(tmp_path, compression):
    n, h, w, chunk = 400, 128, 128, 16
    path = tmp_path / "long.tif"
    rng = np.random.default_rng(2)
    tifffile.imwrite(path, rng.integers(0, 256, (n, h, w), dtype=np.uint8), compression=compression)
    chunk_bytes = chunk * h * w
    whole_bytes = n * h * w  # 6.5 MB
    with open_video(path) as video:
        tracemalloc.start()
        try:
            total = 0
            for _, frames in video.iter_chunks(chunk):
                total += int(frames.sum(dtype=np.int64))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert total > 0
    # a chunk, its transient decode buffers and the consumer's temporaries: a few chunks at most
    assert peak < 4 * chunk_bytes, (peak, chunk_bytes)
    assert peak < whole_bytes / 5


# ---------------------------------------------------------------- frame folders


def test_png_folder_natural_order_and_pixels(tmp_path):
    data = frames_ramp(12)
    for i, frame in enumerate(data):
        Image.fromarray(frame).save(tmp_path / f"frame{i}.png")  # frame2 < frame10
    (tmp_path / "notes.txt").write_text("not a frame")
    with open_video(tmp_path) as video:
        assert video.meta.format == "frames"
        assert (video.meta.n_frames, video.meta.height, video.meta.width) == (12, 24, 32)
        assert video.meta.fps is None and video.meta.pixel_size_um is None
        np.testing.assert_array_equal(video.read(), data)
        np.testing.assert_array_equal(
            np.concatenate([c for _, c in video.iter_chunks(5, 1, 12)]), data[1:]
        )
    with open_video(tmp_path, fps=30.0, pixel_size_um=0.5) as video:
        assert (video.meta.fps, video.meta.pixel_size_um) == (30.0, 0.5)


def test_png_folder_16bit_and_rgb(tmp_path):
    deep = tmp_path / "deep"
    colour = tmp_path / "colour"
    deep.mkdir()
    colour.mkdir()
    data16 = frames_ramp(3, dtype=np.uint16) * 300
    for i, frame in enumerate(data16):
        Image.fromarray(frame).save(deep / f"img_{i:03d}.png")
    rgb = np.random.default_rng(3).integers(0, 256, (3, 24, 32, 3), dtype=np.uint8)
    for i, frame in enumerate(rgb):
        Image.fromarray(frame).save(colour / f"img_{i}.png")
    with open_video(deep) as video:
        assert video.meta.dtype == np.uint16
        np.testing.assert_array_equal(video.read(), data16)
    with open_video(colour) as video:
        assert video.meta.dtype == np.uint8
        np.testing.assert_array_equal(video.read(), pil_gray(rgb))


def test_tiff_frame_folder(tmp_path):
    data = frames_ramp(4, dtype=np.uint16)
    for i, frame in enumerate(data):
        tifffile.imwrite(tmp_path / f"t{i + 1}.tiff", frame)
    with open_video(tmp_path) as video:
        np.testing.assert_array_equal(video.read(), data)


def test_frame_folder_with_mixed_sizes_is_rejected(tmp_path):
    Image.fromarray(frames_ramp(1)[0]).save(tmp_path / "a1.png")
    Image.fromarray(frames_ramp(1, h=20)[0]).save(tmp_path / "a2.png")
    with pytest.raises(VideoError, match="same size") as info:
        open_video(tmp_path)
    assert str(tmp_path) in str(info.value) and "a2.png" in str(info.value)


# ---------------------------------------------------------------- bad input


def _bad_inputs(tmp_path):
    cases = {}
    cases["missing"] = tmp_path / "missing.tif"
    empty_dir = tmp_path / "empty_dir"
    empty_dir.mkdir()
    cases["folder without images"] = empty_dir
    (empty_dir / "readme.txt").write_text("no frames here")
    zero = tmp_path / "zero.tif"
    zero.write_bytes(b"")
    cases["zero-byte tif"] = zero
    zero_avi = tmp_path / "zero.avi"
    zero_avi.write_bytes(b"")
    cases["zero-byte avi"] = zero_avi
    text = tmp_path / "text.tif"
    text.write_text("this is not an image\n" * 20)
    cases["text renamed tif"] = text
    text_mp4 = tmp_path / "text.mp4"
    text_mp4.write_text("this is not a video\n" * 20)
    cases["text renamed mp4"] = text_mp4
    good = tmp_path / "good.tif"
    write_tiff(good, frames_ramp(40), fps=10.0, pixel_size_um=0.1)
    payload = good.read_bytes()
    for frac in (0.5, 0.99):
        cut = tmp_path / f"cut{int(frac * 100)}.tif"
        cut.write_bytes(payload[: int(len(payload) * frac)])
        cases[f"truncated ImageJ tif {frac}"] = cut
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, frames_ramp(40), compression="zlib")
    payload = plain.read_bytes()
    for frac in (0.5, 0.99):
        cut = tmp_path / f"plaincut{int(frac * 100)}.tif"
        cut.write_bytes(payload[: int(len(payload) * frac)])
        cases[f"truncated zlib tif {frac}"] = cut
    return cases


def test_bad_inputs_raise_video_error_naming_the_path(tmp_path):
    for label, path in _bad_inputs(tmp_path).items():
        with pytest.raises(VideoError) as info:  # opening or reading may fail
            with open_video(path) as video:
                video.read()
                pytest.fail(f"{label}: {path} opened and read without error")
        message = str(info.value)
        assert message.startswith(f"{path}: "), (label, message)
        assert len(message) > len(str(path)) + 5, (label, message)  # a cause follows
        assert "\n" not in message


def test_jpeg_and_bmp_frame_folders(tmp_path):
    """BMP frames are lossless (pixels back exactly); JPEG frames are lossy (close, and marked)."""
    data = frames_ramp(6)
    bmp, jpeg = tmp_path / "bmp", tmp_path / "jpeg"
    bmp.mkdir()
    jpeg.mkdir()
    for i, frame in enumerate(data):
        Image.fromarray(frame).save(bmp / f"f{i}.bmp")
        Image.fromarray(frame).save(jpeg / f"f{i}.JPG", quality=95)
    with open_video(bmp) as video:
        assert video.meta.format == "frames" and not video.meta.lossy
        np.testing.assert_array_equal(video.read(), data)
    with open_video(jpeg) as video:
        assert video.meta.lossy and video.meta.n_frames == 6 and video.meta.dtype == np.uint8
        error = np.abs(video.read().astype(int) - data.astype(int))
        assert 0 < error.max() <= 8  # compression artefacts, small at quality 95
    assert lossy_frames(bmp) is None
    note = lossy_frames(jpeg)
    assert note.startswith("jpeg: 6 lossy JPEG frames were analysed")
