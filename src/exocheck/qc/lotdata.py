"""What is known about one lot, as plain records: the NTA measurement plus protein assay, marker
panel and safety tests, and the product's label claim. The release and comparability
functions read these; the store builds them from its tables.

Not every NTA record measures the lot's particles: a labelled-fraction record (``labelled`` set)
gives the size and concentration of the labelled particles only, and a fluorescence-mode
recording sees only what fluoresces. Neither may stand for the lot's particle count or size
(:func:`is_particle_measurement`); ``LotData.nta`` refuses them, and labelled-fraction records
reach the ``labelled_fraction`` criterion through ``LotData.nta_all``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from exocheck.records import Measurement

Reading = Literal["present", "absent"]

_PRESENT = {"present", "positive", "detected", "+", "pos", "yes", "true"}
_ABSENT = {"absent", "negative", "not detected", "nd", "-", "neg", "no", "false"}


def normalise_reading(value: object) -> Reading:
    """Map the usual words for a qualitative result onto ``present`` / ``absent``.

    ``positive``/``detected`` mean present, ``negative``/``not detected`` mean absent (a sterility
    or mycoplasma test that is *negative* found nothing).
    """
    text = str(value).strip().lower()
    if text in _PRESENT:
        return "present"
    if text in _ABSENT:
        return "absent"
    raise ValueError(
        f"{value!r} is not a qualitative result (use present/absent or positive/negative)"
    )


def is_particle_measurement(record: Measurement) -> bool:
    """Whether ``record`` measures all the lot's particles (scatter, or a source that does not
    say), as concentration, label-claim, size and comparability criteria need: not a
    labelled-fraction result and not a fluorescence-mode recording."""
    if record.labelled is not None:
        return False
    return record.channel is None or record.channel.mode != "fluorescence"


def particle_measurement_refusal(record: Measurement) -> str:
    """Why ``record`` cannot be a lot's particle measurement (see :func:`is_particle_measurement`)."""
    if record.labelled is not None:
        return (
            "a labelled-fraction record (its size and concentration are those of the labelled "
            "particles only) is not the lot's particle measurement"
        )
    return (
        "a fluorescence-mode recording (it sees only fluorescent particles) is not the lot's "
        "particle measurement"
    )


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProteinAssay(_Record):
    """Total protein of the lot (e.g. BCA, micro-BCA, Bradford)."""

    ug_per_ml: float = Field(gt=0)
    sd_ug_per_ml: float | None = Field(default=None, ge=0)
    method: str = "BCA"


class MarkerPanel(_Record):
    """Marker results (Western blot, flow, ELISA): analyte -> present / absent."""

    results: dict[str, Reading]
    method: str | None = None

    @field_validator("results", mode="before")
    @classmethod
    def _normalise(cls, value: dict) -> dict:
        return {str(k): normalise_reading(v) for k, v in dict(value).items()}


class SafetyTests(_Record):
    """Safety tests: numeric ones with the unit in the name (``endotoxin_eu_per_ml``), qualitative
    ones as present/absent (``sterility: absent`` = no growth, ``mycoplasma: absent``)."""

    results: dict[str, float | Reading]

    @field_validator("results", mode="before")
    @classmethod
    def _normalise(cls, value: dict) -> dict:
        out: dict[str, float | str] = {}
        for key, item in dict(value).items():
            if isinstance(item, bool):
                raise ValueError(f"{key}: give a number or present/absent, not {item}")
            if isinstance(item, int | float):
                out[str(key)] = float(item)
                continue
            try:
                out[str(key)] = float(str(item))
            except ValueError:
                out[str(key)] = normalise_reading(item)
        return out


class LotData(_Record):
    """Everything the release decision of one lot reads."""

    lot: str
    product: str | None = None
    particles_per_unit_claim: float | None = None
    fill_volume_ml: float | None = None
    unit_name: str = "vial"
    manufactured: datetime | None = None
    nta: Measurement | None = Field(
        default=None,
        description="the lot's particle measurement (the newest scatter record): never a "
        "labelled-fraction or fluorescence-mode record",
    )
    nta_all: list[Measurement] = Field(
        default_factory=list,
        description="every NTA record of the lot, oldest first, labelled-fraction and "
        "fluorescence-mode records included",
    )
    protein: ProteinAssay | None = None
    markers: dict[str, Reading] = Field(default_factory=dict)
    safety: dict[str, float | Reading] = Field(default_factory=dict)
    accepted_deviations: dict[str, str] = Field(
        default_factory=dict,
        description="evidence caveats (exocheck.qc.evidence codes) a reviewer accepted as "
        "deviations with an electronic signature: code -> who and why, in one line",
    )

    @model_validator(mode="after")
    def _particle_measurement(self) -> LotData:
        if self.nta is not None and not is_particle_measurement(self.nta):
            raise ValueError(f"nta: {particle_measurement_refusal(self.nta)}")
        return self

    @property
    def labelled_records(self) -> list[Measurement]:
        """The lot's labelled-fraction records, oldest first."""
        return [x for x in self.nta_all if x.labelled is not None]
