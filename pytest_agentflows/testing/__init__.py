"""Deterministic test doubles: the local model server, scripted models, fault injection.

Layer 4 of the package (see ``docs/reference.md``, "Package map"): built on the runtime, the provider
adapters and the cassette layer; it never imports :mod:`pytest_agentflows.flow`. What a double needs of a
flow is the :class:`~pytest_agentflows.testing._host.FlowHost` protocol, which ``Flow`` satisfies.
"""
