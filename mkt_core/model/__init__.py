"""The MKT model in torch: config and presets, student and heads, CLIP teacher, prompt, losses,
checkpoints, bundle export, and the converter of the authors' released checkpoints."""
