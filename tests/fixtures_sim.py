"""Simulator fixtures (placeholder)."""
