"""Release specifications: versioned YAML documents listing acceptance criteria.

A specification is a small YAML file::

    schema: exocheck.spec/1
    name: msc-ev-release
    version: 1
    title: MSC-EV drug substance release
    criteria:
      - {name: Size mode, kind: range, quantity: size.mode_nm, min: 50, max: 200, unit: nm}
      - {name: Particles 50-400 nm, kind: size_fraction, window_nm: [50, 400], min_fraction: 0.9}
      - {name: Particles per vial, kind: label_claim, tolerance_percent: 20}
      - {name: Endotoxin, kind: limit, quantity: safety.endotoxin_eu_per_ml, less_than: 0.25}
      - {name: EV markers, kind: presence, analytes: [CD9, CD63, CD81, TSG101], expected: present}
      - {name: Purity, kind: purity, min_particles_per_ug: 2.0e9}
      - {name: MISEV2023, kind: misev_completeness, min_score: 1.0}
      - {name: CD63+ vesicles, kind: labelled_fraction, marker: CD63, min_percent: 10,
         size_range_nm: [50, 200]}

An optional ``method: nta-ev-scatter@1`` (or a name alone: any version) names the analytical
method the particle measurement must have been made under (:mod:`exocheck.methods`); a record
made without it, or under another, makes the criteria its numbers feed inconclusive.

:func:`parse_specification` validates it and names the line and key of any mistake.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from exocheck.errors import SpecificationError

SPEC_SCHEMA = "exocheck.spec/1"

#: Quantities a ``range`` or ``limit`` criterion may name. ``safety.<test>`` names any numeric
#: safety test (e.g. ``safety.endotoxin_eu_per_ml``).
QUANTITIES = {
    "size.d10_nm": "nm",
    "size.d50_nm": "nm",
    "size.d90_nm": "nm",
    "size.mode_nm": "nm",
    "size.mean_nm": "nm",
    "size.sd_nm": "nm",
    "concentration.particles_per_ml": "particles/mL",
    "particles_per_unit": "particles/unit",
    "protein.ug_per_ml": "µg/mL",
    "particles_per_ug": "particles/µg",
}
_SAFETY = re.compile(r"^safety\.[A-Za-z0-9_]+$")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Criterion(_Spec):
    name: str = Field(min_length=1)
    description: str | None = None


class _QuantityCriterion(_Criterion):
    quantity: str
    unit: str | None = None

    @field_validator("quantity")
    @classmethod
    def _known_quantity(cls, value: str) -> str:
        if value not in QUANTITIES and not _SAFETY.match(value):
            known = ", ".join(sorted(QUANTITIES))
            raise ValueError(f"unknown quantity {value!r} (use one of {known} or safety.<test>)")
        return value

    @property
    def display_unit(self) -> str:
        return self.unit or QUANTITIES.get(self.quantity, "")


class RangeCriterion(_QuantityCriterion):
    """``min <= value <= max`` (either bound may be left out)."""

    kind: Literal["range"]
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bounds(self) -> RangeCriterion:
        if self.min is None and self.max is None:
            raise ValueError("a range needs min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min:g}) is above max ({self.max:g})")
        return self


class LimitCriterion(_QuantityCriterion):
    """A one-sided limit: exactly one of ``less_than``, ``at_most``, ``greater_than``,
    ``at_least``."""

    kind: Literal["limit"]
    less_than: float | None = None
    at_most: float | None = None
    greater_than: float | None = None
    at_least: float | None = None

    @model_validator(mode="after")
    def _one_limit(self) -> LimitCriterion:
        given = [
            k
            for k in ("less_than", "at_most", "greater_than", "at_least")
            if getattr(self, k) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "a limit needs exactly one of less_than, at_most, greater_than, at_least"
            )
        return self

    @property
    def operator(self) -> tuple[str, float]:
        for key, symbol in (
            ("less_than", "<"),
            ("at_most", "≤"),
            ("greater_than", ">"),
            ("at_least", "≥"),
        ):
            value = getattr(self, key)
            if value is not None:
                return symbol, float(value)
        raise AssertionError("validated above")


class SizeFractionCriterion(_Criterion):
    """At least ``min_fraction`` of particles (by number) between ``window_nm``."""

    kind: Literal["size_fraction"]
    window_nm: tuple[float, float]
    min_fraction: float = Field(gt=0, le=1)

    @model_validator(mode="after")
    def _window(self) -> SizeFractionCriterion:
        low, high = self.window_nm
        if not 0 <= low < high:
            raise ValueError(
                f"window_nm must be [low, high] with 0 <= low < high, got {low}, {high}"
            )
        return self


class LabelClaimCriterion(_Criterion):
    """Particles per unit (concentration × fill volume) within ± ``tolerance_percent`` of the
    product's label claim."""

    kind: Literal["label_claim"]
    tolerance_percent: float = Field(gt=0, lt=100)


Expected = Literal["present", "absent", "positive", "negative"]


class PresenceCriterion(_Criterion):
    """Every analyte (marker or qualitative safety test) reads as ``expected``."""

    kind: Literal["presence"]
    analytes: list[str] = Field(min_length=1)
    expected: Expected


class PurityCriterion(_Criterion):
    """Particles per µg protein at least ``min_particles_per_ug`` (Webber & Clayton 2013)."""

    kind: Literal["purity"]
    min_particles_per_ug: float = Field(gt=0)


class MisevCriterion(_Criterion):
    """MISEV2023 characterisation completeness score (0–1) at least ``min_score``."""

    kind: Literal["misev_completeness"]
    min_score: float = Field(default=1.0, ge=0, le=1)


class LabelledFractionCriterion(_Criterion):
    """At least ``min_percent`` of the particles carry ``marker`` (fluorescence NTA: the
    labelled fraction that ``exocheck labelled-fraction`` records, controls subtracted).

    ``marker`` is matched case-insensitively to the record's marker. Without ``size_range_nm``
    the record's own range decides; with it, the record's size classes covering exactly that
    range are combined (:func:`exocheck.qc.release.labelled_fraction`).
    """

    kind: Literal["labelled_fraction"]
    marker: str = Field(min_length=1, max_length=100)
    min_percent: float = Field(gt=0, le=100)
    size_range_nm: tuple[float, float] | None = None

    @field_validator("marker")
    @classmethod
    def _marker(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("marker must name what the label marks, e.g. CD63")
        return value.strip()

    @model_validator(mode="after")
    def _range(self) -> LabelledFractionCriterion:
        if self.size_range_nm is not None:
            low, high = self.size_range_nm
            if not 0 <= low < high:
                raise ValueError(
                    f"size_range_nm must be [low, high] with 0 <= low < high, got {low}, {high}"
                )
        return self


Criterion = Annotated[
    RangeCriterion
    | LimitCriterion
    | SizeFractionCriterion
    | LabelClaimCriterion
    | PresenceCriterion
    | PurityCriterion
    | MisevCriterion
    | LabelledFractionCriterion,
    Field(discriminator="kind"),
]
KINDS = (
    "range",
    "limit",
    "size_fraction",
    "label_claim",
    "presence",
    "purity",
    "misev_completeness",
    "labelled_fraction",
)


class Specification(_Spec):
    """A versioned release specification."""

    schema_: Literal["exocheck.spec/1"] = Field(default=SPEC_SCHEMA, alias="schema")
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    version: int = Field(ge=1)
    title: str | None = None
    product: str | None = Field(default=None, description="product this specification is for")
    reference: str | None = Field(default=None, description="where the limits come from")
    capture: dict[str, float | str | tuple[float, float]] = Field(
        default_factory=dict,
        description="capture settings the particle measurement must have been made with "
        "(a value or a [min, max] range, e.g. temperature_c: [20, 26]); a measurement made "
        "otherwise makes the criteria its numbers feed inconclusive",
    )
    method: str | None = Field(
        default=None,
        max_length=210,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*(@v?[0-9]+)?$",
        description="the analytical method (NAME, any version, or NAME@VERSION) the particle "
        "measurement must have been made under (exocheck.methods); it states the capture "
        "settings, so it supersedes 'capture'",
    )
    criteria: list[Criterion] = Field(min_length=1)

    @model_validator(mode="after")
    def _method_or_capture(self) -> Specification:
        if self.method is not None and self.capture:
            raise ValueError(
                "give 'method' or 'capture', not both: the method states the capture settings"
            )
        return self

    @model_validator(mode="after")
    def _unique_names(self) -> Specification:
        seen: set[str] = set()
        for criterion in self.criteria:
            if criterion.name in seen:
                raise ValueError(f"criterion name {criterion.name!r} appears twice")
            seen.add(criterion.name)
        return self

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"


def _node_at(node: yaml.Node | None, loc: tuple[Any, ...]) -> tuple[yaml.Node | None, str]:
    """Walk a composed YAML node tree along a pydantic error location; return the deepest node
    found and the dotted key path to it."""
    path = ""
    for part in loc:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            for key, value in node.value:
                if key.value == part:
                    node = value
                    path = f"{path}.{part}" if path else part
                    break
            else:
                if part in KINDS:  # discriminated-union tag: stay on the item
                    continue
                return node, path + (f".{part}" if path else part)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return node, path
            node = node.value[part]
            path = f"{path}[{part}]"
        elif isinstance(part, str) and part in KINDS:
            continue
        else:
            return node, path
    return node, path


def parse_specification(text: str, source: str = "<specification>") -> Specification:
    """Parse and validate a specification from YAML text.

    Raises
    ------
    SpecificationError
        With the source name, the line and the key of the first problem.
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecificationError(f"{source}{where}: not valid YAML ({problem})") from None
    if not isinstance(data, dict):
        raise SpecificationError(f"{source}: a specification must be a YAML mapping")
    if data.get("schema", SPEC_SCHEMA) != SPEC_SCHEMA:
        raise SpecificationError(f"{source}: schema must be '{SPEC_SCHEMA}'")
    data.setdefault("schema", SPEC_SCHEMA)
    try:
        return Specification.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        node, path = _node_at(root, tuple(error["loc"]))
        line = f" line {node.start_mark.line + 1}" if node is not None else ""
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "union_tag_invalid":
            message = f"unknown criterion kind (use one of {', '.join(KINDS)})"
            node, path = _node_at(root, (*tuple(error["loc"]), "kind"))
            line = f" line {node.start_mark.line + 1}" if node is not None else line
        elif error["type"] == "extra_forbidden":
            message = "unknown key"
        key = f" key '{path}'" if path else ""
        raise SpecificationError(f"{source}{line}{key}: {message}") from None


def read_specification_text(path: str | Path) -> str:
    """The text of a specification file, with one-line errors for unreadable files."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecificationError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise SpecificationError(f"{path}: not a UTF-8 text file") from None


def load_specification(path: str | Path) -> Specification:
    """Read and validate a specification YAML file."""
    return parse_specification(read_specification_text(path), source=str(path))


def spec_sha256(text: str) -> str:
    """SHA-256 of a specification's text (what the store records)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
