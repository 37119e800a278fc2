"""What the app ships: bundles, the engine, the embedding store, decoding, the tokenizer.

Importing any of it loads neither torch nor timm nor open_clip (a test checks); the torch
fallback and the making of CLIP bundles import `mkt_core.model` on demand.
"""
