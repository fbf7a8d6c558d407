"""Agent avatars are drawn by the dashboard itself (no image from the network)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from sprint_orchestrator.web.avatars import avatar_svg, initials


@pytest.mark.parametrize(
    ("name", "expected"),
    [("so-textstats-1-words-1", "SW"), ("Kai", "KA"), ("", "?"), ("42", "?"), ("demo-words", "DW")],
)
def test_initials(name: str, expected: str) -> None:
    assert initials(name) == expected


def test_the_same_name_always_gets_the_same_valid_svg() -> None:
    svg = avatar_svg("so-textstats-1-words-1")
    assert svg == avatar_svg("so-textstats-1-words-1")
    assert ET.fromstring(svg).tag.endswith("svg")


def test_markup_in_a_name_stays_text() -> None:
    svg = avatar_svg("<script>alert(1)</script>")
    root = ET.fromstring(svg)
    assert not any(el.tag.endswith("script") for el in root.iter())
