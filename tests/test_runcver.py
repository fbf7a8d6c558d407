"""The start-up check refuses a runc without the fix for CVE-2024-21626."""

from __future__ import annotations

import pytest

from sprint_orchestrator.runtime.runcver import runc_problem

DEBIAN_FIXED = "runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\nspec: 1.0.2-dev"
DEBIAN_OLD = "runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1\nspec: 1.0.2-dev"


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        (DEBIAN_FIXED, True),
        (DEBIAN_OLD, False),
        ("runc version 1.1.12\ncommit: v1.1.12-0-g51d5e946", True),
        ("runc version 1.2.4\ncommit: v1.2.4", True),
        ("runc version 1.1.11\ncommit: v1.1.11", False),
        ("runc version 1.0.0-rc93\ncommit: x", False),
        ("", False),
    ],
)
def test_runc_versions(text: str, ok: bool) -> None:
    assert (runc_problem(text) is None) is ok


def test_the_refusal_names_the_cve_and_the_fix() -> None:
    problem = runc_problem(DEBIAN_OLD) or ""
    assert "CVE-2024-21626" in problem and "1.1.12" in problem and "1.1.5+ds1-1" in problem
