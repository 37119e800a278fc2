"""MKT: open-vocabulary multi-label classification via multi-modal knowledge transfer.

A plain PyTorch library: the model (`model`), its configs and presets (`config`), the
vision-language teacher (`vlp`), prompt tuning (`prompt`), scoring (`scoring`), losses,
metrics and checkpoints. No Qt, no SQL.
"""

__version__ = "0.1.0"
