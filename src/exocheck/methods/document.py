"""The method document: ``exocheck.method/1`` YAML, validated (a value outside physical sense
for its unit names the unit probably meant). See :mod:`exocheck.methods.methods` for an example.
"""

from __future__ import annotations

import hashlib
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from exocheck.errors import ParameterError, SpecificationError
from exocheck.methods.units import check_values

METHOD_SCHEMA = "exocheck.method/1"


class MethodError(SpecificationError):
    """A method document that does not read: one line with its source and key."""


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Acquisition(_Doc):
    """How the video is recorded. ``camera`` holds the instrument's own camera settings by the
    names it gives them (``camera_level``, ``shutter``, ``gain``...), recorded as they are."""

    fps: float | None = Field(default=None, gt=0)
    exposure_ms: float | None = Field(default=None, gt=0)
    pixel_size_um: float | None = Field(default=None, gt=0)
    temperature_c: float = Field(default=25.0, ge=-10, le=100)
    camera_gain: float | None = Field(default=None, gt=0)
    wavelength_nm: float | None = Field(default=None, gt=0)
    viscosity_mpa_s: float | None = Field(default=None, gt=0)
    camera: dict[str, float | str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _exposure(self) -> Acquisition:
        if self.fps and self.exposure_ms and self.exposure_ms > 1000.0 / self.fps:
            raise ValueError(
                f"exposure {self.exposure_ms:g} ms is longer than the frame interval "
                f"{1000 / self.fps:.4g} ms"
            )
        return self


class Detection(_Doc):
    mode: Literal["scatter", "fluorescence"] = "scatter"
    threshold_sigma: float = Field(default=5.0, gt=0)
    invert: bool = False
    min_track_frames: int = Field(default=10, ge=3)


class Sizing(_Doc):
    bootstrap: int = Field(default=40, ge=0, le=10000)


class CalibrationPolicy(_Doc):
    """Whether a bead calibration is required, how long one stays valid, and how it is
    accepted (:func:`exocheck.methods.calibrations.check_standard`)."""

    required: bool = True
    interval_days: int | None = Field(default=30, ge=1)
    tolerance_percent: float = Field(default=5.0, gt=0, le=50)
    max_span: float = Field(default=0.45, gt=0, le=5)


class MethodDocument(_Doc):
    """A method as its YAML document states it."""

    schema_: Literal["exocheck.method/1"] = Field(default=METHOD_SCHEMA, alias="schema")
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    version: int = Field(ge=1)
    title: str | None = None
    reference: str | None = Field(default=None, description="the SOP or validation report")
    instrument_model: str = Field(min_length=1, max_length=200)
    acquisition: Acquisition
    detection: Detection = Field(default_factory=Detection)
    sizing: Sizing = Field(default_factory=Sizing)
    calibration: CalibrationPolicy = Field(default_factory=CalibrationPolicy)
    reportable_range_nm: tuple[float, float]
    product_refractive_index: float | None = Field(default=None, gt=1.0, lt=3.0)

    @model_validator(mode="after")
    def _range(self) -> MethodDocument:
        low, high = self.reportable_range_nm
        if not 0 < low < high:
            raise ValueError(
                f"reportable_range_nm must be [low, high] with 0 < low < high, got {low}, {high}"
            )
        return self

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"


def parse_method(text: str, source: str = "<method>") -> MethodDocument:
    """Validate a method document; :class:`MethodError` names the source and the key of the
    first problem, and a value outside physical sense for its unit the unit probably meant."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise MethodError(
            f"{source}{where}: not valid YAML ({getattr(exc, 'problem', exc)})"
        ) from None
    if not isinstance(data, dict):
        raise MethodError(f"{source}: a method must be a YAML mapping")
    if data.get("schema", METHOD_SCHEMA) != METHOD_SCHEMA:
        raise MethodError(f"{source}: schema must be '{METHOD_SCHEMA}'")
    acquisition = data.get("acquisition")
    if isinstance(acquisition, dict):
        try:
            check_values(acquisition, style="field")
        except ParameterError as exc:
            raise MethodError(f"{source} key 'acquisition': {exc}") from None
    try:
        return MethodDocument.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(p) for p in error["loc"])
        message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        message = message.removeprefix("Value error, ")
        raise MethodError(f"{source}{f' key {key!r}' if key else ''}: {message}") from None


def method_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
