import pytest
import torch
import torch.nn.functional as F

from mkt_core.model.config import get_preset, list_presets
from mkt_core.model.mkt import create_model
from mkt_core.train.metrics import mean_average_precision


def _plain_prompt_embedding(model, label, normalize=True):
    tokens = model.vlp.tokenizer([f"There is a {label} in the scene"])
    features = model.vlp.clip.encode_text(tokens)
    return (F.normalize(features, dim=-1) if normalize else features)[0]


def test_presets_are_listed_and_unknown_names_refused():
    assert {"paper-vit-b16", "release-vit-b16", "tiny"} <= set(list_presets())
    paper = get_preset("paper-vit-b16")
    assert (paper.top_k, paper.embed_dim, paper.image_size, paper.head) == (18, 512, 224, "two_stream")
    assert paper.vlp.model_name == "ViT-B-16" and paper.vlp.pretrained == "openai"
    release = get_preset("release-vit-b16")
    assert release.head == "shared_projection" and release.student.init_from_vlp
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("vit-huge")


def test_tiny_model_shapes(tiny_model):
    images = torch.randn(2, 3, 64, 64)
    global_emb, local_emb = tiny_model.encode_image(images)
    assert global_emb.shape == (2, 64)
    assert local_emb.shape == (2, tiny_model.student.num_patches, 64) == (2, 64, 64)
    assert tiny_model(images, ["dog", "cat", "red car"]).shape == (2, 3)
    assert tiny_model.teacher_features(images).shape == (2, 64)


@pytest.mark.parametrize("preset", ["tiny", "tiny-release"])
def test_untuned_prompt_equals_the_vlp_text_encoder_on_the_plain_prompt(preset):
    model = create_model(preset, normalize_label_embeddings=True)
    labels = ["black dog", "birthday cake", "foggy harbour", "café crème", "日本の犬"]
    z = model.encode_labels(labels)
    for i, label in enumerate(labels):
        assert torch.allclose(z[i], _plain_prompt_embedding(model, label), atol=1e-5)
    assert torch.allclose(z.norm(dim=-1), torch.ones(len(labels)))


def test_the_release_scores_with_clips_raw_text_features():
    """label_emb.pt and the release's prompt learner are un-normalised CLIP text features; in its score mode
    (each stream normalised across labels) a label's norm changes the ranking, so the switch matters."""
    model = create_model("tiny-release")
    assert not model.config.normalize_label_embeddings
    labels = ["black dog", "birthday cake", "foggy harbour"]
    z = model.encode_labels(labels)
    for i, label in enumerate(labels):
        assert torch.allclose(z[i], _plain_prompt_embedding(model, label, normalize=False), atol=1e-5)
    assert not torch.allclose(z.norm(dim=-1), torch.ones(len(labels)), atol=1e-3)
    normalised = create_model("tiny-release", normalize_label_embeddings=True)
    normalised.load_state_dict(model.state_dict())
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(model(images, labels), normalised(images, labels), atol=1e-4)
    assert get_preset("release-vit-b16").normalize_label_embeddings is False
    assert get_preset("paper-vit-b16").normalize_label_embeddings is True


def test_paper_student_is_imagenet_1k_pretrained():
    """The paper's student is an ImageNet-1k ViT-B/16; timm's default tag for the name is ImageNet-21k pretrained."""
    import timm

    name = get_preset("paper-vit-b16").student.timm_name
    cfg = timm.models.get_pretrained_cfg(name)
    assert cfg.tag == "augreg_in1k" and cfg.hf_hub_id == "timm/vit_base_patch16_224.augreg_in1k"
    assert "21k" not in cfg.tag
    assert tuple(cfg.mean) == get_preset("paper-vit-b16").mean  # the preset normalises as those weights expect


@pytest.mark.slow
def test_the_release_fine_tuning_scope_on_the_paper_student():
    """Paper preset: all 12 blocks train at the full lr. --fix-layer 10 --layer-decay 0.65: the release's scope
    (the last two blocks, scaled 0.65^2 and 0.65, and the heads at the full lr)."""
    from mkt_core.train.config import TrainConfig
    from mkt_core.train.trainer import build_optimizer

    config = get_preset("paper-vit-b16")
    config.student.pretrained = False
    full = create_model(config, load_weights=False)
    build_optimizer(full, TrainConfig(), lr=1e-3)
    trained_blocks = {n.split(".")[3] for n, p in full.named_parameters()
                      if p.requires_grad and n.startswith("student.backbone.blocks.")}
    assert trained_blocks == {str(i) for i in range(12)}
    scoped = create_model(config, load_weights=False)
    optimizer = build_optimizer(scoped, TrainConfig(fix_layer=10, layer_decay=0.65), lr=1e-3)
    trained_blocks = {n.split(".")[3] for n, p in scoped.named_parameters()
                      if p.requires_grad and n.startswith("student.backbone.blocks.")}
    assert trained_blocks == {"10", "11"}
    params = dict(scoped.named_parameters())
    lr_of = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    assert lr_of[id(params["student.backbone.blocks.10.attn.qkv.weight"])] == pytest.approx(1e-3 * 0.65 ** 2)
    assert lr_of[id(params["student.backbone.blocks.11.attn.qkv.weight"])] == pytest.approx(1e-3 * 0.65)
    assert lr_of[id(params["student.global_head.weight"])] == pytest.approx(1e-3)


def test_distillation_skips_images_without_a_seen_positive_as_the_release():
    """The release drops images without a seen positive before the forward pass: they are not distilled."""
    torch.manual_seed(0)
    images = torch.randn(3, 3, 64, 64)
    targets = torch.tensor([[1, -1, -1], [-1, 1, -1], [-1, -1, -1]])  # the last image shows no seen label
    labels = ["dog", "cat", "car"]
    model = create_model("tiny")
    assert model.config.distill_images == "with_positive"
    model.train()
    with torch.no_grad():
        batch = model.training_loss(images, targets, labels)
        kept = model.training_loss(images[:2], targets[:2], labels)
        assert batch.distill.item() == pytest.approx(kept.distill.item(), rel=1e-5)
        model.config = model.config.replace(distill_images="all")
        every = model.training_loss(images, targets, labels)
        assert every.distill.item() != pytest.approx(kept.distill.item(), rel=1e-3)
        # a batch with no positive at all distils nothing, and stays finite
        model.config = model.config.replace(distill_images="with_positive")
        none = model.training_loss(images[2:], targets[2:], labels)
        assert none.distill.item() == 0 and torch.isfinite(none.total)


def test_label_embeddings_are_cached_and_refreshed_after_prompt_changes(tiny_model):
    first = tiny_model.encode_labels(["dog", "cat"])
    assert tiny_model.encode_labels(["cat"])[0] is not None
    assert set(tiny_model._label_cache) == {"dog", "cat"}
    with torch.no_grad():
        tiny_model.prompt.ctx_prefix.add_(0.5)
    second = tiny_model.encode_labels(["dog", "cat"])
    assert not torch.allclose(first, second)


def test_label_longer_than_the_context_is_truncated_with_a_warning(tiny_model):
    long_label = " ".join(["word"] * 100)
    with pytest.warns(UserWarning, match="only the first"):
        z = tiny_model.encode_labels([long_label, "dog"])
    assert z.shape == (2, 64) and torch.isfinite(z).all()
    with pytest.raises(ValueError, match="no text"):
        tiny_model.encode_labels(["   "])


def _grads(module):
    return {n: p.grad for n, p in module.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


@pytest.mark.parametrize("preset", ["tiny", "tiny-release"])
def test_stage_two_trains_only_the_prompt_context(preset):
    model = create_model(preset)
    model.set_stage(2)
    model.train()
    images = torch.randn(4, 3, 64, 64)
    targets = torch.tensor([[1, -1, -1], [-1, 1, -1], [-1, -1, 1], [1, 1, -1]])
    model.training_loss(images, targets, ["dog", "cat", "car"]).total.backward()
    trained = set(_grads(model))
    expected = {"prompt.ctx_prefix", "prompt.ctx_suffix"} if preset == "tiny" else {"prompt.token_table.weight"}
    assert trained == expected
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == expected


def test_stage_one_trains_student_and_heads_not_teacher_or_prompt(tiny_model):
    tiny_model.train()
    images = torch.randn(4, 3, 64, 64)
    targets = torch.tensor([[1, -1, -1], [-1, 1, -1], [-1, -1, 1], [1, 1, -1]])
    out = tiny_model.training_loss(images, targets, ["dog", "cat", "car"])
    assert out.distill is not None and out.total.item() == pytest.approx(out.rank.item() + out.distill.item(), rel=1e-5)
    out.total.backward()
    trained = set(_grads(tiny_model))
    assert any(n.startswith("student.backbone.") for n in trained)
    assert any(n.startswith("student.global_head.") for n in trained)
    assert any(n.startswith("student.local_head.") for n in trained)
    assert not any(n.startswith(("vlp.", "prompt.")) for n in trained)


def test_tiny_model_overfits_a_batch_of_32_images():
    torch.manual_seed(0)
    model = create_model("tiny")
    model.train()
    labels = [f"label {i}" for i in range(10)]
    images = torch.randn(32, 3, 64, 64)
    targets = (torch.rand(32, 10) < 0.3).long() * 2 - 1
    targets[torch.arange(32), torch.randint(0, 10, (32,))] = 1  # every image has a positive
    label_emb = model.encode_labels(labels)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=5e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 200)
    losses = []
    for _ in range(200):
        optimizer.zero_grad()
        out = model.training_loss(images, targets, label_emb)
        out.total.backward()
        optimizer.step()
        schedule.step()
        losses.append(out.rank.item())
    model.eval()
    with torch.no_grad():
        scores = model(images, label_emb)
    assert losses[-1] < 0.2 * losses[0]
    assert mean_average_precision(scores.numpy(), targets.numpy()) > 0.95
