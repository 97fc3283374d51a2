"""Models: the backbone registry, the bundled EfficientNet-Lite0, the feature cache."""
