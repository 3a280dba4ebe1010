"""Deliver: building the messages of a digest (and, later, sending them)."""
