"""Model bundles: the folder the app loads, with ONNX encoders for the runtime and safetensors for torch.

    bundle/
      manifest.json          format, version, kind, sizes, preprocessing, prompt, fingerprint
      image_encoder.onnx     images [B, 3, H, W] float32 -> global [B, D] (+ local [B, N, D] when num_patches > 0:
                             every "mkt" bundle, and a "clip" bundle made from a ViT, see `patch_path`)
      text_encoder.onnx      ids [L, C] int64, label_lengths [L] int64 -> embeddings [L, D], L2-normalised
      weights.safetensors    the same weights for the torch fallback (config in the manifest)
      vocabulary.txt         optional: the labels the model was made for, one a line
      tokenizer.json         only where the manifest's "tokenizer" names it: a Hugging Face text tower's
                             tokenizer (multilingual CLIPs); without that field the tokenizer is CLIP's BPE

The manifest's optional "calibration" (`mkt_core.runtime.calibration`) turns raw scores into a
confidence; it is outside the fingerprint, so adding one changes no stored embedding or score.

The text encoder takes the prompt's token ids laid out as `PromptLearner.tokenize` lays them out
(`[SOT] prefix label suffix [EOT] pad`); the learned prompt (CoOp context vectors, or the tuned
token table) is baked into the graph as constants, so the runtime needs only the tokenizer.
A bundle's fingerprint is a sha256 over its weights and the manifest fields that change what the
encoders compute; embeddings and scores in the app's database carry it.

This module is what the app ships: it reads and checks bundles and imports no torch. Writing a
bundle (the ONNX export) is `mkt_core.model.export`; so is the torch fallback, loaded on demand.
"""

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mkt_core.runtime.files import read_json_object
from mkt_core.runtime.tokenizer import prompt_token_ids

FORMAT = "mkt-bundle"
VERSION = 1
MANIFEST_FILE = "manifest.json"
IMAGE_FILE = "image_encoder.onnx"
TEXT_FILE = "text_encoder.onnx"
WEIGHTS_FILE = "weights.safetensors"
VOCABULARY_FILE = "vocabulary.txt"  # optional: the labels the model was made for, one a line
TOKENIZER_FILE = "tokenizer.json"  # a Hugging Face tokenizer, where the manifest's "tokenizer" is {"kind": "hf"}
OPSET = 18
KINDS = ("mkt", "clip")
CLIP_PROMPT_TEMPLATE = "a photo of a {}."
# The teacher's image tower is not needed to tag photos; the torch fallback rebuilds it at random.
MKT_SKIPPED_PREFIX = "vlp.clip.visual."


class BundleError(ValueError):
    """A bundle folder that cannot be used; the message names the file and the reason."""


# -- the prompt layout, shared by export and runtime ---------------------------------------------


@dataclass(frozen=True)
class PromptSpec:
    """How a label becomes token ids: `[SOT] prefix label suffix [EOT]`, padded to context_length with pad_id."""

    template: str
    prefix_ids: tuple[int, ...]
    suffix_ids: tuple[int, ...]
    sot_id: int
    eot_id: int
    context_length: int
    pad_id: int = 0

    @property
    def max_label_tokens(self) -> int:
        return self.context_length - 2 - len(self.prefix_ids) - len(self.suffix_ids)

    def to_dict(self) -> dict[str, Any]:
        data = {"template": self.template, "prefix_ids": list(self.prefix_ids), "suffix_ids": list(self.suffix_ids),
                "sot_id": self.sot_id, "eot_id": self.eot_id, "context_length": self.context_length}
        if self.pad_id:  # written only where it is not CLIP's 0, so older prompts (and fingerprints) stay as they were
            data["pad_id"] = self.pad_id
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PromptSpec":
        return cls(str(data["template"]), tuple(int(i) for i in data["prefix_ids"]),
                   tuple(int(i) for i in data["suffix_ids"]), int(data["sot_id"]), int(data["eot_id"]),
                   int(data["context_length"]), int(data.get("pad_id", 0)))

    @classmethod
    def from_template(cls, template: str, tokenizer, context_length: int, pad_id: int = 0) -> "PromptSpec":
        prefix, suffix = template.split("{}", 1)
        return cls(template, tuple(tokenizer.encode(prefix)) if prefix.strip() else (),
                   tuple(tokenizer.encode(suffix)) if suffix.strip() else (),
                   int(tokenizer.sot_token_id), int(tokenizer.eot_token_id), int(context_length), int(pad_id))

    def tokenize(self, labels: list[str], tokenizer) -> tuple[np.ndarray, np.ndarray]:
        """(ids [L, C] int64, label_lengths [L] int64); too long a label is cut, as in training."""
        return prompt_token_ids(labels, tokenizer, self.sot_id, self.prefix_ids, self.suffix_ids, self.eot_id,
                                self.context_length, self.pad_id)


_FINGERPRINT_FIELDS = ("kind", "embed_dim", "image_size", "mean", "std", "resize", "patch_grid", "top_k", "prompt")
# Fields added later: hashed only where a manifest has them, so older bundles keep their fingerprints.
# patch_path: how a two-stream CLIP bundle's patch tokens leave the last block ("value" or "plain");
# tokenizer: a Hugging Face tokenizer's file and sha256 (other ids, other embeddings).
_OPTIONAL_FINGERPRINT_FIELDS = ("patch_path", "tokenizer")


def fingerprint(state: dict[str, np.ndarray], manifest: dict[str, Any]) -> str:
    """sha256 over every weight (name, dtype, shape, bytes; in name order) and the manifest essentials.

    The dtype is written in torch's spelling ("torch.float32"), as bundles have been fingerprinted
    since the first one; numpy's dtype names are the same words.
    """
    digest = hashlib.sha256()
    essentials = {key: manifest.get(key) for key in _FINGERPRINT_FIELDS}
    essentials.update({key: manifest[key] for key in _OPTIONAL_FINGERPRINT_FIELDS if key in manifest})
    digest.update(json.dumps(essentials, sort_keys=True).encode())
    for key in sorted(state):
        array = np.ascontiguousarray(state[key])
        digest.update(f"{key}|torch.{array.dtype.name}|{tuple(array.shape)}|".encode())
        digest.update(array.tobytes())
    return "sha256:" + digest.hexdigest()


# -- loading --------------------------------------------------------------------------------------


@dataclass
class Bundle:
    """A loaded manifest plus where its files are; the encoders themselves live in `mkt_core.runtime.engine`."""

    path: Path
    manifest: dict[str, Any]
    _tokenizer: Any = field(default=None, repr=False, compare=False)

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    @property
    def name(self) -> str:
        return str(self.manifest.get("name", self.path.name))

    @property
    def fingerprint(self) -> str:
        return self.manifest["fingerprint"]

    @property
    def embed_dim(self) -> int:
        return int(self.manifest["embed_dim"])

    @property
    def image_size(self) -> int:
        return int(self.manifest["image_size"])

    @property
    def mean(self) -> tuple[float, float, float]:
        return tuple(self.manifest["mean"])

    @property
    def std(self) -> tuple[float, float, float]:
        return tuple(self.manifest["std"])

    @property
    def resize(self) -> str:
        return self.manifest.get("resize", "squash")

    @property
    def num_patches(self) -> int:
        return int(self.manifest["num_patches"])

    @property
    def top_k(self) -> int:
        return int(self.manifest["top_k"])

    @property
    def prompt(self) -> PromptSpec:
        return PromptSpec.from_dict(self.manifest["prompt"])

    @property
    def calibration(self):
        """The score -> confidence map fitted where the model was made, or None (see calibration.py)."""
        from mkt_core.runtime.calibration import Calibration

        data = self.manifest.get("calibration")
        return None if data is None else Calibration.from_dict(data)

    def file(self, role: str) -> Path:
        return self.path / self.manifest["files"][role]

    def tokenizer(self):
        """The bundle's tokenizer, built once: CLIP's BPE (the runtime's own copy, the same ids as open_clip's),
        or the Hugging Face tokenizer.json the bundle brings (a multilingual text tower)."""
        if self._tokenizer is None:
            if "tokenizer" in self.manifest:
                from mkt_core.runtime.hf_tokenizer import HFTokenizer

                prompt = self.prompt
                self._tokenizer = HFTokenizer(self.path / self.manifest["tokenizer"]["file"], prompt.sot_id,
                                              prompt.eot_id)
            else:
                from mkt_core.runtime.tokenizer import ClipTokenizer

                self._tokenizer = ClipTokenizer.default()
        return self._tokenizer

    def tokenize(self, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
        return self.prompt.tokenize(labels, self.tokenizer())

    def load_torch(self):
        """The torch fallback: the same encoders rebuilt from weights.safetensors (no download)."""
        from mkt_core.model.export import load_torch_models

        return load_torch_models(self)


# What the format allows. The runtime allocates from these numbers (a decoded photo is image_size^2 x 3
# floats, a batch's local output B x num_patches x embed_dim), so a manifest may not ask for more:
# 1024 px is above every CLIP / ViT input in use (336-518), 4096 above every embedding width (<= 1664).
LIMITS = {"image_size": (16, 1024), "embed_dim": (1, 4096), "num_patches": (0, 4096), "patch_grid": (0, 64),
          "top_k": (0, 4096), "context_length": (3, 1024)}
TOKEN_IDS = 49408  # the CLIP BPE vocabulary of the runtime tokenizer (runtime/tokenizer.py)
HF_TOKEN_IDS = 1 << 20  # the most ids a bundle's own tokenizer may have (XLM-RoBERTa's is 250,002)

_REQUIRED = {"kind": str, "embed_dim": int, "image_size": int, "mean": list, "std": list, "num_patches": int,
             "top_k": int, "prompt": dict, "files": dict, "fingerprint": str, "torch": dict}


def load_bundle(path: str | Path, verify: bool = False) -> Bundle:
    """Read and check a bundle's manifest; refuse, naming the file and the reason, what cannot be used.

    `verify=True` also recomputes the fingerprint from weights.safetensors (reads every weight).
    """
    folder = Path(path)
    manifest_path = folder / MANIFEST_FILE
    if not folder.is_dir():
        raise BundleError(f"{folder}: not a folder: a model bundle is a folder with {MANIFEST_FILE}")
    if not manifest_path.is_file():
        raise BundleError(f"{manifest_path}: missing: {folder} is not a model bundle")
    manifest = read_json_object(manifest_path, BundleError)
    if manifest.get("format") != FORMAT:
        raise BundleError(f"{manifest_path}: not a model bundle manifest (format {manifest.get('format')!r}, "
                          f"expected {FORMAT!r})")
    if manifest.get("version") != VERSION:
        raise BundleError(f"{manifest_path}: bundle format version {manifest.get('version')!r}; this program reads "
                          f"version {VERSION}. Re-export the model with this version of the program.")
    for key, kind in _REQUIRED.items():
        if key not in manifest:
            raise BundleError(f"{manifest_path}: malformed: missing field {key!r}")
        if not isinstance(manifest[key], kind) or (kind is int and isinstance(manifest[key], bool)):
            raise BundleError(f"{manifest_path}: malformed: field {key!r} should be {kind.__name__}, "
                              f"got {type(manifest[key]).__name__}")
    if manifest["kind"] not in KINDS:
        raise BundleError(f"{manifest_path}: unknown kind {manifest['kind']!r} (known: {', '.join(KINDS)})")
    try:
        PromptSpec.from_dict(manifest["prompt"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{manifest_path}: malformed: field 'prompt': {exc!r}") from exc
    _check_tokenizer(manifest, folder, manifest_path)
    _check_numbers(manifest, manifest_path)
    for role in ("image_encoder", "text_encoder", "weights"):
        name = manifest["files"].get(role)
        if not isinstance(name, str) or Path(name).name != name:
            raise BundleError(f"{manifest_path}: malformed: files.{role} should be a file name, got {name!r}")
        if not (folder / name).is_file():
            raise BundleError(f"{folder / name}: missing (the bundle's {MANIFEST_FILE} names it as its {role})")
    if manifest.get("calibration") is not None:
        from mkt_core.runtime.calibration import Calibration, CalibrationError

        try:
            Calibration.from_dict(manifest["calibration"])
        except CalibrationError as exc:
            raise BundleError(f"{manifest_path}: malformed: field 'calibration': {exc}") from exc
    bundle = Bundle(folder, manifest)
    if verify:
        from safetensors.numpy import load_file

        actual = fingerprint(load_file(str(bundle.file("weights"))), manifest)
        if actual != manifest["fingerprint"]:
            raise BundleError(f"{bundle.file('weights')}: weights do not match the fingerprint in {manifest_path} "
                              "(the file was changed or damaged)")
        if "tokenizer" in manifest:
            tokenizer_file = folder / manifest["tokenizer"]["file"]
            digest = "sha256:" + hashlib.sha256(tokenizer_file.read_bytes()).hexdigest()
            if digest != manifest["tokenizer"].get("sha256"):
                raise BundleError(f"{tokenizer_file}: does not match the sha256 in {manifest_path} "
                                  "(the file was changed or damaged)")
    return bundle


def _check_numbers(manifest: dict[str, Any], manifest_path: Path) -> None:
    """Every number the runtime sizes memory or indexes with, within LIMITS and consistent with the others."""

    def bad(field: str, value: Any, rule: str) -> BundleError:
        return BundleError(f"{manifest_path}: field {field!r} is {value!r}; {rule}")

    def bounded(field: str, value: Any, limits: str) -> int:
        low, high = LIMITS[limits]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise bad(field, value, f"it must be a whole number from {low} to {high}")
        return value

    for key in ("image_size", "embed_dim", "num_patches", "top_k"):
        bounded(key, manifest[key], key)
    for key in ("mean", "std"):
        values = manifest[key]
        if len(values) != 3 or not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                                       for v in values):
            raise bad(key, values, "it must be 3 finite numbers (one per colour channel)")
    if not all(v > 0 for v in manifest["std"]):
        raise bad("std", manifest["std"], "every value must be above 0 (photos are divided by it)")
    if manifest.get("resize", "squash") not in ("squash", "center_crop"):
        raise bad("resize", manifest.get("resize"), "it must be 'squash' or 'center_crop'")
    patches, top_k = manifest["num_patches"], manifest["top_k"]
    grid = manifest.get("patch_grid", [0, 0])
    if not isinstance(grid, list) or len(grid) != 2:
        raise bad("patch_grid", grid, "it must be [rows, columns]")
    rows, cols = (bounded("patch_grid", g, "patch_grid") for g in grid)
    if manifest["kind"] == "mkt":
        if rows * cols != patches or not patches:
            raise bad("num_patches", patches,
                      f"a model of kind 'mkt' needs patch_grid rows x columns ({rows} x {cols}), at least 1")
        if not 1 <= top_k <= patches:
            raise bad("top_k", top_k, f"it must be from 1 to num_patches ({patches})")
    prompt = manifest["prompt"]
    context = bounded("prompt.context_length", prompt["context_length"], "context_length")
    token_ids = manifest["tokenizer"]["vocab_size"] if "tokenizer" in manifest else TOKEN_IDS
    for key in ("sot_id", "eot_id", "pad_id"):
        value = prompt.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < token_ids:
            raise bad(f"prompt.{key}", value, f"it must be a token id from 0 to {token_ids - 1}")
    for key in ("prefix_ids", "suffix_ids"):
        ids = prompt[key]
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < token_ids
                                                for i in ids):
            raise bad(f"prompt.{key}", ids, f"it must be a list of token ids from 0 to {token_ids - 1}")
    if context - 2 - len(prompt["prefix_ids"]) - len(prompt["suffix_ids"]) < 1:
        raise bad("prompt.context_length", context, "the prompt leaves no room for a label")


def _check_tokenizer(manifest: dict[str, Any], folder: Path, manifest_path: Path) -> None:
    """The optional "tokenizer" field: {"kind": "hf", "file", "vocab_size", "sha256"} naming a file of the bundle."""
    if "tokenizer" not in manifest:
        return
    info = manifest["tokenizer"]
    if not isinstance(info, dict) or info.get("kind") != "hf":
        raise BundleError(f"{manifest_path}: malformed: field 'tokenizer' should be {{\"kind\": \"hf\", ...}}, "
                          f"got {info!r}")
    name, size = info.get("file"), info.get("vocab_size")
    if not isinstance(name, str) or Path(name).name != name:
        raise BundleError(f"{manifest_path}: malformed: tokenizer.file should be a file name, got {name!r}")
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= HF_TOKEN_IDS:
        raise BundleError(f"{manifest_path}: field 'tokenizer.vocab_size' is {size!r}; it must be a whole number "
                          f"from 1 to {HF_TOKEN_IDS}")
    if not (folder / name).is_file():
        raise BundleError(f"{folder / name}: missing (the bundle's {MANIFEST_FILE} names it as its tokenizer)")
