"""Training and evaluation: the Trainer (stages, resume, DDP), its TOML config, ZSL / GZSL evaluation
and the metrics of the reference code."""
