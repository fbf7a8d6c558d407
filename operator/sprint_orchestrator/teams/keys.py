"""PURE: which model API each agent team reaches (through the metering proxy) and the key it needs.

The key stays in the operator (its environment, or the `sprint-orchestrator-llm` Secret when deployed);
it never enters a task container. A team that needs a key the operator lacks fails at once with
`MissingApiKey` and the sentence below, instead of starting an agent that cannot work.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..settings import API_KEY_VARIABLES

PROVIDER_OF_TEAM = {"claude-code": "anthropic", "codex": "openai", "gemini": "gemini"}
SECRET_NAME = "sprint-orchestrator-llm"


def key_variable(provider: str) -> str:
    return API_KEY_VARIABLES.get(provider, f"{provider.upper()}_API_KEY")


def missing_key_message(provider: str, team_type: str) -> str:
    variable = key_variable(provider)
    return (
        f"spec.team.type {team_type!r} reaches the {provider} API through the operator's metering proxy, "
        f"but the operator has no {provider} key: set {variable} in the operator's environment (or in "
        f"the {SECRET_NAME} Secret when it runs in a cluster); the key stays in the operator and never "
        "enters a task container"
    )


def missing_key(team_type: str, api_keys: Mapping[str, str]) -> str | None:
    """The MissingApiKey sentence when `team_type` needs a key the operator does not have, else None."""
    provider = PROVIDER_OF_TEAM.get(team_type)
    if provider is None or api_keys.get(provider):
        return None
    return missing_key_message(provider, team_type)
