"""The runtime's own CLIP tokenizer gives open_clip's ids, so the app needs neither open_clip nor torch."""

import open_clip
import pytest

from mkt_core.runtime.tokenizer import ClipTokenizer, prompt_token_ids

TEXTS = [
    "dog", "Black Dog", "a red fire truck parked by the road", "There is a {} in the scene",
    "birthday cake", "foggy harbour", "it's, they're, we'll, I'd, you've", "route 66 in 1999",
    "naïve café crème brûlée", "日本の桜", "собака на снегу", "Ελληνικά", "😀 party 🎉",
    "&amp; &lt;b&gt; html", "  lots   of\twhite\nspace  ", "e-mail@example.com!!!", "x",
    "supercalifragilisticexpialidocious", "<start_of_text>", "ÄÖÜ ß", "3.14159", "C++ / C#",
    "\u00a0non-breaking\u00a0space", "qwxz", "a photo of nothing.", "mañana", "🙂🙂🙂",
]


@pytest.fixture(scope="module")
def ours() -> ClipTokenizer:
    return ClipTokenizer.default()


@pytest.mark.parametrize("text", TEXTS)
def test_ids_equal_open_clips(ours, text):
    assert ours.encode(text) == open_clip.SimpleTokenizer().encode(text)


def test_special_ids_equal_open_clips(ours):
    reference = open_clip.SimpleTokenizer()
    assert (ours.sot_token_id, ours.eot_token_id) == (reference.sot_token_id, reference.eot_token_id) == (49406, 49407)


def test_a_prompt_is_laid_out_the_same_with_either_tokenizer(ours):
    reference = open_clip.SimpleTokenizer()
    prefix, suffix = reference.encode("there is a"), reference.encode("in the scene")
    args = (49406, prefix, suffix, 49407, 77)
    ids, lengths = prompt_token_ids(["black dog", "foggy harbour"], ours, *args)
    ref_ids, ref_lengths = prompt_token_ids(["black dog", "foggy harbour"], reference, *args)
    assert (ids == ref_ids).all() and (lengths == ref_lengths).all()


def test_ascii_text_that_skips_ftfy_gets_open_clips_ids(ours):
    """clean() skips ftfy for printable ASCII without "&": random such texts (quotes, brackets, digits,
    odd spacing) must still give exactly open_clip's ids, which always runs ftfy."""
    import random

    reference = open_clip.SimpleTokenizer()
    rng = random.Random(7)
    alphabet = [chr(c) for c in range(0x20, 0x7F) if chr(c) != "&"]
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))) for _ in range(300)]
    for text in texts:
        assert ours.encode(text) == reference.encode(text), text
