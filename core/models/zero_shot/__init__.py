"""Zero-shot classification from class names: a CLIP-family backbone's text tower (open_clip, from the Hugging Face
hub cache) turns "a photo of a {}" into one direction per class in the joint image-text space; an image's class is
the direction its embedding points nearest to (cosine similarity times the model's logit scale, then softmax).

The image side is the registry's own image tower (core/models/sources/timm_hub.py): the same network that trains,
caches features and serves, so a zero-shot answer, a pre-labelled pool and a zero-shot run folder agree exactly.
`text_tower` loads open_clip's model for the entry's `text_tower` repository; `classifier` builds the text head.
"""
