"""The revisions, oldest first: r0001 (schema version 1), r0002 (schema version 2)."""
