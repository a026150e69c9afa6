"""Builders of realistic synthetic instrument exports from a known size distribution.

Each builder writes the layout described for the instrument (sections, key names, column
orders) and can inject the quirks seen in real files. The statistics a builder states are
computed here, independently of exocheck, by the instrument's own definitions:
NanoSight reads quantiles from the cumulative at the upper bin edge, ZetaView at bin centres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats


@dataclass
class Truth:
    """A known log-normal number distribution and concentration."""

    median_nm: float = 110.0
    gsd: float = 1.45
    measured_per_ml: float = 4.0e8  # in the cell
    dilution: float | None = 500.0
    temperature_c: float = 25.02
    viscosity_mpa_s: float = 0.8902

    def bin_fractions(self, edges: np.ndarray) -> np.ndarray:
        dist = stats.lognorm(s=math.log(self.gsd), scale=self.median_nm)
        cdf = dist.cdf(edges)
        return np.diff(cdf) / (cdf[-1] - cdf[0])


def quantile_walk(positions: list[float], weights: list[float], q: float, start: float | None):
    """Quantile by walking the cumulative and interpolating linearly (reference definition)."""
    total = sum(weights)
    prev_x = start if start is not None else positions[0]
    prev_c = 0.0
    running = 0.0
    for x, w in zip(positions, weights, strict=True):
        running += w
        c = running / total
        if c >= q:
            if start is None and prev_c == 0.0 and x == positions[0]:
                return x
            return prev_x + (q - prev_c) / (c - prev_c) * (x - prev_x)
        prev_x, prev_c = x, c
    return positions[-1]


def stats_of(centres: list[float], weights: list[float], positions: list[float], start):
    total = sum(weights)
    if total <= 0:  # nothing measured: the instrument states zeros
        return dict.fromkeys(("mean", "mode", "sd", "d10", "d50", "d90"), 0.0)
    mean = sum(c * w for c, w in zip(centres, weights, strict=True)) / total
    var = sum(w * (c - mean) ** 2 for c, w in zip(centres, weights, strict=True)) / total
    mode = centres[max(range(len(weights)), key=lambda i: weights[i])]
    d10, d50, d90 = (quantile_walk(positions, weights, q, start) for q in (0.1, 0.5, 0.9))
    return {"mean": mean, "mode": mode, "sd": math.sqrt(var), "d10": d10, "d50": d50, "d90": d90}


# --------------------------------------------------------------------------------- NanoSight
@dataclass
class NanoSightOptions:
    n_videos: int = 5
    failed: tuple[int, ...] = ()  # video indices with concentration 0
    nbins: int = 1000
    autosampler: bool = False  # no 'Concentration average' / 'Standard Error' graph columns
    dilution_recorded: bool = True
    noise: tuple[int, ...] = ()  # videos flagged 'Noise detected'
    vibration: tuple[int, ...] = ()
    newline: str = "\n"
    encoding: str = "latin-1"
    version: str = "3.3.301"
    experiment: str = "EV-lot-17"
    sample_description: str = "EV lot 17 UC pellet"
    drop_rows: tuple[str, ...] = ()  # keys of rows to leave out (missing columns)
    header_case: str = "Particles / ml"
    seed: int = 1
    # NTA 3.x writes the Average / Standard Error titles on the section line itself:
    # "[Results],,,,,,Average,Standard Error," (False: a separate title row, as older layouts)
    titles_on_section_line: bool = True
    # every row padded to one width with empty cells (as in files re-saved by a spreadsheet),
    # section lines included: "[Conditions],,,,,,"
    pad_rows: bool = False
    unsized: tuple[int, ...] = ()  # videos with a concentration but 0 valid tracks (stats 0)
    vibration_word: str = "Yes"  # real files: "Minor vibration" / "Moderate vibration"
    laser_type: str = "Blue488"
    # a filter row (the layout of a summary that states its filter is unconfirmed: the real NTA
    # 3.2/3.4 summaries seen have none): (row key, value for all videos or one per video)
    filter_row: tuple[str, str | tuple[str, ...]] | None = None


@dataclass
class NanoSightExport:
    csv: bytes
    truth: Truth
    stated: dict[str, float]  # number-weighted Average statistics
    stated_conc: float  # the Average concentration (incl. failed videos)
    video_conc: list[float]
    average_bins: np.ndarray
    centres: np.ndarray
    video_names: list[str] = field(default_factory=list)
    distribution_stats: dict[str, float] = field(default_factory=dict)  # of average_bins


def _fmt(v: float) -> str:
    return f"{v:.6g}"


def nanosight_summary(truth: Truth | None = None, opts: NanoSightOptions | None = None):
    """An NTA 3.x ExperimentSummary.csv (bytes) with its ground truth."""
    truth = truth or Truth()
    o = opts or NanoSightOptions()
    rng = np.random.default_rng(o.seed)
    edges = np.arange(o.nbins + 1, dtype=float)
    centres = edges[:-1] + 0.5
    frac = truth.bin_fractions(edges)
    dil = truth.dilution if (o.dilution_recorded and truth.dilution) else 1.0
    names = [f"{o.experiment}_{i + 1:03d}.avi" for i in range(o.n_videos)]
    video_conc, video_bins = [], []
    for i in range(o.n_videos):
        if i in o.unsized:
            video_conc.append(truth.measured_per_ml * dil * 0.01)
            video_bins.append(np.zeros_like(frac))
            continue
        if i in o.failed:
            video_conc.append(0.0)
            video_bins.append(np.zeros_like(frac))
            continue
        conc = truth.measured_per_ml * dil * float(rng.uniform(0.9, 1.1))
        shape = frac * rng.uniform(0.95, 1.05, frac.size)
        bins = conc * shape / shape.sum()
        video_conc.append(conc)
        video_bins.append(bins)
    avg_bins = np.mean(video_bins, axis=0)
    stated_conc = float(np.mean(video_conc))
    c, up = centres.tolist(), edges[1:].tolist()
    video_stats = [stats_of(c, b.tolist(), up, 0.0) if b.sum() > 0 else None for b in video_bins]
    # the stated Average of each statistic is the plain mean over videos, zeros of failed
    # videos included (not a statistic of the averaged distribution)
    avg_stats = {
        k: float(np.mean([s[k] if s else 0.0 for s in video_stats]))
        for k in ("mean", "mode", "sd", "d10", "d50", "d90")
    }

    lines: list[str] = []
    width = o.n_videos * 2 + 3

    def row(*cells) -> None:
        key = str(cells[0]) if cells else ""
        if any(key.lower().startswith(d.lower()) for d in o.drop_rows if d):
            return
        if o.pad_rows:
            lines.append(",".join(str(x) for x in [*cells, *[""] * (width - len(cells))]))
        else:
            lines.append(",".join(str(x) for x in cells) + ",")

    def section(name: str, *titles: str) -> None:
        if titles:  # titles on the section line, under no video column
            lines.append(",".join([f"[{name}]", *[""] * o.n_videos, *titles, ""]))
        elif o.pad_rows:
            row(f"[{name}]")
        else:
            lines.append(f"[{name}],")

    def per_video(key, values, avg=True):
        vals = [_fmt(v) if isinstance(v, float) else ("" if v is None else str(v)) for v in values]
        extra = []
        if avg:
            nums = [v for v in values if isinstance(v, float)]
            se = float(np.std(nums, ddof=1) / math.sqrt(len(nums))) if len(nums) > 1 else 0.0
            extra = [_fmt(float(np.mean(nums))) if nums else "", _fmt(se)]
        row(key, *vals, *extra)

    lines.append("NTA Experiment Summary File,")
    lines.append(f"Created with NTA {o.version[:3]} - Sample Assistant Dev Build {o.version},")
    row("")
    section("Experiment Details")
    row("Software Version", o.version)
    row("Experiment Name", o.experiment)
    row("Operator Name", "Jürgen Ölçer")
    row("Time Captured", "15:42:48  01/04/2021")
    row("Sample Description", o.sample_description)
    row("Pre-treatment", "")
    row("Diluent", "PBS")
    row("Remarks", "")
    row("Filename:", *names)
    row("")
    section("Conditions")
    temps = [truth.temperature_c + 0.01 * (i - o.n_videos // 2) for i in range(o.n_videos)]
    row("Temperature/C", *[f"{t:.2f}" for t in temps])
    row("Viscosity/cP", *[f"{truth.viscosity_mpa_s:.4f}"] * o.n_videos)
    row("")
    section("Settings")
    if o.filter_row is not None:
        key, val = o.filter_row
        row(key, *([val] * o.n_videos if isinstance(val, str) else val))
    for key, val in (
        ("Camera Type", "sCMOS"),
        ("Laser Type", o.laser_type),
        ("Camera Level", 14),
        ("Slider Shutter", 1259),
        ("Slider Gain", 366),
        ("Shutter/ms", "30.00"),
        ("Frame rate/fps", "24.98"),
        ("Syringe Pump Speed/AU", 50),
        ("Detection Threshold", 5),
        ("Max Jump Mode", "Auto"),
        ("Max Jump Distance", "15.8"),
        ("Blur", "Auto"),
        ("Min Track Length", "Auto"),
        ("First frame", 0),
        ("Total frames analysed", 1498),
    ):
        row(key, *[val] * o.n_videos)
    row("")
    section("Exclusion Regions")
    row("")
    if o.titles_on_section_line:
        section("Results", "Average", "Standard Error")
    else:
        section("Results")
        row("", *names, "Average", "Standard Error")
    if o.dilution_recorded and truth.dilution:
        per_video(
            "Dilution factor (concentrations adjusted for this factor)", [float(dil)] * o.n_videos
        )
    else:
        row(
            "Dilution factor (concentrations adjusted for this factor)",
            *["Not recorded"] * (o.n_videos + 1),
        )
    per_video(f"Concentration ({o.header_case})", video_conc)
    row("Concentration Upgrade?", *["No"] * o.n_videos)
    ppf = [v / dil / 1.0e7 for v in video_conc]
    per_video("Particles per frame", ppf)
    per_video("Centres per frame", [p * 1.2 for p in ppf])
    per_video("Completed tracks", [float(round(p * 40)) for p in ppf])
    per_video("X-Drift (pix/frame)", [0.01] * o.n_videos)
    per_video("Y-Drift (pix/frame)", [-0.02] * o.n_videos)
    row("")
    section("Concentration Warnings")
    row(
        "Validity of concentration measurement",
        *["Unreliable" if i in o.failed + o.unsized else "OK" for i in range(o.n_videos)],
    )
    row("Noise level", *["Noise detected" if i in o.noise else "No" for i in range(o.n_videos)])
    row("")
    section("Information")
    row("Noise level", *["Noise detected" if i in o.noise else "No" for i in range(o.n_videos)])
    row(
        "Vibration detected",
        *[o.vibration_word if i in o.vibration else "No" for i in range(o.n_videos)],
    )
    row("Vibration correction applied", *["Yes" if o.vibration else "No"] * o.n_videos)
    row("Settings changed?", *["No"] * o.n_videos)
    row("")
    section("Data Included")
    for n in names:
        row(n, "Yes")
    row("")

    def block(kind: str, weighting: str, first: bool, weight_pow: int):
        if first:
            row("Analysis Method", "FTLA")
        row("Weighting", weighting)
        row("Filename", *names, "Average", "Standard Error")
        wb = [b * centres**weight_pow for b in video_bins]
        wavg = avg_bins * centres**weight_pow
        vs = [stats_of(c, b.tolist(), up, 0.0) if b.sum() > 0 else None for b in wb]
        st = stats_of(c, wavg.tolist(), up, 0.0)
        if kind == "size" and weight_pow == 0:
            vs, st = video_stats, avg_stats
        for key in ("Mean", "Mode", "SD", "D10", "D50", "D90"):
            vals = [("0" if s is None else _fmt(s[key.lower()])) for s in vs]
            row(key, *vals, _fmt(st[key.lower()]), _fmt(0.5))
        tracks = [
            0.0 if b.sum() == 0 else float(round(p * 40))
            for b, p in zip(video_bins, ppf, strict=True)
        ]
        per_video("Valid Tracks", tracks)
        row("")
        row("Graph Data")
        unit = {
            0: "Concentration ({c})",
            2: "Surface area conc. (nm² / ml)",
            3: "Volume conc. (nm³ / ml)",
        }[weight_pow].format(c="particles / ml")
        xname = "Bin centre (nm)" if kind == "size" else "Bin centre (E4 nm²/s)"
        head = [xname, *[unit] * o.n_videos]  # one bin-centre column, one per video
        if o.pad_rows:
            head[1] = " " + head[1]  # re-saved files: a leading space in the first title
        if not o.autosampler:
            head += ["Concentration average", "Standard Error"]
        row(*head)
        for j in range(o.nbins):
            cells = [f"{centres[j]:.1f}", *(_fmt(float(b[j])) for b in wb)]
            if not o.autosampler:
                cells += [_fmt(float(wavg[j])), _fmt(0.0)]
            row(*cells)
        row("")
        ylabel = "Size (nm)" if kind == "size" else "Diffusion Coefficient (E4 nm²/s)"
        row("Percentile", *[ylabel] * o.n_videos)
        for p in range(101):
            row(str(p), *[_fmt(p * 2.0)] * o.n_videos)
        row("")

    section("Size Data")
    for k, (w, p) in enumerate((("Number", 0), ("Surface Area", 2), ("Volume", 3))):
        block("size", w, k == 0, p)
    section("Diffusion Coefficient Data")
    for k, (w, p) in enumerate((("Number", 0), ("Surface Area", 2), ("Volume", 3))):
        block("diffusion", w, k == 0, p)
    text = o.newline.join(lines) + o.newline
    return NanoSightExport(
        csv=text.encode(o.encoding, errors="replace"),
        truth=truth,
        stated=avg_stats,
        stated_conc=stated_conc,
        video_conc=video_conc,
        average_bins=avg_bins,
        centres=centres,
        video_names=names,
        distribution_stats=stats_of(c, avg_bins.tolist(), up, 0.0),
    )


def nano_companion(export: NanoSightExport, dilution: float | None = None) -> bytes:
    """The INI-style ``.nano`` file that goes with a summary."""
    n = len(export.video_names)
    d = dilution if dilution is not None else (export.truth.dilution or 1.0)
    lines = ["[Filenames]"] + [f"File{i}={v}" for i, v in enumerate(export.video_names)]
    lines += [
        "[Details]",
        "Operator=J. Ölçer",
        "SampleName=EV lot 17 (nano)",
        "Diluent=PBS",
        "TimeCaptured=01/04/2021 15:42:48",
        "ScriptName=standard-5x60s",
    ]
    lines += ["[CaptureSettings]"]
    for key, val in (
        ("PixelSize", "166.0"),
        ("Temperature", f"{export.truth.temperature_c:.2f}"),
        ("Viscosity", f"{export.truth.viscosity_mpa_s:.4f}"),
        ("DilutionFactor", f"{d:g}"),
        ("FramesPerSecond", "24.9825"),
        ("TotalFrames", "1498"),
        ("Shutter", "1259"),
        ("Gain", "366"),
        ("CameraLevel", "14"),
    ):
        lines.append(f"{key}=" + ",".join([val] * n))
    return ("\r\n".join(lines) + "\r\n").encode("latin-1")


# ---------------------------------------------------------------------------------- ZetaView
@dataclass
class ZetaViewOptions:
    header_lines: int = 76  # seen: 74, 76, 89
    traces: int = 630
    decimal_comma: bool = False
    newline: str = "\r\n"
    nul_bytes: bool = False
    old_keys: bool = False  # 'ZetaVIEW S/N', 'Sample Remarks0..2'
    state_quantiles: bool = True  # write X10/X50/X90 lines in the header
    dilution_recorded: bool = True
    sample: str = "EV lot 17"
    drop_keys: tuple[str, ...] = ()
    seed: int = 2
    # 8.05/8.06 write a separator row -1,-1,-1,-1,0 between the linear and the log tables;
    # False writes an all -1 row instead
    real_separator: bool = True
    serial_keys: str = "both"  # "both": ZetaView S/N + Cell S/N; "cell": only Cell S/N
    micro: str = "\u00b5s"  # "µs" or "mus" in unit strings
    temperature_entered: bool = False  # "Temperature: 22.00 entered" (typed in, not sensed)
    # acquisition / detection settings, written as 8.06 writes them ("80.000000")
    laser_nm: float = 488.0
    filter_wavelength: str | None = "Scatter"  # "500" for a 500 nm long-pass; None: no line
    sensitivity: float = 80.0
    shutter: float = 100.0
    gain: float = 28.8
    fpsec: int = 30
    cycles: int = 3
    min_tracelength: int = 15
    min_brightness: int = 30
    low_bleach: bool = False
    name_suffix: str = ""  # e.g. "_F500" in the .avi name of a fluorescence run


@dataclass
class ZetaViewExport:
    txt: bytes
    truth: Truth
    number: np.ndarray
    centres: np.ndarray
    stated: dict[str, float]
    measured_per_ml: float


def _zv(v: float, comma: bool) -> str:
    if v == 0:
        s = "0.000E+0"
    else:
        exp = math.floor(math.log10(abs(v)))
        s = f"{v / 10**exp:.3f}E{exp:+d}"
    return s.replace(".", ",") if comma else s


def zetaview_size(
    truth: Truth | None = None, opts: ZetaViewOptions | None = None
) -> ZetaViewExport:
    """A ZetaView ``_size_488.txt`` export (bytes) with its ground truth."""
    truth = truth or Truth()
    o = opts or ZetaViewOptions()
    rng = np.random.default_rng(o.seed)
    centres = 2.5 + 5.0 * np.arange(1200)
    edges = np.concatenate([[0.0], centres + 2.5])
    number = (
        rng.multinomial(o.traces, truth.bin_fractions(edges)).astype(float)
        if o.traces
        else np.zeros(1200)
    )
    measured = truth.measured_per_ml if o.traces else 0.0
    conc = measured * number / number.sum() if o.traces else np.zeros(1200)
    c = o.decimal_comma

    def num(v: float, digits: int = 6) -> str:
        s = f"{v:.{digits}f}"
        return s.replace(".", ",") if c else s

    st = stats_of(centres.tolist(), number.tolist(), centres.tolist(), None) if o.traces else {}
    sn_key = "ZetaVIEW S/N:" if o.old_keys else "ZetaView S/N:"
    h = [
        f"Original File:\tC:\\ZetaView\\Data\\20210401_0003_{o.sample.replace(' ', '_')}_size_"
        f"{o.laser_nm:.0f}{o.name_suffix}.avi",
        "Section:\t",
        "Operator:\tlab user",
        "Experiment:\tEV release testing",
        *([f"{sn_key}\t19-412"] if o.serial_keys == "both" else []),
        "Cell S/N:\t0123",
        "Software:\tZetaView (version 8.06.01 SP1)\tAnalyze:\t8.05.14 SP7",
        "SOP:\tEV_488_size",
        f"Sample:\t{o.sample}",
    ]
    if o.old_keys:
        h += ["Sample Remarks0:\t", "Sample Remarks1:\tdiluted in PBS", "Sample Remarks2:\t"]
    else:
        h += ["Sample Info 1:\t", "Sample Info 2:\tdiluted in PBS", "Sample Info 3:\t"]
    h += [
        "Electrolyte:\tPBS",
        f"pH:\t{num(7.2)}\tentered",
        f"Conductivity: {num(65.0)}\tsensed",
        f"Temperature:\t{num(truth.temperature_c, 2)}\t"
        + ("entered" if o.temperature_entered else "sensed"),
        f"Viscosity:\t{num(truth.viscosity_mpa_s, 6)}",
        "Date:\t2021-04-01",
        "Time:\t15:42:48",
        "Type of Measurement:\tSize Distribution",
        "Positions:\t11",
        "Microscope Position:\tcentre",
        f"Number of Traces:\t{o.traces}\t(at {num(0.09999)})\tAverage Number of Particles:\t{num(30.606061)}"
        + (f"\tDilution::\t{num(truth.dilution or 1.0)}" if o.dilution_recorded else ""),
        f"Concentration Correction Factor:\t{num(1.0)}",
        "Image Evaluation:",
        f"Minimum Brightness:\t{o.min_brightness}",
        "Minimum Area:\t10",
        "Maximum Area:\t1000",
        "Maximum Brightness:\t255",
        "Tracking Radius2:\t100",
        f"Minimum Tracelength:\t{o.min_tracelength}",
        "Begin New Traces:\t1",
        f"Camera:\tFpSec {o.fpsec} #Cycles {o.cycles} FRate {num(float(o.fpsec))}",
        f"Sensitivity:\t{num(o.sensitivity)}",
        f"Gain:\t{num(o.gain)}",
        f"Offset:\t{num(0.0)}",
        f"Shutter:\t{num(o.shutter)}",
        "Brightness:\tNaN",
        "Camera Trigger Mode:\tCamera Frequency",
        f"Laser Wavelength nm:\t{num(o.laser_nm)}",
        *([] if o.filter_wavelength is None else [f"Filter Wavelength nm:\t{o.filter_wavelength}"]),
        f"LowBleach:\t{int(o.low_bleach)}",
        f"Exposure [{o.micro}]:\t{num(1.5, 3)}",
        f"Diffusion Coefficient:\t{num(3.9, 3)}\t\u00b5m\u00b2/s\t({num(3.9e6, 0)} nm\u00b2/s)",
        f"Micrometer per Pixel:\t{num(0.703)}",
    ]
    if o.traces:
        h.append(f"Median Number (D50):\t{num(st['d50'], 3)}")
        if o.state_quantiles:
            h += [
                f"X10:\t{num(st['d10'], 3)}",
                f"X50:\t{num(st['d50'], 3)}",
                f"X90:\t{num(st['d90'], 3)}",
                f"Mean:\t{num(st['mean'], 3)}",
            ]
    h = [line for line in h if not any(line.startswith(k) for k in o.drop_keys)]
    filler = 0
    while len(h) < o.header_lines - 1:
        h.append(f"Reserved {filler}:\t" if filler % 3 else "")
        filler += 1
    h.append("Size Distribution")
    h.append("Size / nm\tNumber\tConcentration / cm-3\tVolume / nm^3\tArea / nm^2")
    if o.traces:
        for j in range(1200):
            vol = number[j] * math.pi / 6 * centres[j] ** 3
            area = number[j] * math.pi * centres[j] ** 2
            h.append("\t".join(_zv(v, c) for v in (centres[j], number[j], conc[j], vol, area)))
        if o.real_separator:
            h.append("\t".join([_zv(-1.0, c)] * 4 + [_zv(0.0, c)]))
        else:
            h.append("\t".join([_zv(-1.0, c)] * 5))
        log_centres = np.geomspace(4.683, 6025.0, 200)  # starts again below the linear table
        for j in range(200):
            h.append("\t".join(_zv(v, c) for v in (log_centres[j], 1.0, 1.0, 1.0, 1.0)))
    else:  # 8.06 writes the separator row alone under the title row of an empty run
        h.append("\t".join([_zv(-1.0, c)] * 4 + [_zv(0.0, c)]))
    text = o.newline.join(h) + o.newline
    data = text.encode("latin-1", errors="replace")
    if o.nul_bytes:
        data = data.replace(
            b"\r\n" if "\r" in o.newline else b"\n", b"\x00" + o.newline.encode(), 40
        )
    return ZetaViewExport(data, truth, number, centres, st, measured)


def zetaview_positions(
    truth: Truth | None = None, removed: dict[int, str] | None = None, newline: str = "\r\n"
) -> tuple[bytes, list[float]]:
    """An ``_11pos.txt`` table; returns (bytes, original concentration per position)."""
    truth = truth or Truth()
    removed = removed if removed is not None else {3: "MIN_TRACES", 8: "GRUBBS_SIZE"}
    rng = np.random.default_rng(5)
    dil = truth.dilution or 1.0
    head = [
        "Use",
        "Position",
        "Mean Int.",
        "Av. No of Particles",
        "Conc. (p./mL)",
        "Orig. Conc. (p./cm^3)",
        "No. of Traces",
        "X50 (nm)",
        "Peak ø (nm)",
        "Span",
        "Drift (µm/s)",
        "Removal",
    ]
    lines = [
        "Original File:\tC:\\ZetaView\\Data\\20210401_0003_EV_lot_17_11pos.txt",
        "",
        "\t".join(head),
    ]
    originals, rows = [], []
    for pos in range(1, 12):
        meas = truth.measured_per_ml * float(rng.uniform(0.85, 1.15))
        reason = removed.get(pos, "")
        rows.append(
            [
                0 if reason else 1,
                pos,
                60.0,
                meas / 1.3e7,
                meas,
                meas * dil,
                57,
                110.0,
                95.0,
                0.9,
                1.2,
                reason,
            ]
        )
        originals.append(meas * dil)
    for r in rows:
        lines.append("\t".join(f"{v:.4E}" if isinstance(v, float) else str(v) for v in r))
    used = [r for r in rows if r[0] == 1]
    for label, fn in (
        ("Mean", np.mean),
        ("St.Dev.", lambda x: np.std(x, ddof=1)),
        ("Rel.St.Dev.", lambda x: np.std(x, ddof=1) / np.mean(x)),
    ):
        cells = [label, ""] + [f"{fn([r[k] for r in used]):.4E}" for k in range(2, 11)] + [""]
        lines.append("\t".join(cells))
    return (newline.join(lines) + newline).encode("latin-1"), originals


def zetaview_profile() -> bytes:
    """A zeta-potential 'Profile' file with NUL bytes and three spellings of µ."""
    lines = [
        "Original File:\tC:\\ZetaView\\Data\\20210401_0004_EV_lot_17_zeta.avi",
        "Software:\tZetaView (version 8.05.12)",
        "Sample:\tEV lot 17",
        "Type of Measurement:\tProfile",
        "Number of Traces:\t812",
        "Electrophoretic Mobility \u00b5m/s/V/cm:\t-1.2",
        "Drift \u03bcm/s:\t0.4",
        "Zeta Potential um:\t-15.3",
    ]
    data = "\r\n".join(lines).encode("utf-8").replace(b"\r\n", b"\x00\r\n")
    return data + b"\x00\x00\r\n"


# ----------------------------------------------------------------------------- ViewSizer 3000
@dataclass
class ViewSizerExport:
    folder: object  # pathlib.Path
    truth: Truth
    original_per_ml: float
    counts_1nm: np.ndarray
    lower_1nm: np.ndarray


def viewsizer_folder(root, truth: Truth | None = None, n_videos: int = 20, volume_ml: float = 2.3e-6,
                     empty_videos: tuple[int, ...] = (4,), with_dilution: bool = True,
                     particles: int = 4000, seed: int = 3, results_name: str | None = None,
                     extra_xml: bool = False, display_bins: bool = True,
                     ) -> ViewSizerExport:  # fmt: skip
    """Write a ViewSizer result folder under ``root`` and return its ground truth.

    ``results_name`` "Results" writes a plain ``Results/`` folder (seen in real exports);
    ``extra_xml`` adds a numbered settings XML and a temperature-log XML beside the dated one;
    ``display_bins=False`` leaves out the 20-nm display table.
    """
    from pathlib import Path

    truth = truth or Truth()
    rng = np.random.default_rng(seed)
    folder = Path(root) / "EV_lot_17"
    stamp = "20210401_154248"
    results = folder / (results_name or f"Results_EV_lot_17_{stamp}")
    results.mkdir(parents=True, exist_ok=True)
    dil = truth.dilution if with_dilution and truth.dilution else 1.0
    dist = stats.lognorm(s=math.log(truth.gsd), scale=truth.median_nm)
    sizes = dist.rvs(size=particles, random_state=rng)
    per_video = np.array_split(sizes[sizes < 2000], n_videos)
    per_video = [np.array([]) if i + 1 in empty_videos else v for i, v in enumerate(per_video)]
    sizes = np.concatenate(per_video)
    original = sizes.size / (n_videos * volume_ml) * dil
    dilution_xml = (
        f"<Dilution>{truth.dilution:g}</Dilution>" if with_dilution and truth.dilution else ""
    )
    xml = f"""<?xml version="1.0" encoding="utf-8"?>
<ViewSizerMeasurement>
  <Name>previous sample name</Name>
  <RecordingSettings>
    <FrameRate>30</FrameRate><Exposure>15</Exposure><Gain>20</Gain>
    <Lasers>
      <Laser><Wavelength>445</Wavelength><Power>210</Power><Enabled>true</Enabled></Laser>
      <Laser><Wavelength>520</Wavelength><Power>12</Power><Enabled>true</Enabled></Laser>
      <Laser><Wavelength>635</Wavelength><Power>8</Power><Enabled>false</Enabled></Laser>
    </Lasers>
    <FramesPerVideo>300</FramesPerVideo><NumOfVideos>{n_videos}</NumOfVideos>
    <Volume>{volume_ml:.1E}</Volume>
  </RecordingSettings>
  <ProcessingSettings><DetectionThreshold>3</DetectionThreshold><FeatureSize>9</FeatureSize></ProcessingSettings>
  <SampleInformation><Name>EV lot 17 (VS)</Name>{dilution_xml}<Temperature>22.0</Temperature></SampleInformation>
  <MetaData>
    <MeasurementStartDateTime>2021-04-01T15:42:48</MeasurementStartDateTime>
    <AnalyzerModel>ViewSizer 3000</AnalyzerModel><SerialNumber>VS3-0042</SerialNumber>
    <SoftwareVersion>3.2.1</SoftwareVersion>
  </MetaData>
</ViewSizerMeasurement>
"""
    (folder / f"EV_lot_17_{stamp}.xml").write_bytes(b"\xef\xbb\xbf" + xml.encode("utf-8"))
    if extra_xml:  # an older numbered settings file and the temperature log
        older = xml.replace("<NumOfVideos>", "<NumOfVideos>1").replace("EV lot 17 (VS)", "old")
        (folder / "EV_lot_17_0001.xml").write_bytes(b"\xef\xbb\xbf" + older.encode("utf-8"))
        log = ('<?xml version="1.0" encoding="utf-8"?>\n<TemperatureLog>'
               + "".join(f"<Sample><Time>{t}</Time><Temperature>{22 + t / 100:.2f}</Temperature>"
                         "</Sample>" for t in range(5)) + "</TemperatureLog>\n")  # fmt: skip
        (folder / f"EV_lot_17_Temperature_{stamp}.xml").write_bytes(log.encode("utf-8"))
    head = ("/LowerBinDiameter_[nm]\tCenterBinDiameter_[nm]\tUpperBinDiameter_[nm]\t"
            "TotalParticlesCounted_WithinBin_AllVideosAnalyzed\tPSD_corrected_[counts/mL/nm]\t"
            "PSD_corrected_LT_[counts/mL/nm]")  # fmt: skip
    binnings = {
        "constant_1nm": np.arange(0.0, 2001.0, 1.0),
        "display_20nm": np.arange(0.0, 2001.0, 20.0),
        "3nm": np.arange(0.0, 2001.0, 3.0),
        "log": np.geomspace(10.0, 2000.0, 120),
        "iso_10pct": 10.0 * 1.1 ** np.arange(0, 56),
    }
    counts_1nm = None
    for name, edges in binnings.items():
        if name.startswith("display") and not display_bins:
            continue
        counts, _ = np.histogram(sizes, bins=edges)
        width = np.diff(edges)
        psd = counts / (n_videos * volume_ml) * dil / width
        lines = [f"/PSD {name}", head]
        for j in range(width.size):
            lines.append(f"{edges[j]:.3f}\t{0.5 * (edges[j] + edges[j + 1]):.3f}\t{edges[j + 1]:.3f}\t"
                         f"{counts[j]}\t{psd[j]:.6E}\t{psd[j] * 0.98:.6E}")  # fmt: skip
        (results / f"PSD_{name}_EV_lot_17.dat").write_text("\n".join(lines) + "\n")
        if name == "constant_1nm":
            counts_1nm = counts.astype(float)
    lines = [f"/Number of videos analyzed: {n_videos}"]
    for i, chunk in enumerate(per_video, start=1):
        lines.append("/Video#\t#particles\tAVG size[nm]\tSD size[nm]")
        avg = f"{chunk.mean():.2f}" if chunk.size else "nan"
        sd = f"{chunk.std():.2f}" if chunk.size else "nan"
        lines.append(f"{i}\t{chunk.size}\t{avg}\t{sd}")
        lines += [f"{s:.2f}" for s in chunk] + (["nan"] if i == 2 else [])
    (results / "Videos_EV_lot_17.dat").write_text("\n".join(lines) + "\n")
    return ViewSizerExport(folder, truth, original, counts_1nm, binnings["constant_1nm"][:-1])


# ------------------------------------------------------------------------------------- FCS
def fcs_file(path, n_events: int = 2000, size_channel: bool = True, vol_nl: float | None = 1200.0,
             dilution: float | None = 100.0, flow_rate: str | None = None, seed: int = 4,
             truth: Truth | None = None) -> np.ndarray:  # fmt: skip
    """Write an FCS 3.1 file with flowio; returns the size values written (nm)."""
    import flowio

    truth = truth or Truth()
    rng = np.random.default_rng(seed)
    sizes = stats.lognorm(s=math.log(truth.gsd), scale=truth.median_nm).rvs(
        n_events, random_state=rng
    )
    ssc = (sizes / 100.0) ** 4 * 1000.0 * rng.uniform(0.8, 1.2, n_events)
    fl = rng.gamma(2.0, 50.0, n_events)
    time = np.sort(rng.uniform(0, 60000, n_events))  # in $TIMESTEP units (0.001 s) over 60 s
    names = ["VSSC1-H", "FL1-A", "Time"]
    labels = ["violet side scatter", "CFSE", ""]
    columns = [ssc, fl, time]
    if size_channel:
        names.insert(2, "Size")
        labels.insert(2, "Diameter (nm)")
        columns.insert(2, sizes)
    data = (
        np.column_stack(columns).astype(np.float32)
        if n_events
        else np.empty((0, len(names)), np.float32)
    )
    meta = {"$TIMESTEP": "0.001", "$CYT": "CytoFLEX nano", "$DATE": "01-APR-2021",
            "$BTIM": "15:42:48", "$ETIM": "15:43:48", "$SMNO": "EV lot 17"}  # fmt: skip
    if vol_nl is not None:
        meta["$VOL"] = f"{vol_nl:g}"
    if dilution is not None:
        meta["DILUTION"] = f"{dilution:g}"
    if flow_rate is not None:
        meta["FLOW RATE NL_MIN"] = flow_rate  # "/" is the FCS delimiter
    with open(path, "wb") as handle:
        flowio.create_fcs(
            handle, data.flatten().tolist(), names, opt_channel_names=labels, metadata_dict=meta
        )
    return sizes


# ----------------------------------------------------------------------- per-track vendor data
@dataclass
class TrackSet:
    """Simulated tracks: true diameters, lengths and the vendor's per-track diameters."""

    true_nm: np.ndarray
    length_frames: np.ndarray
    vendor_nm: np.ndarray


def simulated_tracks(n: int = 2000, median_nm: float = 100.0, gsd: float = 1.05,
                     mean_length: float = 12.0, temperature_c: float = 25.0,
                     seed: int = 6) -> TrackSet:  # fmt: skip
    """Free diffusion: each track's D estimated from its own n-step MSD in two axes, as a vendor's
    per-track sizing does (D_v = D · χ²(2n)/(2n)); sizes by Stokes–Einstein in water."""
    rng = np.random.default_rng(seed)
    true = stats.lognorm(s=math.log(gsd), scale=median_nm).rvs(n, random_state=rng)
    lengths = 3 + rng.geometric(1.0 / (mean_length - 2.0), n)  # at least 3 frames
    steps = lengths - 1
    ratio = rng.chisquare(2 * steps) / (2 * steps)  # the track's D estimate / its true D
    vendor = true / ratio  # d ∝ 1/D
    return TrackSet(true, lengths.astype(float), vendor)


def nanosight_particles(tracks: TrackSet, per_point: bool = False, excluded: int = 0,
                        newline: str = "\r\n") -> bytes:  # fmt: skip
    """A NanoSight per-particle CSV: ``ParticleData`` (one row per track, with Tracklength) or
    ``AllTracks`` (one row per track point, no length column); the first ``excluded`` tracks
    marked ``No`` in 'Included in distribution?'."""
    kt = 1.380649e-23 * 298.15 / (3 * math.pi * 0.8902e-3)
    lines = []
    if per_point:
        lines.append("Particle ID,Size/nm,Diffusion coefficient/nm^2 s^-1,Frame,X/pixels,"
                     "Y/pixels,Ln(Adjusted intensity)/AU,Included in distribution?")  # fmt: skip
    else:
        lines.append("Particle ID,Size/nm,Diffusion coefficient/nm^2 s^-1,"
                     "Ln(Adjusted intensity)/AU,Start frame,Tracklength,"
                     "Included in distribution?")  # fmt: skip
    for i, (size, length) in enumerate(zip(tracks.vendor_nm, tracks.length_frames, strict=True)):
        d_nm2_s = kt / (size * 1e-9) * 1e18
        included = "No" if i < excluded else "Yes"
        if per_point:
            for f in range(int(length)):
                lines.append(f"{i + 1},{size:.1f},{d_nm2_s:.4g},{10 + f},{50.0 + f:.2f},"
                             f"{60.0:.2f},{12.3:.2f},{included}")  # fmt: skip
        else:
            lines.append(f"{i + 1},{size:.1f},{d_nm2_s:.4g},12.30,{i % 400},{int(length)},"
                         f"{included}")  # fmt: skip
    return (newline.join(lines) + newline).encode("latin-1")


def zetaview_track_fcs(path, tracks: TrackSet, keywords: dict[str, str] | None = None,
                       names: tuple[str, ...] = ("Size", "TraceLength", "Brightness"),
                       cyt: str | None = "ZetaView", seed: int = 7) -> None:  # fmt: skip
    """A ZetaView per-track FCS export: one event per track with ``Size`` and ``TraceLength``.

    ``names`` picks and names the channels (a size, a trace length and optionally brightness,
    area and x/y position, in that order of meaning: the first name containing "size" or
    "diam" gets the sizes, one containing "length" the lengths, "bright"/"intens" a brightness,
    "area" an area, "x"/"y" positions); ``keywords`` adds TEXT keywords (e.g. ``Filter
    Wavelength nm``); ``cyt`` None leaves out ``$CYT``.
    """
    import flowio

    rng = np.random.default_rng(seed)
    n = tracks.vendor_nm.size
    columns = []
    for name in names:
        low = name.lower()
        if "size" in low or "diam" in low:
            columns.append(tracks.vendor_nm)
        elif "length" in low:
            columns.append(tracks.length_frames)
        elif "bright" in low or "intens" in low:
            columns.append(np.clip(rng.gamma(4.0, 15.0, n), 0, 255))
        elif "area" in low:
            columns.append(rng.uniform(10, 200, n))
        else:  # positions in pixels
            columns.append(rng.uniform(0, 640, n))
    data = np.column_stack(columns).astype(np.float32)
    meta = {"$DATE": "01-APR-2021", "$SMNO": "EV lot 17"}
    if cyt is not None:
        meta["$CYT"] = cyt
    meta.update(keywords or {})
    with open(path, "wb") as handle:
        flowio.create_fcs(handle, data.flatten().tolist(), list(names), metadata_dict=meta)
