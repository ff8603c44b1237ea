"""Tests of the Kite adapter."""
