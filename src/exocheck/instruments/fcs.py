"""Nano-flow cytometry: FCS 3.1 files (e.g. CytoFLEX nano, NanoFCM), read with ``flowio``.

What is read: the event count (``$TOT``), a calibrated size channel if the file has one (a
parameter whose ``$PnN``/``$PnS`` names size or diameter, values in nm), the analysed volume
(``$VOL`` in nL, or a flow rate times the acquisition time) and a dilution keyword.

Definitions: events per mL = events ÷ analysed volume (the measured concentration) × dilution
(the original sample's). The number-weighted size distribution is the histogram of the size
channel; its statistics are exocheck's, computed from the events (the file states none).

ZetaView per-track exports are FCS files too: one event per trace, with a size channel and a
trace-length channel (``TraceLength``), often brightness, area and position channels. Such a
file is read as a ZetaView measurement: the size distribution of the per-track sizes, the
track count and mean trace length, no concentration (the file states no volume), and the
channel from a filter keyword (``Filter Wavelength nm``) or, failing that, from the file name
(``_F500_`` / ``_Scatter_``); None when neither says.
"""

from __future__ import annotations

import contextlib
import re
import warnings as _warnings
from pathlib import Path

import flowio
import numpy as np

from exocheck.errors import FormatError
from exocheck.instruments._build import file_sha256
from exocheck.instruments._text import first_number, parse_datetime, read_bytes
from exocheck.instruments.channel import (
    channel_from_name,
    laser_from_text,
    lookup_in,
    zetaview_channel,
    zetaview_settings,
)
from exocheck.records import (
    Channel,
    Concentration,
    Measurement,
    SizeDistribution,
    Source,
    TrackSummary,
)

INSTRUMENT = "FCS"
_SIZE = re.compile(r"size|diam", re.IGNORECASE)
_TRACE_LENGTH = r"trace\s*length|track\s*length|tracelength|tracklength|trace\s*len"
_BRIGHTNESS = r"(max|mean|avg|average)?\s*(brightness|intensity)(\s*\[?a\.?u\.?\]?)?"
_ZETAVIEW = re.compile(r"zeta\s*view|particle\s*metrix|zetasphere|\bpmx\s*-?\d{3}", re.IGNORECASE)


def _keywords(flow: flowio.FlowData) -> dict[str, str]:
    return {str(k).lower().lstrip("$"): str(v) for k, v in flow.text.items()}


def _size_channel(flow: flowio.FlowData) -> tuple[int, str] | None:
    for index, (number, channel) in enumerate(
        sorted(flow.channels.items(), key=lambda kv: int(kv[0]))
    ):
        names = f"{channel.get('pnn', '')} {channel.get('pns', '')}"
        if _SIZE.search(names) and not re.search(r"scatter|ssc|fsc", names, re.IGNORECASE):
            return index, str(channel.get("pnn") or number)
    return None


def _channel_index(flow: flowio.FlowData, pattern: str) -> int | None:
    """Index of the first channel whose ``$PnN`` (else ``$PnS``) matches ``pattern`` as a
    whole (case-insensitive; a trailing unit such as ``[frames]`` or ``(a.u.)`` ignored)."""
    ordered = sorted(flow.channels.items(), key=lambda kv: int(kv[0]))
    for key in ("pnn", "pns"):
        for index, (_, channel) in enumerate(ordered):
            name = re.sub(r"\s*[\[(][^\])]*[\])]\s*$", "", str(channel.get(key, "")).strip())
            if name and re.fullmatch(pattern, name, re.IGNORECASE):
                return index
    return None


def _volume_ml(
    keys: dict[str, str], flow: flowio.FlowData, events: np.ndarray
) -> tuple[float | None, str]:
    """Analysed volume in mL and how it was found."""
    vol_nl = first_number(keys.get("vol"))
    if vol_nl and vol_nl > 0:
        return vol_nl * 1e-6, "$VOL (nL)"
    rate_key = next((k for k in keys if "flow" in k and "rate" in k), None)
    rate = first_number(keys.get(rate_key)) if rate_key else None
    if not rate or rate <= 0:
        return None, "no $VOL or flow rate"
    unit = f"{rate_key} {keys.get(rate_key)}".lower()
    per_min = 1.0 / 60.0 if "min" in unit else 1.0
    scale = 1e-6 if "nl" in unit else (1e-3 if ("ul" in unit or "µl" in unit) else 1e-6)
    seconds = None
    if flow.time_index is not None and events.size:
        t = events[:, flow.time_index]  # flowio scales the time channel by $TIMESTEP
        seconds = float(np.nanmax(t) - np.nanmin(t))
    if not seconds:
        start, end = keys.get("btim"), keys.get("etim")
        if start and end:
            with contextlib.suppress(ValueError):
                h0, m0, s0 = (float(x) for x in start.split(":")[:3])
                h1, m1, s1 = (float(x) for x in end.split(":")[:3])
                seconds = (h1 - h0) * 3600 + (m1 - m0) * 60 + (s1 - s0)
    if not seconds or seconds <= 0:
        return None, "flow rate without an acquisition time"
    return rate * scale * per_min * seconds, f"{rate_key} × acquisition time"


def read_fcs(path: str | Path) -> Measurement:
    """Read a nano-flow FCS 2.0/3.x file into a measurement record.

    Raises
    ------
    FormatError
        Not an FCS file, or one ``flowio`` cannot parse.
    """
    path = Path(path)
    data = read_bytes(path)
    if not data.startswith(b"FCS"):
        raise FormatError(f"{path}: not an FCS file (no FCS header)")
    try:
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore")
            flow = flowio.FlowData(path)
            events = (
                np.asarray(flow.as_array(preprocess=True), dtype=float)
                if flow.event_count
                else np.empty((0, flow.channel_count))
            )
    except (
        Exception
    ) as exc:  # flowio raises many types on damaged files (EOFError, struct.error, ...)
        raise FormatError(f"{path}: damaged FCS file ({type(exc).__name__}: {exc})") from None
    keys = _keywords(flow)
    warnings: list[str] = []
    n_events = int(flow.event_count)
    if n_events == 0:
        warnings.append("empty run: the acquisition holds no events ($TOT 0)")
    volume_ml, how = _volume_ml(keys, flow, events)
    dilution = next((first_number(v) for k, v in keys.items() if "dilution" in k), None)
    if dilution is not None and dilution <= 0:
        dilution = None
    measured = n_events / volume_ml if volume_ml else None
    length_index = _channel_index(flow, _TRACE_LENGTH)
    per_track = length_index is not None and _size_channel(flow) is not None
    if measured is None:
        warnings.append(
            "per-track export: no concentration in this file (track count and sizes only)"
            if per_track
            else f"no analysed volume ({how}): reporting event counts only"
        )
    elif dilution is None:
        warnings.append("dilution not recorded: concentration is as measured")
    size = SizeDistribution()
    channel = _size_channel(flow)
    summary: dict[str, object] = {"events": n_events, "volume_ml": volume_ml, "volume_from": how}
    if channel is None:
        warnings.append("no size channel ($PnN/$PnS naming size or diameter): no size distribution")
    elif n_events:
        sizes = events[:, channel[0]]
        sizes = sizes[np.isfinite(sizes) & (sizes > 0)]
        if sizes.size:
            top = float(np.ceil(sizes.max()))
            width = max(1.0, float(np.ceil(top / 2000.0)))
            edges = np.arange(0.0, top + width, width)
            counts, _ = np.histogram(sizes, bins=edges)
            centres = 0.5 * (edges[:-1] + edges[1:])
            d10, d50, d90 = (float(v) for v in np.quantile(sizes, [0.1, 0.5, 0.9]))
            total = counts.sum()
            density = counts / total
            density[-1] += 1.0 - density.sum()
            size = SizeDistribution(
                bin_edges_nm=[float(e) for e in edges],
                density=[float(max(v, 0.0)) for v in density],
                d10_nm=d10,
                d50_nm=d50,
                d90_nm=d90,
                mean_nm=float(sizes.mean()),
                sd_nm=float(sizes.std(ddof=1)) if sizes.size > 1 else None,
                mode_nm=float(centres[int(np.argmax(counts))]),
            )
            summary["size_channel"] = channel[1]
            summary["computed_by_exocheck"] = "size statistics from the events of the size channel"
    if per_track and channel is not None and n_events:
        lengths = events[:, length_index]
        summary["per_track"] = {
            "size_channel": channel[1],
            "length_channel": _channel_name(flow, length_index),
            "mean_length_frames": float(np.nanmean(lengths)),
        }
        bright_index = _channel_index(flow, _BRIGHTNESS)
        if bright_index is not None:
            brightness = events[:, bright_index]
            summary["per_track"]["brightness_channel"] = _channel_name(flow, bright_index)
            summary["per_track"]["mean_brightness"] = float(np.nanmean(brightness))
        summary["computed_by_exocheck"] = (
            "histogram of the vendor's per-track sizes (one event per track); statistics from "
            "the per-track sizes"
        )
    sample = keys.get("smno") or keys.get("sample id") or keys.get("sample") or keys.get("fil")
    date = parse_datetime(" ".join(filter(None, [_fcs_date(keys.get("date")), keys.get("btim")])))
    sha = file_sha256(path)
    maker = " ".join(filter(None, (keys.get("cyt"), keys.get("creator"), keys.get("src"))))
    zetaview = bool(_ZETAVIEW.search(maker)) or (per_track and not keys.get("cyt"))
    instrument = "ZetaView" if zetaview else (keys.get("cyt") or INSTRUMENT)
    recorded_in = None
    if zetaview:
        recorded_in, channel_warnings = _track_channel(keys, path)
        warnings.extend(channel_warnings)
        if recorded_in is None:
            warnings.append(
                "channel not stated (no filter keyword, no _F<nm>_ or _Scatter_ in the file "
                "name): scatter or fluorescence unknown"
            )
    return Measurement(
        source=Source(
            instrument=instrument,
            software_version=keys.get("creator"),
            file_sha256=sha,
            files=[path.name],
        ),
        sample=sample or None,
        date=date,
        dilution_factor=dilution,
        size=size,
        concentration=Concentration(
            particles_per_ml=(measured * dilution if dilution else measured)
            if measured is not None
            else None,
            measured_per_ml=measured,
            dilution_factor=dilution,
        ),
        tracks=TrackSummary(
            count=n_events,
            mean_length_frames=summary["per_track"]["mean_length_frames"]  # type: ignore[index]
            if "per_track" in summary
            else None,
        ),
        channel=recorded_in,
        instrument_summary=summary,
        settings={
            "channels": [
                c.get("pnn") for _, c in sorted(flow.channels.items(), key=lambda kv: int(kv[0]))
            ],
            "fcs_version": str(flow.version),
        },
        warnings=warnings,
        provenance={"inputs": {path.name: sha}},
    )


def _channel_name(flow: flowio.FlowData, index: int) -> str | None:
    return flow.channels[sorted(flow.channels, key=int)[index]].get("pnn")


def _track_channel(keys: dict[str, str], path: Path) -> tuple[Channel | None, list[str]]:
    """The channel of a ZetaView per-track export: from its keywords (``Filter Wavelength
    nm``, ``Laser Wavelength nm`` and the detection settings, spelled as in the size ``.txt``
    header), else from the file name; None when neither states it."""
    lookup = lookup_in(keys)
    # FCS's own excitation keyword ($PnL) where no laser keyword names it
    excitation = next((v for k, v in sorted(keys.items()) if re.fullmatch(r"p\d+l", k)), None)
    channel, warnings = zetaview_channel(lookup, absent_is_scatter=False)
    if channel is not None:
        if channel.laser_wavelength_nm is None and excitation:
            channel = channel.model_copy(
                update={"laser_wavelength_nm": laser_from_text(excitation)}
            )
        return channel, warnings
    named = channel_from_name(path.name)
    if named is None:
        return None, warnings
    settings = zetaview_settings(lookup)
    laser = named.laser_wavelength_nm
    if laser is None:
        laser = laser_from_text(
            lookup("laser wavelength nm") or lookup("laser wavelength") or excitation
        )
    warnings.append(
        f"channel from the file name ({named.filter_name}): the file's keywords state no filter"
    )
    return named.model_copy(update={"settings": settings, "laser_wavelength_nm": laser}), warnings


_MONTHS = {
    m: i
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
        start=1,
    )
}


def _fcs_date(value: str | None) -> str | None:
    """FCS ``$DATE`` (``dd-mmm-yyyy``) as ISO ``yyyy-mm-dd``."""
    if not value:
        return None
    match = re.match(r"\s*(\d{1,2})-([A-Za-z]{3})-(\d{4})", value)
    if match and match.group(2).lower() in _MONTHS:
        return f"{match.group(3)}-{_MONTHS[match.group(2).lower()]:02d}-{int(match.group(1)):02d}"
    return value


def read_fcs_tracks(path: str | Path):
    """Per-track sizes and lengths of a per-track FCS export (``TraceLength`` and ``Size``
    channels, e.g. ZetaView), or None when the file has no track-length channel.

    Returns
    -------
    exocheck.instruments.particles.TrackTable or None
    """
    from exocheck.instruments.particles import TrackTable

    path = Path(path)
    try:
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore")
            flow = flowio.FlowData(path)
            if not flow.event_count:
                return None
            events = np.asarray(flow.as_array(preprocess=True), dtype=float)
    except Exception as exc:  # flowio raises many types on damaged files
        raise FormatError(f"{path}: damaged FCS file ({type(exc).__name__}: {exc})") from None
    length_index = _channel_index(flow, _TRACE_LENGTH)
    channel = _size_channel(flow)
    if length_index is None or channel is None:
        return None
    sizes, lengths = events[:, channel[0]], events[:, length_index]
    keep = np.isfinite(sizes) & (sizes > 0) & np.isfinite(lengths)
    return TrackTable(sizes[keep], lengths[keep], int((~keep).sum()), path.name)
