"""The web UI: static pages and scripts over the JSON API and the live stream (no build step)."""
