"""Writing model bundles (ONNX encoders + safetensors), and the torch fallback that reads them back.

The bundle format itself, and everything the app needs to read one, is `mkt_core.runtime.bundle`;
this module holds the torch side: the graphs that are exported, the export, and the same graphs
rebuilt from a bundle's weights for the torch fallback.
"""

import json
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mkt_core.runtime.bundle import (
    CLIP_PROMPT_TEMPLATE,
    FORMAT,
    IMAGE_FILE,
    MANIFEST_FILE,
    MKT_SKIPPED_PREFIX,
    OPSET,
    TEXT_FILE,
    TOKENIZER_FILE,
    VERSION,
    VOCABULARY_FILE,
    WEIGHTS_FILE,
    Bundle,
    PromptSpec,
    fingerprint,
)

# -- the graphs that are exported -----------------------------------------------------------------


class MKTImageGraph(nn.Module):
    """images -> (global [B, D], local [B, N, D]): the student and its two heads."""

    def __init__(self, student: nn.Module):
        super().__init__()
        self.student = student

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.student(images)


class ClipImageGraph(nn.Module):
    """images -> global [B, D], L2-normalised: CLIP zero-shot scores are cosine similarities."""

    def __init__(self, clip: nn.Module):
        super().__init__()
        self.clip = clip

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.clip.encode_image(images), dim=-1)


PATCH_PATHS = ("value", "plain")
# MKT's k: 18 of ViT-B/16's 196 patches (the paper's and the release's); other grids keep the ratio.
MKT_TOP_K, MKT_NUM_PATCHES = 18, 196


def clip_top_k(num_patches: int) -> int:
    """The top-k of Eq. 3 for a CLIP grid of `num_patches`: MKT's ratio, 18 of 196 (ViT-B/32 at 224 px: 4 of 49)."""
    return max(1, round(num_patches * MKT_TOP_K / MKT_NUM_PATCHES))


def clip_has_patch_tokens(clip: nn.Module) -> bool:
    """Whether a CLIP's image tower is open_clip's ViT with a token sequence (not a ResNet, timm or CoCa tower)."""
    from open_clip.transformer import VisionTransformer

    visual = getattr(clip, "visual", None)
    return isinstance(visual, VisionTransformer) and visual.attn_pool is None


class ClipTwoStreamGraph(nn.Module):
    """images -> (global [B, D], local [B, N, D]), both L2-normalised: any open_clip ViT as two streams.

    The global stream is CLIP's own image embedding, exactly as `ClipImageGraph` gives it. The local
    stream is the patch tokens after the final LayerNorm through the same projection, as the authors'
    released MKT does with its shared projection. Every token is L2-normalised, like the global one, so
    that both terms of Eq. 3 are cosines: raw projected tokens are about as long as the un-normalised
    global embedding (tens of times a unit vector), and the local term would drown the global one.

    `patch_path`: "value" (default) is MaskCLIP's change to the last block, as ClearCLIP keeps it: a
    patch token is that block's value projection + output projection of its own input (no query-key
    attention, no residual, no MLP); CLIP's last attention mixes the whole image into every token, and
    the value path keeps each token about its own place. "plain" takes the tokens as the block leaves them.
    """

    def __init__(self, clip: nn.Module, patch_path: str = "value"):
        super().__init__()
        if patch_path not in PATCH_PATHS:
            raise ValueError(f"patch_path must be one of {PATCH_PATHS}, got {patch_path!r}")
        if not clip_has_patch_tokens(clip):
            raise ValueError("a local stream needs an open_clip ViT image tower (this one has no patch tokens)")
        last = clip.visual.transformer.resblocks[-1]
        if patch_path == "value" and not isinstance(getattr(last, "attn", None), nn.MultiheadAttention):
            raise ValueError("patch_path 'value' needs open_clip's standard attention block; use 'plain'")
        self.clip = clip
        self.patch_path = patch_path

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        visual = self.clip.visual
        blocks, batch_first = visual.transformer.resblocks, visual.transformer.batch_first
        x = visual._embeds(images)
        x = x if batch_first else x.transpose(0, 1)
        for block in blocks[:-1]:
            x = block(x)
        out = blocks[-1](x)
        x, out = (x, out) if batch_first else (x.transpose(0, 1), out.transpose(0, 1))
        pooled, _ = visual._pool(out)
        tokens = self._value_path(blocks[-1], x) if self.patch_path == "value" else out
        tokens = visual.ln_post(tokens[:, 1:])  # the class token is the global stream's
        if visual.proj is not None:
            pooled, tokens = pooled @ visual.proj, tokens @ visual.proj
        return F.normalize(pooled, dim=-1), F.normalize(tokens, dim=-1)

    @staticmethod
    def _value_path(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        attn = block.attn
        width = attn.embed_dim
        bias = None if attn.in_proj_bias is None else attn.in_proj_bias[2 * width:]
        values = F.linear(block.ln_1(x), attn.in_proj_weight[2 * width:], bias)
        return block.ls_1(attn.out_proj(values))


class TextGraph(nn.Module):
    """(ids [L, C], label_lengths [L]) -> L2-normalised label embeddings [L, D].

    Computes what `PromptLearner.forward` computes, with the learned prompt as constants and
    without Python-side indexing, so that it exports: in "context" mode the positions of the
    template's prefix and suffix take the learned context vectors (the suffix sits after a label
    of per-row length, hence the gather + where); in "token_table" mode every position but the
    label's takes its embedding from the tuned table; with no prompt (CLIP) the plain token table.
    """

    def __init__(self, vlp, spec: PromptSpec, prompt: nn.Module | None = None, half_tables: bool = False):
        super().__init__()
        self.vlp = vlp
        self.n_prefix, self.n_suffix = len(spec.prefix_ids), len(spec.suffix_ids)
        self.mode = "plain" if prompt is None else prompt.tuning
        # half_tables: the token tables (most of a small text tower's bytes) as float16 constants, cast
        # to float32 after the lookup; everything else stays float32.
        self.half_tables = half_tables
        if half_tables:
            self.register_buffer("vocab", vlp.clip.token_embedding.weight.detach().half().clone())
        if self.mode == "token_table":
            table = prompt.token_table.weight.detach().clone()
            self.register_buffer("table", table.half() if half_tables else table)
        if self.mode == "context":
            self.register_buffer("ctx_prefix", prompt.ctx_prefix.detach().clone())
            self.register_buffer("ctx_suffix", prompt.ctx_suffix.detach().clone())

    def forward(self, ids: torch.Tensor, label_lengths: torch.Tensor) -> torch.Tensor:
        if self.half_tables:
            embeds = F.embedding(ids, self.vocab).float()
        else:
            embeds = self.vlp.clip.token_embedding(ids)
        positions = torch.arange(ids.shape[1], device=ids.device)[None, :]
        start = 1 + self.n_prefix
        label_end = (start + label_lengths)[:, None]
        if self.mode == "token_table":
            is_label = (positions >= start) & (positions < label_end)
            embeds = torch.where(is_label[..., None], embeds, F.embedding(ids, self.table).to(embeds.dtype))
        elif self.mode == "context":
            if self.n_prefix:
                in_prefix = (positions >= 1) & (positions < start)
                prefix = self.ctx_prefix.to(embeds.dtype)[(positions - 1).clamp(0, self.n_prefix - 1)]
                embeds = torch.where(in_prefix[..., None], prefix, embeds)
            if self.n_suffix:
                offset = positions - label_end
                in_suffix = (offset >= 0) & (offset < self.n_suffix)
                suffix = self.ctx_suffix.to(embeds.dtype)[offset.clamp(0, self.n_suffix - 1)]
                embeds = torch.where(in_suffix[..., None], suffix, embeds)
        eot_positions = label_end[:, 0] + self.n_suffix
        return F.normalize(self.vlp.encode_text_embeddings(embeds, eot_positions), dim=-1)


class HFTextGraph(nn.Module):
    """ids [L, C] -> L2-normalised label embeddings [L, D]: a Hugging Face text tower, as open_clip runs it.

    The ids are padded with the tower's pad id, and its attention mask is "id != pad" (open_clip's
    HFTextEncoder), so the label lengths are not needed: the exported graph takes the ids alone.
    """

    def __init__(self, clip: nn.Module):
        super().__init__()
        self.clip = clip

    def forward(self, ids: torch.Tensor, label_lengths: torch.Tensor | None = None) -> torch.Tensor:
        return F.normalize(self.clip.encode_text(ids), dim=-1)


# Labels the export tokenizes both ways before it writes a Hugging Face tokenizer into a bundle.
TOKENIZER_PROBES = ["photo", "red car", "chien noir", "黒い犬", "собака на снегу", "  Café   crème &amp; thé ",
                    "Ελληνικά", "😀 party"]


def _hf_prompt(vlp, template: str, folder: Path):
    """A Hugging Face tokenizer saved for the runtime: (prompt spec, manifest "tokenizer" field, tokenizer.json
    bytes, the runtime's tokenizer over them).

    The runtime reads the tokenizer.json with the `tokenizers` package; before it goes into a bundle
    the prompt layout over it must give open_clip's HFTokenizer ids exactly, or the export refuses.
    """
    import hashlib

    from mkt_core.runtime.hf_tokenizer import HFTokenizer

    hf = vlp.tokenizer.tokenizer
    data = hf.backend_tokenizer.to_str().encode("utf-8")
    (folder / TOKENIZER_FILE).write_bytes(data)
    empty = hf("").input_ids
    if len(empty) != 2:
        raise ValueError(f"the tokenizer wraps text in {len(empty)} special tokens, not a start and an end: "
                         "its layout is not supported in a bundle")
    runtime = HFTokenizer(folder / TOKENIZER_FILE, int(empty[0]), int(empty[1]))
    spec = PromptSpec.from_template(template, runtime, vlp.context_length, int(hf.pad_token_id or 0))
    ours, _ = spec.tokenize(TOKENIZER_PROBES, runtime)
    theirs = vlp.tokenizer([template.format(p) for p in TOKENIZER_PROBES]).numpy()
    if ours.shape != theirs.shape or not (ours == theirs).all():
        raise ValueError("the runtime's reading of this model's tokenizer does not give open_clip's ids "
                         f"(template {template!r}); it cannot be exported as a bundle")
    info = {"kind": "hf", "file": TOKENIZER_FILE, "vocab_size": runtime.vocab_size,
            "sha256": "sha256:" + hashlib.sha256(data).hexdigest()}
    return spec, info, data, runtime


# -- export ---------------------------------------------------------------------------------------


def export_bundle(model, out_dir: str | Path, name: str | None = None, overwrite: bool = False,
                  dynamo: bool = False, half_weights: bool = False, vocabulary: list[str] | None = None) -> Path:
    """Write an MKT model as a bundle folder (see the module docstring); returns the folder.

    The folder is written beside `out_dir` and renamed into place at the end, so a failed
    export never leaves a half bundle where the app would look for one.
    `dynamo=False` uses torch's TorchScript ONNX exporter: several times faster to export here and
    with the same parity; `dynamo=True` the torch.export-based one.
    `half_weights` makes a compact bundle: weights.safetensors (the torch fallback's copy) in float16,
    and the text encoder's token tables as float16 constants (cast to float32 after the lookup). The
    image encoder and the rest of the text encoder stay float32. Both the ONNX encoders and the torch
    fallback (which reads every weight rounded to float16) then stay within float16 rounding of the model.
    `vocabulary`: the labels the model was made for, written to vocabulary.txt; the app scores them at
    index time instead of its general vocabulary (a model of one domain knows that domain's words).
    """
    from mkt_core.model.checkpoint import portable_config

    spec = PromptSpec(model.config.prompt_template, tuple(model.prompt.prefix_ids), tuple(model.prompt.suffix_ids),
                      model.prompt.sot_id, model.prompt.eot_id, model.prompt.context_length)
    grid = list(model.student.grid_size)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith(MKT_SKIPPED_PREFIX)}
    manifest = {
        "format": FORMAT, "version": VERSION, "kind": "mkt", "name": name or model.config.name,
        "embed_dim": model.config.embed_dim, "image_size": model.config.image_size,
        "mean": list(model.config.mean), "std": list(model.config.std), "resize": "squash",
        "patch_grid": grid, "num_patches": grid[0] * grid[1], "top_k": model.config.top_k,
        "prompt": {**spec.to_dict(), "tuning": model.config.prompt_tuning},
        "files": {"image_encoder": IMAGE_FILE, "text_encoder": TEXT_FILE, "weights": WEIGHTS_FILE},
        "weights_dtype": "float16" if half_weights else "float32",
        "torch": {"config": portable_config(model).to_dict(), "vlp_mean": list(model.vlp.mean),
                  "vlp_std": list(model.vlp.std), "skipped_prefix": MKT_SKIPPED_PREFIX},
    }
    was_training = model.training
    model.eval()
    try:
        return _write_bundle(out_dir, manifest, state, MKTImageGraph(model.student), ["global", "local"],
                             TextGraph(model.vlp, spec, model.prompt, half_tables=half_weights), spec,
                             model.vlp.tokenizer, overwrite, dynamo, half_weights, vocabulary)
    finally:
        model.train(was_training)


def export_clip_bundle(model_name: str, pretrained: str | None, out_dir: str | Path,
                       template: str | None = None, model_cfg: dict[str, Any] | None = None,
                       overwrite: bool = False, dynamo: bool = False, local_stream: bool | None = None,
                       patch_path: str = "value", top_k: int | None = None, name: str | None = None) -> Path:
    """Write any open_clip CLIP as a bundle of kind "clip" with the plain prompt.

    `pretrained` is an open_clip tag (downloaded through open_clip where there is internet), a local
    checkpoint file or open_clip folder, or None for random weights (tests). `model_cfg` replaces the
    registry's config of `model_name` (custom sizes).
    `local_stream` (default: whenever the image tower is a ViT) adds the local stream of
    `ClipTwoStreamGraph`, so the bundle scores with Eq. 3 and shows heat maps; a ResNet or timm tower
    stays global-only. `patch_path` is that graph's last-block switch; `top_k` defaults to MKT's ratio.
    A model whose text tower is a Hugging Face encoder (multilingual CLIPs, e.g. xlm-roberta-base-ViT-B-32;
    needs `transformers` here, not in the app) brings its tokenizer.json into the bundle, and its
    template defaults to the bare label "{}": labels come in any language, with no English around them.
    """
    import tempfile

    from mkt_core.model.config import VLPConfig
    from mkt_core.model.vlp import load_vlp

    vlp = load_vlp(VLPConfig(model_name=model_name, pretrained=pretrained, model_cfg=model_cfg)).eval()
    template = template or ("{}" if vlp.hf_text else CLIP_PROMPT_TEMPLATE)
    if "{}" not in template:
        raise ValueError(f"prompt template must contain '{{}}' for the label: {template!r}")
    extra_files: dict[str, bytes] = {}
    if vlp.hf_text:
        with tempfile.TemporaryDirectory() as folder:  # the runtime tokenizer holds the file's contents
            spec, tokenizer_info, extra_files[TOKENIZER_FILE], tokenizer = _hf_prompt(vlp, template, Path(folder))
    else:
        spec, tokenizer = PromptSpec.from_template(template, vlp.tokenizer, vlp.context_length), vlp.tokenizer
    if local_stream is None:
        local_stream = clip_has_patch_tokens(vlp.clip)
    grid = list(vlp.clip.visual.grid_size) if local_stream else [0, 0]
    num_patches = grid[0] * grid[1]
    manifest = {
        "format": FORMAT, "version": VERSION, "kind": "clip", "name": name or f"{model_name}:{pretrained or 'random'}",
        "embed_dim": vlp.embed_dim, "image_size": vlp.image_size, "mean": list(vlp.mean), "std": list(vlp.std),
        "resize": "center_crop", "patch_grid": grid, "num_patches": num_patches,
        "top_k": (top_k or clip_top_k(num_patches)) if local_stream else 0,
        "prompt": {**spec.to_dict(), "tuning": "plain"},
        "files": {"image_encoder": IMAGE_FILE, "text_encoder": TEXT_FILE, "weights": WEIGHTS_FILE},
        "torch": {"model_name": model_name, "model_cfg": vlp.model_cfg},
    }
    text_graph: nn.Module = TextGraph(vlp, spec)
    if vlp.hf_text:
        manifest["tokenizer"] = tokenizer_info
        # the tower's own config, so that the torch fallback rebuilds it without the hub
        manifest["torch"]["hf_config"] = json.loads(vlp.clip.text.config.to_json_string())
        text_graph = HFTextGraph(vlp.clip)
    if local_stream:
        manifest["patch_path"] = patch_path
        graph, outputs = ClipTwoStreamGraph(vlp.clip, patch_path), ["global", "local"]
    else:
        graph, outputs = ClipImageGraph(vlp.clip), ["global"]
    state = vlp.clip.state_dict()
    return _write_bundle(out_dir, manifest, state, graph, outputs, text_graph, spec, tokenizer, overwrite, dynamo,
                         extra_files=extra_files, text_inputs=["ids"] if vlp.hf_text else None)


def _write_bundle(out_dir: str | Path, manifest: dict[str, Any], state: dict[str, torch.Tensor],
                  image_graph: nn.Module, image_outputs: list[str], text_graph: nn.Module, spec: PromptSpec,
                  tokenizer, overwrite: bool, dynamo: bool, half_weights: bool = False,
                  vocabulary: list[str] | None = None, extra_files: dict[str, bytes] | None = None,
                  text_inputs: list[str] | None = None) -> Path:
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir}: already exists (pass overwrite=True to replace it)")
    work = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        size = manifest["image_size"]
        device = next(image_graph.parameters()).device
        images = torch.zeros(2, 3, size, size, device=device)  # batch 2: a batch-1 example can pin the batch axis
        _export_onnx(image_graph.eval(), (images,), work / IMAGE_FILE, ["images"], image_outputs, dynamo)
        ids, lengths = (torch.from_numpy(a).to(device) for a in spec.tokenize(["photo", "red car"], tokenizer))
        text_inputs = text_inputs or ["ids", "label_lengths"]
        _export_onnx(text_graph.eval(), (ids, lengths)[:len(text_inputs)], work / TEXT_FILE, text_inputs,
                     ["embeddings"], dynamo)
        for file_name, data in (extra_files or {}).items():
            (work / file_name).write_bytes(data)
        state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
        if half_weights:
            state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        save_file(_unshare(state), str(work / WEIGHTS_FILE), metadata={"format": FORMAT})
        manifest["fingerprint"] = fingerprint({k: v.numpy() for k, v in state.items()}, manifest)
        (work / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        if vocabulary:
            (work / VOCABULARY_FILE).write_text("".join(f"{label}\n" for label in vocabulary), encoding="utf-8")
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    if out_dir.exists():
        shutil.rmtree(out_dir)
    work.rename(out_dir)
    return out_dir


def _export_onnx(graph: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str],
                 dynamo: bool) -> None:
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # its fused attention op has no ONNX export
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporters' deprecation and tracer chatter
            _export_onnx_unguarded(graph, args, path, inputs, outputs, dynamo)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


def _export_onnx_unguarded(graph: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str],
                           dynamo: bool) -> None:
    if dynamo:
        batch = torch.export.Dim("batch")
        torch.onnx.export(graph, args, str(path), input_names=inputs, output_names=outputs, dynamo=True,
                          opset_version=OPSET, dynamic_shapes=tuple({0: batch} for _ in args),
                          external_data=False, verbose=False)
    else:
        axes = {name: {0: "batch"} for name in inputs + outputs}
        torch.onnx.export(graph, args, str(path), input_names=inputs, output_names=outputs, dynamo=False,
                          opset_version=OPSET, dynamic_axes=axes)


def _unshare(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors that share memory (tied weights): give each its own copy."""
    seen: set[int] = set()
    out = {}
    for key, value in state.items():
        ptr = value.untyped_storage().data_ptr()
        out[key] = value.clone() if ptr in seen else value
        seen.add(ptr)
    return out


@dataclass
class TorchModels:
    image: nn.Module
    text: nn.Module


def load_torch_models(bundle: Bundle) -> TorchModels:
    """The torch fallback: a bundle's encoders rebuilt from its weights.safetensors (no download)."""
    from mkt_core.model.from_bundle import bundle_weights, load_clip_weights, mkt_model

    state = bundle_weights(bundle)
    spec, info = bundle.prompt, bundle.manifest["torch"]
    if bundle.kind == "mkt":
        model = mkt_model(bundle, state).eval()
        return TorchModels(MKTImageGraph(model.student).eval(), TextGraph(model.vlp, spec, model.prompt).eval())
    if "hf_config" in info:
        clip = _hf_text_clip(info)
        text_graph: nn.Module = HFTextGraph(clip)
    else:
        from mkt_core.model.config import VLPConfig
        from mkt_core.model.vlp import load_vlp

        vlp = load_vlp(VLPConfig(model_name=info["model_name"], pretrained=None, model_cfg=info["model_cfg"]),
                       load_weights=False).eval()
        clip, text_graph = vlp.clip, TextGraph(vlp, spec)
    load_clip_weights(bundle, clip, state)
    image = ClipTwoStreamGraph(clip, bundle.manifest.get("patch_path", "value")) if bundle.num_patches \
        else ClipImageGraph(clip)
    return TorchModels(image.eval(), text_graph.eval())


def _hf_text_clip(info: dict[str, Any]) -> nn.Module:
    """A CLIP with a Hugging Face text tower, built from the manifest's copy of the tower's config (no hub)."""
    import copy
    import tempfile

    from mkt_core.model.vlp import build_clip

    model_cfg = copy.deepcopy(info["model_cfg"])
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "config.json").write_text(json.dumps(info["hf_config"]), encoding="utf-8")
        model_cfg["text_cfg"]["hf_model_name"] = folder
        return build_clip(model_cfg).eval()


def cli_export(checkpoint: str | Path, out: str | Path, overwrite: bool = False, half_weights: bool = False,
               name: str | None = None, vocabulary: str | Path | None = None) -> Path:
    """`mkt-train export CHECKPOINT --out DIR`: a saved checkpoint folder -> a bundle folder.

    `vocabulary` is a label file (one label a line; a TAB and what follows it, blank lines and "#"
    lines are ignored), such as the label file a model was trained with.
    """
    from mkt_core.data.generic import read_label_list
    from mkt_core.model.checkpoint import load_model

    labels = None
    if vocabulary is not None:
        labels = list(dict.fromkeys(read_label_list(vocabulary)))
        if not labels:
            raise ValueError(f"{vocabulary}: no labels in the vocabulary file")
    return export_bundle(load_model(checkpoint), out, name=name, overwrite=overwrite, half_weights=half_weights,
                         vocabulary=labels)
