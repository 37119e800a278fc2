"""CLIP's byte-level BPE tokenizer, and the prompt layout every model here uses.

The app turns a typed label into token ids without torch or open_clip: this is the same
algorithm and the same merge table (`assets/tokenizer/`, OpenAI's, MIT) as open_clip's
`SimpleTokenizer` with its default "lower" cleaning, so the ids are the same (a test checks).

    text -> ftfy fix + HTML unescape, whitespace collapsed, lower case
         -> pieces (special tokens, English contractions, letter runs, single digits, other runs)
         -> each piece's UTF-8 bytes as printable characters -> BPE merges -> ids
"""

import gzip
import html
import warnings
from functools import cache
from pathlib import Path

import numpy as np

from mkt_core.assets import CLIP_BPE_VOCABULARY

SOT, EOT = "<start_of_text>", "<end_of_text>"
_MERGES = 49152 - 256 - 2  # the merges CLIP uses: its vocabulary is 49,408 ids


@cache
def _byte_chars() -> dict[int, str]:
    """Each byte as one printable character: printable Latin-1 bytes stand for themselves, the rest
    (space, control codes) take the characters from U+0100 on, so BPE never sees whitespace."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


def clean(text: str) -> str:
    """What CLIP's tokenizer does to text first: fix mojibake, unescape HTML twice, collapse
    whitespace, lower case. ftfy (a tenth of a second to import) is skipped for printable ASCII
    without "&", which it returns unchanged: most typed labels."""
    if not (text.isascii() and text.isprintable() and "&" not in text):
        import ftfy

        text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text)).strip()
    return " ".join(text.split()).lower()


class ClipTokenizer:
    """`encode(text) -> list[int]`, with `sot_token_id` and `eot_token_id`, as open_clip's tokenizer."""

    def __init__(self, merges_path: str | Path = CLIP_BPE_VOCABULARY):
        import regex

        merges = gzip.open(merges_path).read().decode("utf-8").split("\n")[1:_MERGES + 1]  # "a b" per line
        symbols = list(_byte_chars().values())
        vocabulary = symbols + [s + "</w>" for s in symbols] + [m.replace(" ", "") for m in merges] + [SOT, EOT]
        self.ids = {token: i for i, token in enumerate(vocabulary)}
        self.ranks = {merge: i for i, merge in enumerate(merges)}  # keyed by the line itself: quick to build
        self.sot_token_id, self.eot_token_id = self.ids[SOT], self.ids[EOT]
        self._pieces = regex.compile(
            rf"{SOT}|{EOT}|'s|'t|'re|'ve|'m|'ll|'d|[\p{{L}}]+|[\p{{N}}]|[^\s\p{{L}}\p{{N}}]+", regex.IGNORECASE)
        self._words: dict[str, tuple[str, ...]] = {SOT: (SOT,), EOT: (EOT,)}

    @classmethod
    @cache
    def default(cls) -> "ClipTokenizer":
        """The one tokenizer over the shipped merge table (reading it takes a fraction of a second)."""
        return cls()

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        chars = _byte_chars()
        for piece in self._pieces.findall(clean(text)):
            word = "".join(chars[b] for b in piece.encode("utf-8"))
            ids.extend(self.ids[symbol] for symbol in self._merge(word))
        return ids

    def _merge(self, word: str) -> tuple[str, ...]:
        """BPE: join the adjacent pair with the lowest merge rank until none is in the table."""
        if word in self._words:
            return self._words[word]
        symbols = [*word[:-1], word[-1] + "</w>"]
        while len(symbols) > 1:
            pairs = {f"{a} {b}" for a, b in zip(symbols, symbols[1:], strict=False)}
            best = min(pairs, key=lambda pair: self.ranks.get(pair, len(self.ranks)))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(symbols):
                if i < len(symbols) - 1 and f"{symbols[i]} {symbols[i + 1]}" == best:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        self._words[word] = tuple(symbols)
        return self._words[word]


def prompt_token_ids(labels: list[str], tokenizer, sot_id: int, prefix_ids, suffix_ids, eot_id: int,
                     context_length: int, pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`[SOT] prefix label suffix [EOT] pad...` ids `[L, C]` (int64) and the label lengths `[L]`.

    The one tokenisation of prompts, used by training and by exported bundles alike. A label too
    long for the context keeps its first tokens, with a warning, never an error. CLIP pads with 0;
    a Hugging Face text tower with its own pad id (its attention mask is "id != pad").
    """
    max_label_tokens = context_length - 2 - len(prefix_ids) - len(suffix_ids)
    ids = np.full((len(labels), context_length), pad_id, dtype=np.int64)
    lengths = np.zeros(len(labels), dtype=np.int64)
    for i, label in enumerate(labels):
        label_ids = tokenizer.encode(label)
        if not label_ids:
            raise ValueError(f"label {label!r} has no text to encode")
        if len(label_ids) > max_label_tokens:
            warnings.warn(f"label {label[:60]!r} is {len(label_ids)} tokens long; only the first "
                          f"{max_label_tokens} fit the text context and are used", stacklevel=3)
            label_ids = label_ids[:max_label_tokens]
        row = [sot_id, *prefix_ids, *label_ids, *suffix_ids, eot_id]
        ids[i, : len(row)] = row
        lengths[i] = len(label_ids)
    return ids, lengths
