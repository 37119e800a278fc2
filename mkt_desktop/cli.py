"""mkt-desktop: the photo library from the command line (bare `mkt-desktop` opens the app).

    mkt-desktop index ~/Pictures
    mkt-desktop search "black dog" --limit 20
    mkt-desktop labels add "birthday cake"
    mkt-desktop tags ~/Pictures/cake.jpg --accept "birthday cake"
    mkt-desktop export --xmp
"""

import argparse
import json
import sys

from mkt_desktop.library import LabelError


def _library(args):
    from mkt_desktop.library import Library

    options = {}
    if getattr(args, "device", None) and args.device != "auto":
        options["device"] = args.device
    return Library(db_path=args.db, model=args.model, engine_options=options)


def _emit(args, data, text: str) -> None:
    print(json.dumps(data, ensure_ascii=False) if args.json else text)


def cmd_index(args) -> int:
    lib = _library(args)
    bar = None
    if not args.json and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(unit="photo", file=sys.stderr, dynamic_ncols=True)

    def progress(p):
        if bar is not None:
            bar.total = p.total
            bar.n = p.done
            bar.set_postfix(rate=f"{p.rate:.1f}/s")
            bar.refresh()

    try:
        report = lib.index(args.folders, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    counts = report.counts()
    text = ", ".join(f"{k} {v}" for k, v in counts.items())
    if report.failures and not args.json:
        text += "\n" + "\n".join(f"  failed: {path}: {reason}" for path, reason in report.failures)
    _emit(args, counts, text)
    return 0


def cmd_search(args) -> int:
    lib = _library(args)
    hits, threshold = lib.search(args.text, limit=args.limit)
    data = [{"path": h.path, "score": round(h.score, 6)} for h in hits]
    lines = [f"{h.score:8.4f}{' *' if threshold is not None and h.score >= threshold else '  '} {h.path}"
             for h in hits]
    footer = f"(* at or above the threshold {threshold:.4f})" if threshold is not None else ""
    _emit(args, data, "\n".join(lines + [footer]) if lines else "no indexed photos")
    return 0


def cmd_labels(args) -> int:
    lib = _library(args)
    if args.action == "add":
        for text in args.text:
            lib.add_label(text, threshold=args.threshold)
    elif args.action == "remove":
        for text in args.text:
            lib.remove_label(text)
    elif args.action == "rename":
        lib.rename_label(args.text[0], args.text[1])
    infos = lib.labels(source=None if args.all else "user")
    data = [{"label": i.text, "threshold": i.effective_threshold, "automatic": i.threshold is None,
             "above_threshold": i.above_threshold, "source": i.source} for i in infos]
    text = "\n".join(f"{i.above_threshold:6d} photos  {i.text}"
                     + (f"  (threshold {i.effective_threshold:.4f}{', auto' if i.threshold is None else ''})"
                        if i.effective_threshold is not None else "") for i in infos)
    _emit(args, data, text or "no saved labels")
    return 0


def cmd_tags(args) -> int:
    lib = _library(args)
    for label in args.accept or []:
        lib.set_tag(args.photo, label, "accepted")
    for label in args.reject or []:
        lib.set_tag(args.photo, label, "rejected")
    for label in args.forget or []:
        lib.set_tag(args.photo, label, None)
    labels = lib.photo_labels(args.photo, limit=args.limit)
    data = [{"label": pl.label, "score": pl.score, "threshold": pl.threshold, "status": pl.status} for pl in labels]
    text = "\n".join(f"{'' if pl.score is None else f'{pl.score:8.4f}':>8}  {pl.status:8s}  {pl.label}"
                     for pl in labels)
    _emit(args, data, text or "no labels")
    return 0


def cmd_failures(args) -> int:
    lib = _library(args)
    failures = lib.failures()
    _emit(args, [{"path": p, "reason": r} for p, r in failures],
          "\n".join(f"{p}: {r}" for p, r in failures) or "no failures")
    return 0


def cmd_export(args) -> int:
    from mkt_desktop.library.export import write_csv, write_json

    lib = _library(args)
    result: dict = {}
    if args.xmp:
        written, problems = lib.export_xmp()
        result["xmp_written"] = written
        result["xmp_problems"] = [{"path": p, "reason": r} for p, r in problems]
    rows = lib.export_rows() if (args.csv or args.json_file) else []
    if args.csv:
        write_csv(rows, args.csv)
        result["csv"] = args.csv
    if args.json_file:
        write_json(rows, args.json_file)
        result["json"] = args.json_file
    if not result:
        print("mkt-desktop export: give --xmp, --csv FILE or --json-file FILE", file=sys.stderr)
        return 2
    _emit(args, result, "\n".join(f"{k}: {v}" for k, v in result.items()))
    return 0


def _cache_dir(args):
    from pathlib import Path

    from mkt_desktop.paths import default_data_dir

    db = Path(args.db).expanduser() if args.db else default_data_dir() / "library.sqlite"
    return db.parent / "cache"  # where the library keeps the models it makes


def cmd_models(args) -> int:
    from mkt_desktop.library.catalogue import add_official, catalogue

    if args.action == "add-official":
        if not args.checkpoints or len(args.checkpoints) > 2:
            print("mkt-desktop models add-official: give FIRST_STAGE [SECOND_STAGE]", file=sys.stderr)
            return 2
        first, second = args.checkpoints[0], (args.checkpoints[1] if len(args.checkpoints) > 1 else None)
        folder = add_official(first, second, _cache_dir(args), clip_weights=args.clip, name=args.name,
                              preset=args.preset, overwrite=args.overwrite)
        _emit(args, {"model": str(folder)}, f"added {folder}\nuse it with --model {folder} (or choose it in Settings)")
        return 0
    choices = catalogue(_cache_dir(args), speed=not args.no_speed)
    if args.json:
        _emit(args, [c.to_dict() for c in choices], "")
        return 0
    lines = []
    for heading, installed in (("Installed", True), ("Can be had", False)):
        lines.append(heading)
        for c in (c for c in choices if c.installed == installed):
            facts = []
            if c.two_streams is not None:
                facts.append("global + local stream, heat maps" if c.two_streams else "global stream only, no heat map")
            if c.size_mb is not None:
                facts.append(f"{c.size_mb:.0f} MB")
            if c.download_mb:
                facts.append(f"download about {c.download_mb:,} MB once")
            if c.photos_per_second:
                facts.append(f"{c.photos_per_second:.1f} photos/s here")
            lines.append(f"  {c.title}" + (f"  [{'; '.join(facts)}]" if facts else ""))
            lines.append(f"      {c.gives}")
            if c.spec:
                lines.append(f"      --model {c.spec}")
            if c.how:
                lines.append(f"      how: {c.how}")
    print("\n".join(lines))
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", help="library database (default: the user data folder)")
    common.add_argument("--model", default="demo",
                        help="'demo', a bundle folder, or an open_clip model like clip:ViT-B-16/openai")
    common.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    common.add_argument("--json", action="store_true", help="machine-readable output")

    parser = argparse.ArgumentParser(prog="mkt-desktop", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("index", parents=[common], help="index folders (all library folders when none given)")
    p.add_argument("folders", nargs="*")
    p.set_defaults(func=cmd_index)
    p = sub.add_parser("search", parents=[common], help="photos that match any text, best first")
    p.add_argument("text")
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(func=cmd_search)
    p = sub.add_parser("labels", parents=[common], help="saved labels: add, list, remove, rename")
    p.add_argument("action", choices=("add", "list", "remove", "rename"))
    p.add_argument("text", nargs="*")
    p.add_argument("--threshold", type=float, help="score threshold for added labels (default: automatic)")
    p.add_argument("--all", action="store_true", help="list the default vocabulary too")
    p.set_defaults(func=cmd_labels)
    p = sub.add_parser("tags", parents=[common], help="a photo's labels; accept or reject some")
    p.add_argument("photo")
    p.add_argument("--accept", action="append", metavar="LABEL")
    p.add_argument("--reject", action="append", metavar="LABEL")
    p.add_argument("--forget", action="append", metavar="LABEL")
    p.add_argument("--limit", type=int, default=10)
    p.set_defaults(func=cmd_tags)
    p = sub.add_parser("failures", parents=[common], help="files that could not be indexed, and why")
    p.set_defaults(func=cmd_failures)
    p = sub.add_parser("export", parents=[common], help="write XMP sidecars, CSV or JSON")
    p.add_argument("--xmp", action="store_true", help="dc:subject in photo.jpg.xmp beside each photo")
    p.add_argument("--csv", metavar="FILE")
    p.add_argument("--json-file", metavar="FILE")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("models", parents=[common], help="the models installed and those that can be had; "
                                                        "add-official converts the authors' checkpoints")
    p.add_argument("action", nargs="?", default="list", choices=("list", "add-official"))
    p.add_argument("checkpoints", nargs="*", metavar="CHECKPOINT",
                   help="add-official: the authors' first_stage and second_stage files")
    p.add_argument("--clip", help="add-official: CLIP ViT-B/16's weights (OpenAI's ViT-B-16.pt, open_clip's "
                                  "safetensors or folder); default: open_clip's download or cache")
    p.add_argument("--name", default="mkt-release", help="add-official: the new model's name")
    p.add_argument("--preset", default="release-vit-b16", help=argparse.SUPPRESS)  # tests: tiny-release
    p.add_argument("--overwrite", action="store_true", help="add-official: replace a model of that name")
    p.add_argument("--no-speed", action="store_true", help="list without measuring each installed model's speed")
    p.set_defaults(func=cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        try:
            from mkt_desktop.app import main as app_main
        except ImportError:
            parser.print_help()
            return 0
        return app_main()
    if args.command == "labels" and args.action in ("add", "remove") and not args.text:
        parser.error(f"labels {args.action} needs at least one label")
    if args.command == "labels" and args.action == "rename" and len(args.text) != 2:
        parser.error("labels rename needs OLD NEW")
    try:
        return args.func(args)
    except (LabelError, KeyError, FileNotFoundError, ValueError, RuntimeError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"mkt-desktop {args.command}: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
