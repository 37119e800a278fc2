"""MKT: open-vocabulary multi-label classification via multi-modal knowledge transfer.

Three wings, by what needs them:

- `runtime/`: what the app ships. Model bundles, the inference engine (ONNX Runtime), the
  embedding store, photo decoding, the tokenizer. No torch at module level.
- `model/`: the model in torch. Student, heads, prompt, the CLIP teacher, losses, checkpoints,
  the bundle export and the converter of the authors' checkpoints.
- `train/`: the trainer, its config, evaluation and metrics.

Beside them `data/` (data sets) and `synthetic/` (the offline proving ground). No Qt, no SQL.
"""

__version__ = "0.1.0"
