"""Where a sprint's Pods may run: spec.container.runtimeClassName, nodeSelector, tolerations and
priorityClassName, checked with Kubernetes' own syntax rules (apimachinery's validation) so a bad value
is refused with the field's name when the Sprint is applied, not by the API server at the first Pod.

Each rule is a Python check (the message) and a pattern or CEL rule in the CRD (validators.py says why
both). The pods runtime puts the four on every task, gate and integration Pod (runtime/podspec.py); the
podman runtime has no nodes and ignores them, and the Sprint's status message says so once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError

from .validators import invalid

_LABEL = r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)"
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS_SUBDOMAIN = rf"^{_DNS_LABEL}([.]{_DNS_LABEL})*$"  # [.], not \., inside CEL strings
LABEL_VALUE = rf"^{_LABEL}?$"
QUALIFIED_NAME = rf"^({_DNS_LABEL}([.]{_DNS_LABEL})*/)?{_LABEL}$"
SELECTOR_MAX = 20
TOLERATIONS_MAX = 20
# The CRD's copy of the key rule (RE2; the prefix length, at most 253, is the Python check's).
SELECTOR_KEY_RULE: JsonDict = {
    "rule": f"self.all(k, size(k) <= 317 && k.matches('{QUALIFIED_NAME}'))",
    "message": "nodeSelector keys must be label keys: [prefix/]name, name up to 63 characters "
    "([A-Za-z0-9._-], starting and ending with a letter or digit), prefix a DNS subdomain",
}
_EXISTS_RULE: JsonDict = {
    "rule": "!has(self.operator) || self.operator != 'Exists' || !has(self.value) || self.value == ''",
    "message": "value must be empty when operator is Exists",
}
_KEY_RULE: JsonDict = {
    "rule": "(has(self.key) && self.key != '') || (has(self.operator) && self.operator == 'Exists')",
    "message": "operator must be Exists when key is empty (a toleration of every taint)",
}
_SECONDS_RULE: JsonDict = {
    "rule": "!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
    "message": "tolerationSeconds needs effect NoExecute",
}


def label_key_problem(key: str) -> str | None:
    """Why `key` is not a Kubernetes label key ([prefix/]name), or None."""
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not re.fullmatch(DNS_SUBDOMAIN, prefix)):
        return "has a prefix that is not a DNS subdomain (lowercase letters, digits, '-', '.')"
    if not re.fullmatch(_LABEL, name):
        return "is not a label key (a name of up to 63 letters, digits, '-', '_', '.', starting and ending " \
            "with a letter or digit, after an optional DNS-subdomain prefix and '/')"  # fmt: skip
    return None


def label_value_problem(value: str) -> str | None:
    if not re.fullmatch(LABEL_VALUE, value):
        return "is not a label value (up to 63 letters, digits, '-', '_', '.', starting and ending with a " \
            "letter or digit, or empty)"  # fmt: skip
    return None


def check_class_name(value: str) -> str:
    """A RuntimeClass or PriorityClass name: a DNS subdomain."""
    if len(value) > 253 or not re.fullmatch(DNS_SUBDOMAIN, value):
        why = "is not a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', starting and ending "
        raise invalid("{value} " + why + "with a letter or digit, at most 253 characters)", value)
    return value


def check_priority_class(value: str) -> str:
    check_class_name(value)
    if value.startswith("system-"):
        raise invalid("{value}: the system- priority classes are for the cluster's own components", value)
    return value


def check_node_selector(selector: Mapping[str, str]) -> Mapping[str, str]:
    problems = [f"{k!r} {p}" for k in selector if (p := label_key_problem(k))]
    problems += [f"{k!r}: value {v!r} {p}" for k, v in selector.items() if (p := label_value_problem(v))]
    if problems:
        raise PydanticCustomError("invalid", "{problems}", {"problems": "; ".join(problems)})
    return selector


def _check_key(value: str) -> str:
    problem = label_key_problem(value) if value else None
    if problem:
        raise invalid("{value} " + problem, value)
    return value


def _check_value(value: str) -> str:
    problem = label_value_problem(value)
    if problem:
        raise invalid("{value} " + problem, value)
    return value


ClassName = Annotated[
    str, AfterValidator(check_class_name), Field(max_length=253, json_schema_extra={"pattern": DNS_SUBDOMAIN})
]
PriorityClassName = Annotated[
    str,
    AfterValidator(check_priority_class),
    Field(max_length=253, json_schema_extra={"pattern": DNS_SUBDOMAIN}),
]
NodeSelector = Annotated[
    dict[
        str,  # the key's rule is the CEL one below: a CRD schema has no propertyNames
        Annotated[str, Field(max_length=63, json_schema_extra={"pattern": LABEL_VALUE})],
    ],
    AfterValidator(check_node_selector),
    Field(json_schema_extra={"maxProperties": SELECTOR_MAX, "x-kubernetes-validations": [SELECTOR_KEY_RULE]}),
]


class Toleration(BaseModel):
    """One toleration of a node taint, as in a Pod spec."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        json_schema_extra={"x-kubernetes-validations": [_EXISTS_RULE, _KEY_RULE, _SECONDS_RULE]},
    )

    key: Annotated[str, AfterValidator(_check_key), Field(max_length=317)] = ""
    operator: Literal["Exists", "Equal"] = "Equal"
    value: Annotated[
        str, AfterValidator(_check_value), Field(max_length=63, json_schema_extra={"pattern": LABEL_VALUE})
    ] = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(default=None, ge=0, le=10 * 365 * 24 * 3600)

    @model_validator(mode="after")
    def _consistent(self) -> Toleration:
        if self.operator == "Exists" and self.value:
            raise PydanticCustomError("consistency", "value: must be empty when operator is Exists")
        if not self.key and self.operator != "Exists":
            raise PydanticCustomError(
                "consistency", "operator: must be Exists when key is empty (a toleration of every taint)"
            )
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise PydanticCustomError("consistency", "tolerationSeconds: needs effect NoExecute")
        return self

    def pod_field(self) -> dict[str, Any]:
        """The toleration as a Pod spec holds it (unset fields left out)."""
        field = self.model_dump(by_alias=True, exclude_none=True)
        return {key: value for key, value in field.items() if value != ""}


Tolerations = Annotated[list[Toleration], Field(max_length=TOLERATIONS_MAX)]
SCHEDULING_FIELDS = ("runtimeClassName", "nodeSelector", "tolerations", "priorityClassName")


def ignored_by(runtime: str, container: Mapping[str, Any] | None) -> str:
    """The note for the Sprint's status message when a runtime without nodes (podman) is given
    scheduling fields: they are ignored, not refused (the same Sprint runs on a cluster unchanged)."""
    if runtime != "podman" or not container:
        return ""
    ignored = [f"spec.container.{name}" for name in SCHEDULING_FIELDS if container.get(name)]
    return f" (the podman runtime ignores {', '.join(ignored)}: they place Pods)" if ignored else ""
