"""spec.container's scheduling fields: Kubernetes' syntax rules, refused with the field's name; what the
podman runtime says about them."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sprint_orchestrator.errors import InvalidInput
from sprint_orchestrator.handlers.gating import scheduling_of
from sprint_orchestrator.model import validate_sprint_spec
from sprint_orchestrator.placement import LABEL_VALUE, QUALIFIED_NAME, ignored_by, label_key_problem


def _spec(**container: Any) -> dict[str, Any]:
    return {"tasks": [{"id": "a", "title": "a"}], "container": container}


def _problems(**container: Any) -> list[str]:
    with pytest.raises(InvalidInput) as refused:
        validate_sprint_spec(_spec(**container))
    return refused.value.problems


def test_valid_scheduling_choices_reach_the_runtime_as_a_pod_spec_holds_them() -> None:
    spec = validate_sprint_spec(
        _spec(
            runtimeClassName="gvisor",
            nodeSelector={"kubernetes.io/hostname": "node2", "pool": ""},
            tolerations=[
                {"key": "dedicated", "value": "sprints", "effect": "NoSchedule"},
                {"operator": "Exists"},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
                 "tolerationSeconds": 30},
            ],
            priorityClassName="batch-low",
        )
    )  # fmt: skip
    placed = scheduling_of(spec)
    assert placed.runtime_class_name == "gvisor" and placed.priority_class_name == "batch-low"
    assert placed.node_selector == {"kubernetes.io/hostname": "node2", "pool": ""}
    assert list(placed.tolerations) == [
        {"key": "dedicated", "operator": "Equal", "value": "sprints", "effect": "NoSchedule"},
        {"operator": "Exists"},
        {
            "key": "node.kubernetes.io/unreachable",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 30,
        },
    ]
    assert not scheduling_of(validate_sprint_spec({"tasks": [{"id": "a", "title": "a"}]}))


TOL = "tolerations[0]"


@pytest.mark.parametrize(
    ("container", "expected"),
    [
        ({"nodeSelector": {"bad key": "x"}}, "nodeSelector: 'bad key' is not a label key"),
        ({"nodeSelector": {"Example.COM/zone": "x"}}, "nodeSelector: 'Example.COM/zone' has a prefix"),
        ({"nodeSelector": {"zone": "-a"}}, "nodeSelector: 'zone': value '-a' is not a label value"),
        ({"nodeSelector": {"zone": "x" * 64}}, "nodeSelector.zone: String should have at most 63 characters"),
        ({"tolerations": [{"key": "a", "operator": "In"}]}, f"{TOL}.operator: Input should be 'Exists' or"),
        ({"tolerations": [{"key": "a", "effect": "NoRun"}]}, f"{TOL}.effect: Input should be 'NoSchedule'"),
        ({"tolerations": [{"key": "a", "operator": "Exists", "value": "v"}]},
         f"{TOL}.value: must be empty when operator is Exists"),
        ({"tolerations": [{"value": "v"}]}, f"{TOL}.operator: must be Exists when key is empty"),
        ({"tolerations": [{"key": "a", "tolerationSeconds": 5}]}, f"{TOL}.tolerationSeconds: needs effect"),
        ({"tolerations": [{"key": "a b"}]}, f"{TOL}.key: 'a b' is not a label key"),
        ({"runtimeClassName": "Kata_1"}, "runtimeClassName: 'Kata_1' is not a DNS-1123 subdomain"),
        ({"priorityClassName": "high."}, "priorityClassName: 'high.' is not a DNS-1123 subdomain"),
        ({"priorityClassName": "system-node-critical"}, "priorityClassName: 'system-node-critical': the sy"),
        ({"tolerations": [{"operator": "Exists"}] * 21}, "tolerations: Too many: 21"),
    ],
)  # fmt: skip
def test_a_bad_scheduling_field_is_refused_with_its_name(container: dict[str, Any], expected: str) -> None:
    found = _problems(**container)
    assert any(line.startswith(f"spec.container.{expected}") for line in found), found


@given(st.text(alphabet="abAB01-_./", max_size=80))
def test_the_crds_label_key_pattern_agrees_with_the_python_check(key: str) -> None:
    python = label_key_problem(key) is None and len(key.rpartition("/")[0]) <= 253
    assert bool(re.fullmatch(QUALIFIED_NAME, key)) == python


@given(st.text(alphabet="aB0-_.", max_size=70))
def test_the_crds_label_value_pattern_is_the_python_one(value: str) -> None:
    assert bool(re.fullmatch(LABEL_VALUE, value)) == (
        len(value) <= 63 and bool(re.fullmatch(LABEL_VALUE, value))
    )


def test_the_podman_runtime_ignores_the_scheduling_fields_and_says_which() -> None:
    container = validate_sprint_spec(_spec(nodeSelector={"zone": "a"}, priorityClassName="low")).container
    assert container is not None
    note = ignored_by("podman", container.dump())
    fields = "spec.container.nodeSelector, spec.container.priorityClassName"
    assert note == f" (the podman runtime ignores {fields}: they place Pods)"
    assert ignored_by("pods", container.dump()) == ""
    assert ignored_by("podman", {"baseImage": "x"}) == ""
