"""Labelling that gets faster as you go: suggestions and what to label next, on the frozen backbone's features."""
