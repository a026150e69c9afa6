"""Specification YAML: the shipped examples parse; mistakes name their line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from exocheck.errors import SpecificationError
from exocheck.qc.specification import (
    LimitCriterion,
    SizeFractionCriterion,
    load_specification,
    parse_specification,
)

EXAMPLES = Path(__file__).parents[2] / "examples" / "specs"

GOOD = """\
schema: exocheck.spec/1
name: s
version: 1
criteria:
  - name: Size mode
    kind: range
    quantity: size.mode_nm
    min: 50
    max: 200
  - name: Endotoxin
    kind: limit
    quantity: safety.endotoxin_eu_per_ml
    less_than: 0.25
"""


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_specifications_parse(path):
    spec = load_specification(path)
    assert spec.version >= 1 and spec.criteria


def test_full_example_has_every_kind():
    spec = load_specification(EXAMPLES / "msc-ev-release-v1.yaml")
    kinds = {c.kind for c in spec.criteria}
    assert kinds == {
        "range",
        "limit",
        "size_fraction",
        "label_claim",
        "presence",
        "purity",
        "misev_completeness",
    }
    window = next(c for c in spec.criteria if isinstance(c, SizeFractionCriterion))
    assert window.window_nm == (50, 400) and window.min_fraction == 0.9
    endotoxin = next(c for c in spec.criteria if isinstance(c, LimitCriterion))
    assert endotoxin.operator == ("<", 0.25)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "kind: limit",
            "kind: limt",
            r"src\.yaml line 11 key 'criteria\[1\]\.kind': unknown criterion kind",
        ),
        ("max: 200", "max: 20", r"line 5 key 'criteria\[0\]': min \(50\) is above max \(20\)"),
        (
            "    less_than: 0.25",
            "    less_than: 0.25\n    at_most: 0.3",
            r"line 10 key 'criteria\[1\]': a limit needs exactly one",
        ),
        (
            "quantity: size.mode_nm",
            "quantity: size.modus",
            r"line 7 key 'criteria\[0\]\.quantity': unknown quantity 'size.modus'",
        ),
        (
            "    min: 50",
            "    min: 50\n    colour: red",
            r"line 9 key 'criteria\[0\]\.colour': unknown key",
        ),
        (
            "min: 50",
            "min: fifty",
            r"line 8 key 'criteria\[0\]\.min': Input should be a valid number",
        ),
        ("version: 1", "version: 0", r"line 3 key 'version'"),
        (
            "  - name: Size mode",
            "  - name: Size mode\n   bad: [",
            r"src\.yaml line \d+: not valid YAML",
        ),
    ],
)
def test_mistakes_are_located(old, new, expected):
    text = GOOD.replace(old, new)
    assert text != GOOD
    with pytest.raises(SpecificationError, match=expected) as info:
        parse_specification(text, source="src.yaml")
    assert "\n" not in str(info.value)


def test_duplicate_names_and_unreadable_file(tmp_path):
    with pytest.raises(SpecificationError, match="appears twice"):
        parse_specification(GOOD.replace("name: Endotoxin", "name: Size mode"))
    with pytest.raises(SpecificationError, match="cannot read"):
        load_specification(tmp_path / "none.yaml")
    with pytest.raises(SpecificationError, match="must be a YAML mapping"):
        parse_specification("- 1\n- 2\n")
