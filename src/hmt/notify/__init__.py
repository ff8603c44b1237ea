"""Notification delivery through apprise, with the outbound-address guard (SSRF)."""
