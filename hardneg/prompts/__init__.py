"""Versioned prompt templates (their hash is part of every cached answer's key)."""
