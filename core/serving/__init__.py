"""Serving: inference and export."""
