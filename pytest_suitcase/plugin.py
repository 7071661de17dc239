"""pytest plugin entry point (options, markers and fixtures arrive with verification)."""
