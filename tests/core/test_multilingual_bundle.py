"""A multilingual CLIP (open_clip's xlm-roberta-base-ViT-B-32 layout: a Hugging Face XLM-RoBERTa text tower)
as a bundle: built offline at tiny sizes, with a tokenizer trained here, it tokenizes in the runtime without
torch and embeds non-English labels as the torch model does."""

import copy
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from mkt_core.model.config import TINY_VLP_CFG  # noqa: E402
from mkt_core.model.export import export_clip_bundle  # noqa: E402
from mkt_core.runtime.bundle import BundleError, load_bundle  # noqa: E402
from mkt_core.runtime.engine import Engine  # noqa: E402
from mkt_core.synthetic.world import write_demo_photos  # noqa: E402

SENTENCES = [
    "a black dog runs in the park", "un chien noir court dans le parc", "黒い犬が公園を走る", "黒い猫と白い犬",
    "собака на снегу", "a red car by the road", "une voiture rouge au bord de la route", "el perro negro",
    "ein schwarzer Hund im Schnee", "Ελληνικά γράμματα", "café crème et thé", "赤い車と青い空",
]
LABELS = ["chien noir", "黒い犬", "собака на снегу", "black dog", "Café  crème &amp; thé", "un 🐕 noir"]


def tiny_hf_text_tower(folder):
    """An XLM-RoBERTa config at tiny sizes and a Unigram tokenizer trained on a few sentences, as a local
    folder that transformers (and so open_clip's HFTextEncoder and HFTokenizer) read like a hub name."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast, XLMRobertaConfig

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # XLM-R's ids 0-4
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    tokenizer.train_from_iterator(SENTENCES, trainers.UnigramTrainer(vocab_size=200, special_tokens=specials,
                                                                     unk_token="<unk>"))
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
                                                             special_tokens=[("<s>", 0), ("</s>", 2)])
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", cls_token="<s>",
                            sep_token="</s>", pad_token="<pad>", unk_token="<unk>",
                            mask_token="<mask>").save_pretrained(folder)
    XLMRobertaConfig(vocab_size=tokenizer.get_vocab_size(), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=80, pad_token_id=1, bos_token_id=0,
                     eos_token_id=2).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def multilingual(tmp_path_factory):
    folder = str(tiny_hf_text_tower(tmp_path_factory.mktemp("xlmr")))
    cfg = {"embed_dim": 64, "vision_cfg": copy.deepcopy(TINY_VLP_CFG["vision_cfg"]),  # the image side as elsewhere
           "text_cfg": {"hf_model_name": folder, "hf_tokenizer_name": folder, "hf_pooler_type": "mean_pooler"}}
    torch.manual_seed(0)
    path = export_clip_bundle("tiny-xlm-roberta", None, tmp_path_factory.mktemp("bundle") / "ml", model_cfg=cfg)
    return load_bundle(path, verify=True), cfg


def _open_clip(cfg, bundle):
    from open_clip.tokenizer import HFTokenizer
    from safetensors.torch import load_file

    from mkt_core.model.vlp import build_clip

    clip = build_clip(copy.deepcopy(cfg)).eval()
    clip.load_state_dict(load_file(str(bundle.file("weights"))), strict=True)
    return clip, HFTokenizer(cfg["text_cfg"]["hf_tokenizer_name"], context_length=77)


def test_the_bundle_records_its_tokenizer_and_the_bare_label_prompt(multilingual):
    bundle, _ = multilingual
    info = bundle.manifest["tokenizer"]
    assert info["kind"] == "hf" and (bundle.path / info["file"]).is_file() and info["sha256"].startswith("sha256:")
    prompt = bundle.prompt
    assert (prompt.template, prompt.sot_id, prompt.eot_id, prompt.pad_id, prompt.context_length) == ("{}", 0, 2, 1, 77)


def test_runtime_ids_equal_open_clips_hf_tokenizer(multilingual):
    bundle, cfg = multilingual
    _, reference = _open_clip(cfg, bundle)
    with pytest.warns(UserWarning, match="only the first 75"):  # cut to the context, as open_clip cuts it
        ids, lengths = bundle.tokenize(LABELS + ["a " * 100])
    assert (ids == reference(LABELS + ["a " * 100]).numpy()).all()
    assert lengths[-1] == 75 and (ids[0] == 1).sum() > 60  # XLM-R pads with 1, not CLIP's 0
    assert len(set(ids[:2, 1:4].ravel()) - {1, 2, 3}) >= 4  # real pieces, not unknowns: the test compares something


def test_non_english_labels_embed_as_the_torch_model_does(multilingual):
    bundle, cfg = multilingual
    clip, reference = _open_clip(cfg, bundle)
    with torch.no_grad():
        expected = torch.nn.functional.normalize(clip.encode_text(reference(LABELS)), dim=-1).numpy()
    onnx = Engine(bundle, backend="onnx").encode_labels(LABELS)
    fallback = Engine(bundle, backend="torch").encode_labels(LABELS)
    assert np.abs(onnx - expected).max() < 1e-4 and np.abs(fallback - expected).max() < 1e-4
    assert np.abs(expected[0] - expected[1]).max() > 1e-3  # different labels, different embeddings


def test_the_runtime_tokenizes_without_torch_or_transformers(multilingual):
    bundle, _ = multilingual
    code = ("import sys; from mkt_core.runtime.bundle import load_bundle; "
            f"print(load_bundle({str(bundle.path)!r}).tokenize(['黒い犬'])[0][0, :6].tolist()); "
            "print([m for m in ('torch', 'transformers', 'open_clip') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert json.loads(out[1].replace("'", '"')) == []
    assert json.loads(out[0]) == bundle.tokenize(["黒い犬"])[0][0, :6].tolist()


def test_a_changed_tokenizer_file_is_refused_by_verify(multilingual, tmp_path):
    bundle, _ = multilingual
    copy_path = shutil.copytree(bundle.path, tmp_path / "copy")
    (copy_path / "tokenizer.json").write_text((copy_path / "tokenizer.json").read_text() + " ")
    with pytest.raises(BundleError, match="tokenizer.json"):
        load_bundle(copy_path, verify=True)


def test_a_multilingual_library_indexes_and_searches(multilingual, tmp_path):
    from mkt_desktop.library.library import Library

    bundle, _ = multilingual
    photos = tmp_path / "photos"
    write_demo_photos(photos, count=6, seed=3)
    lib = Library(db_path=tmp_path / "library.sqlite", model=str(bundle.path), vocabulary=False)
    report = lib.index([photos])
    assert report.indexed == 6 and not report.failed
    for query in ("chien noir", "黒い犬"):
        hits, _ = lib.search(query, limit=3)
        assert len(hits) == 3 and hits[0].score >= hits[-1].score


def test_clip_name_and_folder_makes_a_multilingual_model_choice_offline(multilingual, tmp_path):
    """`clip:NAME//folder` with an open_clip folder of a multilingual CLIP (config, weights, tokenizer files,
    as a downloaded one has them): the folder's own tokenizer is used, the hub is never asked."""
    from mkt_desktop.library.library import Library
    from mkt_desktop.library.model_source import resolve_model

    bundle, cfg = multilingual
    # the text tower's config.json and the tokenizer files, those the bundle above was made with
    folder = shutil.copytree(cfg["text_cfg"]["hf_model_name"], tmp_path / "open_clip")
    model_cfg = copy.deepcopy(cfg)
    model_cfg["text_cfg"].update(hf_model_name=str(folder), hf_tokenizer_name="xlm-roberta-base")  # a hub name
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg}), encoding="utf-8")
    shutil.copy(bundle.file("weights"), folder / "open_clip_model.safetensors")

    made = resolve_model(f"clip:xlm-roberta-base-ViT-B-32//{folder}", tmp_path / "cache")
    assert made.manifest["tokenizer"]["kind"] == "hf"
    assert (made.tokenize(LABELS)[0] == bundle.tokenize(LABELS)[0]).all()
    photos = tmp_path / "photos"
    write_demo_photos(photos, count=4, seed=1)
    lib = Library(db_path=tmp_path / "library.sqlite", model=f"clip:xlm-roberta-base-ViT-B-32//{folder}",
                  vocabulary=False)  # its cache is tmp_path / "cache": the bundle made above
    assert lib.index([photos]).indexed == 4
    assert len(lib.search("chien noir", limit=2)[0]) == 2


@pytest.mark.parametrize("change, message", [
    (lambda m: m["tokenizer"].update(kind="sentencepiece"), "field 'tokenizer'"),
    (lambda m: m["tokenizer"].update(file="../tokenizer.json"), "tokenizer.file"),
    (lambda m: m["tokenizer"].update(vocab_size=0), "tokenizer.vocab_size"),
    (lambda m: m["prompt"].update(pad_id=10**6), "prompt.pad_id"),
])
def test_a_malformed_tokenizer_field_is_refused(multilingual, tmp_path, change, message):
    bundle, _ = multilingual
    folder = shutil.copytree(bundle.path, tmp_path / "copy")
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(BundleError, match=message):
        load_bundle(folder)


def test_a_missing_tokenizer_file_is_refused(multilingual, tmp_path):
    bundle, _ = multilingual
    folder = shutil.copytree(bundle.path, tmp_path / "copy")
    (folder / "tokenizer.json").unlink()
    with pytest.raises(BundleError, match="tokenizer.json: missing"):
        load_bundle(folder)


def test_mkt_refuses_a_hugging_face_text_tower(multilingual):
    """MKT's prompt tuning edits CLIP's token table, which a Hugging Face tower has not: a clear error."""
    import dataclasses

    from mkt_core.model.config import get_preset
    from mkt_core.model.mkt import create_model

    _, cfg = multilingual
    config = get_preset("tiny")
    config = dataclasses.replace(config, vlp=dataclasses.replace(config.vlp, model_cfg=copy.deepcopy(cfg)))
    with pytest.raises(ValueError, match="Hugging Face encoder"):
        create_model(config, load_weights=False)
