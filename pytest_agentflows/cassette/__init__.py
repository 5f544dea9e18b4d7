"""Cassettes: recording, indexed replay, redaction and loading of vcrpy-format files."""
