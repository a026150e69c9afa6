"""``exocheck analyze`` on a folder of JPEG frames: analysed, and the result says they were lossy."""

from __future__ import annotations

import json

import numpy as np
import tifffile
from PIL import Image

BEAD_NM = 100.0  # the diameter of the simulated beads (tests/cli/conftest.py)


def test_jpeg_frame_folder_is_analysed_and_marked_lossy(exo, beads, tmp_path):
    frames = tifffile.imread(beads / "video.tif")
    folder = tmp_path / "jpeg-capture"
    folder.mkdir()
    for i, frame in enumerate(frames):
        Image.fromarray(np.asarray(frame, dtype=np.uint8)).save(folder / f"img{i}.jpg", quality=95)
    out = tmp_path / "result"
    outcome = exo(
        "analyze", folder, "--pixel-size-um", 0.166, "--fps", 30, "--temperature-c", 25,
        "--exposure-ms", 15, "--bootstrap", 0, "--out", out,
    )  # fmt: skip
    assert outcome.code == 0, outcome.stderr
    result = json.loads((out / "result.json").read_text())
    lossy = [w for w in result["warnings"] if "lossy JPEG frames" in w]
    assert lossy == [
        f"jpeg-capture: {len(frames)} lossy JPEG frames were analysed: compression artefacts "
        "bias the detection of faint particles and the localisation; record uncompressed frames "
        "(TIFF, PNG) for release data"
    ]
    assert "lossy JPEG frames" in outcome.stdout + outcome.stderr  # shown, not only stored
    # 100 nm beads at quality 95: still sized within 10 % (simulated ground truth)
    assert abs(result["size"]["d50_nm"] - BEAD_NM) < 0.10 * BEAD_NM
