"""Database fixtures (placeholder)."""
