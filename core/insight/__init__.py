"""Insight: evaluation reports and charts."""
