"""Schema revisions, oldest first: r0001 (projects, data, runs), r0002 (registry and the rest)."""
