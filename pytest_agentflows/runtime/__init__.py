"""The coordination runtime: virtual clock, budget pool, deadline, decision log, agent context, values.

Layer 1 of the package (see ``docs/reference.md``, "Package map"): it imports only
:mod:`pytest_agentflows.errors` and the standard library / pydantic, never a cassette, a provider, a
pattern, an SDK or pytest, so every piece runs on its own (``VirtualClock()``, ``BudgetPool(usd=1)``).
"""
