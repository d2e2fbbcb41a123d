"""Shared test helpers (real HTTP servers, factories)."""
