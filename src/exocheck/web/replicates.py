"""Replicate videos of one sample uploaded together: checked whole, kept, and queued as one
analysis job over all of them.

``exocheck analyze rep1.tif rep2.tif rep3.tif`` makes one record from a sample's replicates:
the sizes pooled over every track, the concentration the mean over the videos with their spread,
and each video's own figures in ``per_video``. An upload of the same videos is the same sample,
so it becomes the same single analysis (one :class:`~exocheck.batch.manifest.SampleSpec` with
all the videos, run by the batch runner), and one measurement in the lot: the release decision
then reads the pooled result, not the last replicate.

Everything is checked before anything is kept (the form's values for unit sense, the method,
instrument and calibration, each video: it opens, its frame rate and pixel size are known,
nothing given contradicts it without a reason, it is not another's copy, the calibration holds
for its optics); a refusal removes every file of the upload.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from typing import Any

from fastapi import UploadFile

from exocheck.batch.manifest import SampleSpec
from exocheck.errors import ParameterError
from exocheck.web import uploads


def sample_name(lot: str, checksums: list[str]) -> str:
    """The sample of an upload: the lot's number (safe in a folder name) and a digest of the
    videos, in order (the same videos uploaded again are the same sample)."""
    base = re.sub(r"[^A-Za-z0-9._-]", "_", lot).lstrip(".")[:150] or "lot"
    digest = hashlib.sha256("\n".join(checksums).encode()).hexdigest()
    return f"{base}-{digest[:12]}"


def _choices(form: dict[str, Any], calibration_file: UploadFile | None) -> dict[str, Any]:
    """The analysis the form asks for: method, instrument, stored calibration, override reason,
    acquisition values (checked for unit sense) and dilution; contradictory choices refused."""
    choices = {
        "values": uploads.values_from_form(form),  # bad values refused before reading
        "dilution": uploads.dilution_from_form(form),
        "method": uploads.text_field(form, "method", 210),
        "instrument": uploads.text_field(form, "instrument", 200),
        "stored": uploads.text_field(form, "calibration", 20),
        "override": uploads.text_field(form, "override"),
    }
    if choices["method"] is None and choices["instrument"] is not None:
        raise ParameterError("instrument names the instrument of an analysis under a method")
    if choices["stored"] is not None and calibration_file is not None:
        raise ParameterError("choose a stored calibration or upload a calibration file, not both")
    return choices


async def queue_videos(
    store: Any,
    analyses: Any,
    settings: Any,
    *,
    lot: str,
    by: str,
    files: list[UploadFile],
    form: dict[str, Any],
    calibration_file: UploadFile | None,
) -> dict[str, Any]:
    """Check, keep and queue the replicate videos ``files`` as one analysis job.

    Parameters
    ----------
    store : Store
        Where the methods, instruments, stored calibrations and the job table are.
    analyses : AnalysisQueue
        The service's queue of analyses (:class:`exocheck.web.analyses.AnalysisQueue`).
    settings : exocheck.web.Settings
        Its data folder and upload limit (all the files together).
    lot, by : str
        The lot the measurement enters, and who uploaded the videos.
    files : list of UploadFile
        The videos, in the order given (the record's replicates keep it).
    form : dict
        The upload's form fields: acquisition values, ``dilution_factor``, ``method``,
        ``instrument``, ``calibration`` (a stored calibration's id) and ``override``.
    calibration_file : UploadFile, optional
        A bead calibration JSON from ``exocheck calibrate``.

    Returns
    -------
    dict
        ``{"job", "status": "queued", "lot", "videos": [names]}``.
    """
    from exocheck.nta.checks import check_override, video_contradictions

    choices = _choices(form, calibration_file)
    override = choices["override"]
    data = settings.data_path
    limit = settings.max_upload_bytes
    kept: list[uploads.Saved] = []
    try:
        cal = cal_file = applied = None
        if calibration_file is not None:
            cal_file = await uploads.save_upload(
                calibration_file, data, min(uploads.MAX_CALIBRATION_BYTES, limit)
            )
            kept.append(cal_file)
            cal = uploads.read_calibration(cal_file)
        if choices["method"] is not None:
            from exocheck.methods.apply import prepare

            applied = prepare(
                store,
                choices["method"],
                instrument=choices["instrument"],
                given=choices["values"],
                calibration=cal if cal is not None else choices["stored"],
                override=override,
            )
            conditions, cal = applied.conditions, applied.calibration
        else:
            from exocheck.nta.analyze import Conditions

            conditions = Conditions(**choices["values"])
            if choices["stored"] is not None:
                from exocheck.methods.calibrations import load_calibration

                cal = load_calibration(store, choices["stored"])
        videos: list[uploads.Saved] = []
        for file in files:
            left = limit - sum(s.size_bytes for s in kept)
            videos.append(await uploads.save_upload(file, data, left, limit_bytes=limit))
            kept.append(videos[-1])
        seen: dict[str, str] = {}
        for video in videos:
            if video.sha256 in seen:
                raise ParameterError(
                    f"{video.name} is the same video as {seen[video.sha256]}: a replicate is a "
                    "capture of its own"
                )
            seen[video.sha256] = video.name
            optics = uploads.check_video(video, conditions)
            check_override(video_contradictions([video.path], conditions), override)
            if cal is not None:
                uploads.check_calibration_optics(cal, optics, video.name)
        checksums = [v.sha256 for v in videos]
        spec = SampleSpec(
            sample_name(lot, checksums),
            tuple(v.path for v in videos),
            conditions,
            dilution_factor=choices["dilution"],
            stored_calibration=cal if applied is None and choices["stored"] is not None else None,
            override=override,
        )
        if applied is not None:
            from exocheck.methods.apply import for_samples

            (spec,) = for_samples(applied, [spec], override)
    except BaseException:
        for saved in kept:
            saved.discard()
        raise
    cal_path = None
    if cal_file is not None and applied is None:
        cal_path = uploads.keep_calibration(cal_file, data)  # the batch runner reads it there
    elif cal_file is not None:  # under a method the calibration travels in the sample itself
        cal_file.discard()
    spec = replace(
        spec, videos=tuple(uploads.keep_video(v, data) for v in videos), calibration=cal_path
    )
    job = analyses.submit(store, spec, checksums, lot=lot, by=by)
    return {"job": job, "status": "queued", "lot": lot, "videos": [v.name for v in videos]}
