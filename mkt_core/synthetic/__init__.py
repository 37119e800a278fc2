"""The synthetic world of coloured shapes and the small CLIP teacher pretrained on it."""
