"""mkt-train: train MKT (stage 1, stage 2), evaluate it, and convert or embed what it needs.

Each training subcommand reads a TOML config (trainer/configs/*.toml); every key of it is
also a flag, and a flag that is given wins over the file.
"""

import argparse
import dataclasses
import json
import sys
import types
import typing
from pathlib import Path

from mkt_core.train.config import FIELDS, build_config, parse_bool, read_toml

CONFIG_DIR = Path(__file__).parent / "configs"


def _flag_type(annotation):
    """The argparse type of a TrainConfig field (int, float, str, bool, list[int], optional)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = args[0]
    if typing.get_origin(annotation) is list:
        return "list", typing.get_args(annotation)[0]
    return "scalar", annotation


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML config file, or the name of one in trainer/configs (e.g. library); its "
                                         "[stage1] / [stage2] table applies to that stage; flags override it")
    for name, field in FIELDS.items():
        kind, base = _flag_type(field.type)
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        help_text = f"{field.metadata['help']} (default: {default})"
        flag = "--" + name.replace("_", "-")
        if kind == "list":
            parser.add_argument(flag, dest=name, type=base, nargs="+", default=None, help=help_text)
        elif base is bool:
            parser.add_argument(flag, dest=name, type=parse_bool, default=None, metavar="BOOL", help=help_text)
        else:
            parser.add_argument(flag, dest=name, type=base, default=None, help=help_text)


def _config_path(config: str | None) -> str | None:
    """A config file, or the name of one of trainer/configs/ (`--config library`)."""
    if config and not Path(config).exists() and (CONFIG_DIR / f"{config}.toml").is_file():
        return str(CONFIG_DIR / f"{config}.toml")
    return config


def _config_from(args, stage: int | None = None):
    overrides = {name: getattr(args, name) for name in FIELDS}
    return build_config(_config_path(args.config), overrides, stage)


def _library_data(config, args, stage: int):
    """`--data library:PATH`: the library's decisions as a generic data set in OUT/library-data, started from
    the library's model unless --init says otherwise. Unless given, no evaluation (there is no held-out
    split of a person's tags); a batch is never larger than the photos with decisions."""
    if not config.data:
        return config
    if not config.data.startswith("library:"):
        raise ValueError(f"--data takes library:PATH/library.sqlite, got {config.data!r}")
    from mkt_desktop.library.training_set import library_training_data

    found = library_training_data(config.data[len("library:"):], Path(config.out) / "library-data")
    print(f"mkt-train: {found['photos']} photos with decisions ({found['accepted']} accepted, {found['rejected']} "
          f"rejected) from {config.data[len('library:'):]}", file=sys.stderr)
    changes = {"dataset": "generic", "annotations": found["annotations"], "test_annotations": "",
               "label_file": found["labels"], "init": config.init or found["model"]}
    given = {name for name in ("eval_every", "batch_size") if getattr(args, name) is not None}
    if args.config:
        given |= set(read_toml(_config_path(args.config), stage))
    if "eval_every" not in given:
        changes["eval_every"] = 0
    changes["batch_size"] = min(config.batch_size, found["photos"])
    return dataclasses.replace(config, **changes)


def cmd_train(args, stage: int) -> int:
    from mkt_core.train.trainer import Trainer

    config = _library_data(_config_from(args, stage), args, stage)
    trainer = Trainer(config, stage)
    if args.resume:
        trainer.resume(args.resume)
    result = trainer.run()
    if trainer.dist.is_main:
        print(json.dumps(result))
    if trainer.dist.enabled:
        import torch.distributed as dist

        dist.destroy_process_group()
    return 130 if result["status"] == "interrupted" else 0


def cmd_eval(args) -> int:
    from mkt_core.model.checkpoint import load_model
    from mkt_core.train.evaluation import evaluate_split, write_eval_tables
    from mkt_core.train.trainer import eval_protocol, load_split, pick_device

    config = _config_from(args)
    checkpoint = args.checkpoint or config.init
    if not checkpoint:
        print("mkt-train eval: give the checkpoint folder to evaluate", file=sys.stderr)
        return 2
    device = pick_device(config.device)
    model = load_model(checkpoint).to(device)
    if config.model_overrides():  # e.g. --eval-resize squash, --score-mode paper
        model.config = model.config.replace(**config.model_overrides())
    mc = model.config
    split = load_split(config, "test", mc.image_size, mc.mean, mc.std, train=False, eval_resize=mc.eval_resize)
    results = evaluate_split(model, split, config.eval_batch_size, config.f1_k, device,
                             protocol=eval_protocol(config),
                             workers=config.workers)
    results["checkpoint"] = str(checkpoint)
    table = write_eval_tables(results, config.out, title=f"MKT evaluation of {checkpoint} on {split.name}")
    print(table.read_text(encoding="utf-8"))
    return 0


def cmd_convert_official(args) -> int:
    from mkt_core.model.checkpoint import save_model
    from mkt_core.model.config import get_preset
    from mkt_core.model.convert import convert_official

    preset = get_preset(args.preset)
    model = convert_official(args.image_checkpoint, args.text_checkpoint, preset, clip_weights=args.original_clip)
    clip = args.original_clip or f"{preset.vlp.model_name}/{preset.vlp.pretrained}"
    sources = [str(args.image_checkpoint), str(args.text_checkpoint), str(clip)]
    folder = save_model(model, args.out, extra={"converted_from": sources})
    print(f"wrote {folder}")
    return 0


def cmd_label_embeddings(args) -> int:
    from safetensors.torch import save_file

    from mkt_core.data.generic import read_label_list
    from mkt_core.model.checkpoint import load_model
    from mkt_core.model.config import get_preset
    from mkt_core.model.mkt import create_model

    labels = read_label_list(args.labels)
    if not labels:
        print(f"{args.labels}: no labels", file=sys.stderr)
        return 2
    if sum(bool(x) for x in (args.checkpoint, args.preset, args.config)) != 1:
        print("mkt-train label-embeddings: give one of --checkpoint (a trained model's prompt), --preset or "
              "--config (the fixed prompt and pretrained text encoder of a preset or a training config)",
              file=sys.stderr)
        return 2
    if args.checkpoint:
        model = load_model(args.checkpoint)
    else:
        # only the text side is used: the student is built without downloading its weights
        if args.config:
            train = build_config(args.config, {})
            config = get_preset(train.preset, **train.model_overrides())
            if train.vlp_pretrained is not None:
                config.vlp.pretrained = train.vlp_pretrained or None
        else:
            config = get_preset(args.preset)
        config.student.pretrained = False
        config.student.init_from_vlp = False
        model = create_model(config)
    embeddings = model.encode_labels(labels).detach().contiguous()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({"embeddings": embeddings}, str(out), metadata={"labels": json.dumps(labels),
                                                            "template": model.config.prompt_template})
    print(f"wrote {len(labels)} label embeddings of size {embeddings.shape[1]} to {out}")
    return 0


def cmd_export(args) -> int:
    from mkt_core.model.export import cli_export

    folder = cli_export(args.checkpoint, args.out, overwrite=args.overwrite, half_weights=args.half_weights,
                        name=args.name, vocabulary=args.vocabulary)
    print(f"wrote {folder}")
    return 0


def cmd_pretrain_vlp(args) -> int:
    from mkt_core.synthetic.pretrain import config_from_args, run_pretrain

    print(f"wrote {run_pretrain(config_from_args(args))}")
    return 0


def cmd_toy_benchmark(args) -> int:
    from mkt_core.synthetic.benchmark import config_from_args, run_benchmark
    from mkt_core.synthetic.results import publish

    config = config_from_args(args)
    results = run_benchmark(config, train=not args.collect)
    print((Path(config.out) / "results.md").read_text(encoding="utf-8"))
    print(f"wrote {Path(config.out) / 'results.json'}")
    if args.publish:
        written = publish(results, Path(config.out) / "units")
        print(f"published {written[0]} and {written[1]} ({len(written) - 2} unit files)")
    return 0


def cmd_demo_photos(args) -> int:
    from mkt_core.synthetic.world import WorldSpec, write_demo_photos

    csv_path = write_demo_photos(args.out, args.count, args.seed, WorldSpec(image_size=args.size))
    print(f"wrote {args.count} demo photos to {args.out} (what each shows: {csv_path})")
    return 0


def cmd_calibrate(args) -> int:
    """Fit the bundle's score -> confidence map on labelled photos (or the world's, for a world model)."""
    import tempfile

    from mkt_core.runtime.calibration import calibrate_bundle
    from mkt_core.synthetic.world import WorldSpec, write_demo_photos

    if (args.photos is None) == (args.world is None):
        print("mkt-train calibrate: give --photos LABELS_CSV or --world COUNT", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as work:
        if args.world is not None:  # held-out scenes (stream "eval"), half at 64 px, half at 160 px
            half = args.world // 2
            write_demo_photos(Path(work) / "64", half, args.seed, WorldSpec(image_size=64), stream="eval")
            write_demo_photos(Path(work) / "160", args.world - half, args.seed + 1, WorldSpec(image_size=160),
                              stream="eval")
            rows = ["path,labels\n"]
            for size in ("64", "160"):
                lines = (Path(work) / size / "labels.csv").read_text(encoding="utf-8").splitlines()[1:]
                rows += [f"{size}/{line}\n" for line in lines]
            labels_csv = Path(work) / "labels.csv"
            labels_csv.write_text("".join(rows), encoding="utf-8")
            description = (f"{args.world} held-out scenes of the synthetic world (stream eval, seeds {args.seed} "
                           f"and {args.seed + 1}, 64 and 160 px JPEGs)")
        else:
            labels_csv, description = Path(args.photos), args.description or ""
        calibration = calibrate_bundle(args.bundle, labels_csv, description)
    print(f"wrote the calibration of {args.bundle}: {len(calibration.scores)} knots, "
          f"50 % at score {calibration.score_at(0.5):.3f}, 90 % at {calibration.score_at(0.9):.3f}")
    return 0


def cmd_presets(args) -> int:
    from mkt_core.model.config import get_preset, list_presets

    for name in list_presets():
        config = get_preset(name)
        print(f"{name:18s} student={config.student.timm_name} vlp={config.vlp.model_name}/{config.vlp.pretrained} "
              f"D={config.embed_dim} k={config.top_k} head={config.head}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mkt-train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    for stage in (1, 2):
        what = ("stage 1: train the student and its two heads (L_rank + lambda * L_dist)" if stage == 1
                else "stage 2: tune the prompt context only (L_rank); needs --init STAGE1_CHECKPOINT")
        p = sub.add_parser(f"stage{stage}", help=what, description=what)
        _add_config_flags(p)
        p.add_argument("--resume", help="checkpoint folder of this stage to resume from (e.g. OUT/checkpoints/last)")
        p.set_defaults(func=lambda a, s=stage: cmd_train(a, s))

    p = sub.add_parser("eval", help="ZSL / GZSL table of a checkpoint on the test split (eval.json, eval.md)")
    _add_config_flags(p)
    p.add_argument("checkpoint", nargs="?", help="checkpoint folder (default: --init)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("convert-official", help="convert the authors' released checkpoints to this format")
    p.add_argument("image_checkpoint", help="released stage-1 image checkpoint (.pth)")
    p.add_argument("--text-checkpoint", help="released stage-2 text checkpoint (.pth)")
    p.add_argument("--original-clip",
                   help="CLIP's weights for the teacher and the text tower (the checkpoints hold neither): open_clip's "
                        "safetensors or bin, a state dict, OpenAI's TorchScript ViT-B-16.pt (read without running its "
                        "code) or an open_clip folder; default: the preset's, from open_clip's cache")
    p.add_argument("--preset", default="release-vit-b16", help="model preset to convert into")
    p.add_argument("--out", required=True, help="output checkpoint folder")
    p.set_defaults(func=cmd_convert_official)

    p = sub.add_parser("label-embeddings", help="precompute the fixed label embeddings of a vocabulary")
    p.add_argument("labels", help="text file, one label per line (a tab and anything after it is ignored)")
    p.add_argument("--checkpoint", help="checkpoint folder whose text encoder and prompt to use")
    p.add_argument("--preset", help="a preset whose text encoder to use instead (downloads its weights; "
                                    "'tiny' is random, for tests)")
    p.add_argument("--config", help="a training TOML config whose preset and vlp_pretrained to use instead")
    p.add_argument("--out", required=True, help="output .safetensors file")
    p.set_defaults(func=cmd_label_embeddings)

    p = sub.add_parser("export", help="export a checkpoint as a model bundle for the app (ONNX + safetensors)")
    p.add_argument("checkpoint", help="checkpoint folder (model.safetensors + config.json)")
    p.add_argument("--out", required=True, help="bundle folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bundle folder")
    p.add_argument("--half-weights", action="store_true",
                   help="a compact bundle: the torch fallback's weights and the text encoder's token tables in "
                        "float16 (the image encoder stays float32)")
    p.add_argument("--name", help="the model's name in the manifest (default: the config's)")
    p.add_argument("--vocabulary", help="label file of the labels the model was made for (e.g. its training "
                                        "label file); the app scores these at index time")
    p.set_defaults(func=cmd_export)

    from mkt_core.synthetic.pretrain import add_arguments as add_pretrain_arguments

    p = sub.add_parser("pretrain-vlp", help="pretrain the toy CLIP teacher on the synthetic world (offline)")
    add_pretrain_arguments(p)
    p.set_defaults(func=cmd_pretrain_vlp)

    from mkt_core.synthetic.benchmark import add_arguments as add_benchmark_arguments

    p = sub.add_parser("toy-benchmark", help="the proving ground's table on the synthetic world, with the shipped "
                                             "toy ViT teacher (resumable; results.json, results.md)")
    add_benchmark_arguments(p)
    p.set_defaults(func=cmd_toy_benchmark)

    p = sub.add_parser("demo-photos", help="write a folder of photos of the synthetic world (for the demo model)")
    p.add_argument("out", help="folder to write the JPEGs and labels.csv into")
    p.add_argument("--count", type=int, default=60, help="how many photos (default: 60)")
    p.add_argument("--seed", type=int, default=0, help="which photos: the same seed gives the same photos")
    p.add_argument("--size", type=int, default=160,
                   help="side in pixels (default: 160; the demo model sees them at 64, its input size)")
    p.set_defaults(func=cmd_demo_photos)

    p = sub.add_parser("calibrate", help="fit a bundle's score -> confidence map on labelled photos "
                                         "(stored in its manifest; the fingerprint does not change)")
    p.add_argument("bundle", help="the bundle folder")
    p.add_argument("--photos", metavar="LABELS_CSV", help="path,labels CSV (labels joined with |) of held-out photos")
    p.add_argument("--world", type=int, metavar="COUNT", help="instead: COUNT held-out scenes of the synthetic world")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--description", help="what the photos were (kept in the manifest)")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("presets", help="list the model presets")
    p.set_defaults(func=cmd_presets)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as exc:
        print(f"mkt-train {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
