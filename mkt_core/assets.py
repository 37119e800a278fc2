"""Where the project's assets are: one path for the trainer, the runtime and the app."""

from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "assets"
DEMO_MODEL = ASSETS / "demo-model"
TOY_TEACHER = ASSETS / "toy-teacher"
TOY_VIT_TEACHER = ASSETS / "toy-vit-teacher"
DEFAULT_VOCABULARY = ASSETS / "vocabulary" / "default.txt"
CLIP_BPE_VOCABULARY = ASSETS / "tokenizer" / "bpe_simple_vocab_16e6.txt.gz"
