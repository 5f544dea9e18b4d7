"""Handoff contracts: what one agent hands another is checked against a JSON Schema and a confidence.

::

    contract = HandoffContract("triage", "billing", schema={...}, required_confidence=0.8)
    payload = handoff(contract, {"intent": "refund", "confidence": 0.93})

The payload is validated with ``jsonschema`` (the schema's own draft, 2020-12 by default); a mapping
payload's ``confidence`` (when present) must reach ``required_confidence``. A payload that passes is
returned as it is; one that fails goes to ``escalate`` when given (its return value is returned), else
raises :class:`~pytest_agentflows.HandoffError` listing every problem.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import HandoffError
from ._base import Runtime

if TYPE_CHECKING:
    from ..flow import Flow

__all__ = ["HandoffContract", "handoff"]


@dataclass
class HandoffContract:
    """What ``from_agent`` must hand ``to_agent``.

    Args:
        from_agent: The agent handing off.
        to_agent: The agent receiving.
        schema: JSON Schema (a dict) the payload must satisfy.
        required_confidence: Least ``payload["confidence"]`` accepted (0..1), when the payload has one.
        flow: The flow to record in; ``None``: the active flow, else a standalone log.

    Raises:
        jsonschema.SchemaError: if ``schema`` is not a valid JSON Schema (checked when the contract is made).
        ValueError: if ``required_confidence`` is not a number in [0, 1].
    """

    from_agent: str
    to_agent: str
    schema: Mapping[str, Any]
    required_confidence: float = 0.8
    flow: Flow | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        from jsonschema.validators import validator_for

        conf = self.required_confidence
        if isinstance(conf, bool) or not isinstance(conf, (int, float)) or not 0 <= conf <= 1:
            raise ValueError(f"HandoffContract(required_confidence=...) must be in [0, 1], got {conf!r}")
        schema = dict(self.schema)
        cls = validator_for(schema)
        cls.check_schema(schema)
        self._validator = cls(schema)
        self._rt = Runtime.of(self.flow)

    def problems(self, payload: Any) -> list[str]:
        """Every way ``payload`` breaks the contract (empty when it is fine), deterministically ordered."""
        found = []
        for error in sorted(self._validator.iter_errors(payload), key=lambda e: (list(e.path), e.message)):
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            found.append(f"schema: {where}: {error.message}")
        if isinstance(payload, Mapping) and "confidence" in payload:
            confidence = payload["confidence"]
            if not isinstance(confidence, (int, float)) or isinstance(confidence, bool):
                found.append(f"confidence: {confidence!r} is not a number")
            elif confidence < self.required_confidence:
                found.append(f"confidence: {confidence} is below the required {self.required_confidence}")
        return found


def handoff(contract: HandoffContract, payload: Any, escalate: Callable[[Any], Any] | None = None) -> Any:
    """Hand ``payload`` from ``contract.from_agent`` to ``contract.to_agent``, checked.

    Args:
        contract: The contract.
        payload: What is handed over (usually a dict parsed from the sending agent's JSON answer).
        escalate: Called with the payload when it breaks the contract; its return value is returned.

    Returns:
        ``payload`` when it keeps the contract, else what ``escalate`` returned.

    Raises:
        HandoffError: when the payload breaks the contract and no ``escalate`` is given (it lists every
            schema error and a too-low confidence).

    Records a ``handoff`` decision (agent = ``from_agent``): ``from_agent``, ``to_agent``, ``valid``,
    ``escalated``, ``confidence`` (or ``None``) and ``problems``.
    """
    problems = contract.problems(payload)
    valid = not problems
    confidence = payload.get("confidence") if isinstance(payload, Mapping) else None
    contract._rt.log.record(
        "handoff",
        agent=contract.from_agent,
        from_agent=contract.from_agent,
        to_agent=contract.to_agent,
        valid=valid,
        escalated=not valid and escalate is not None,
        confidence=confidence,
        problems=problems,
    )
    if valid:
        return payload
    if escalate is None:
        raise HandoffError(contract.from_agent, contract.to_agent, problems)
    return escalate(payload)
