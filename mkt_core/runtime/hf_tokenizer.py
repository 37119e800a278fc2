"""A Hugging Face text tower's tokenizer, read from the tokenizer.json saved into a bundle at export.

Multilingual CLIPs (open_clip's `xlm-roberta-base-ViT-B-32` and kin) tokenize with a Hugging Face
tokenizer, not CLIP's BPE. The app reads that tokenizer's own tokenizer.json with the `tokenizers`
package (Rust, no torch, no transformers, no hub), and cleans text as open_clip's `HFTokenizer`
does by default ("whitespace": ftfy fix, HTML unescape twice, whitespace collapsed, case kept), so
the ids are open_clip's. The export checks that on sample labels before it writes a bundle.
"""

import html
from pathlib import Path


def clean_whitespace(text: str) -> str:
    """open_clip's "whitespace" cleaning: fix mojibake, unescape HTML twice, collapse whitespace."""
    import ftfy

    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return " ".join(text.split())


class HFTokenizer:
    """`encode(text) -> list[int]` without special tokens, and `sot_token_id` / `eot_token_id` to wrap them."""

    def __init__(self, path: str | Path, sot_token_id: int, eot_token_id: int):
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(path))
        self._tokenizer.no_truncation()  # the prompt layout truncates, as open_clip does
        self._tokenizer.no_padding()
        self.sot_token_id, self.eot_token_id = sot_token_id, eot_token_id

    @property
    def vocab_size(self) -> int:
        return int(self._tokenizer.get_vocab_size(with_added_tokens=True))

    def encode(self, text: str) -> list[int]:
        return list(self._tokenizer.encode(clean_whitespace(text), add_special_tokens=False).ids)
