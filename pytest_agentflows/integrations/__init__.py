"""Framework integrations (openai-agents, OpenTelemetry GenAI, LangGraph, CrewAI): one module each.

Layer 7 of the package (see ``docs/reference.md``, "Package map"). Each integration is a small adapter on
its framework's official extension API, imported only when the framework is already in ``sys.modules``:
importing the plugin never imports a framework. None is shipped yet.
"""
