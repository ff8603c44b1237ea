"""The HTTP API (DESIGN section 6): engine control, triggers, auth."""
