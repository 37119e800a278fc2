"""mkt-desktop: the photo library from the command line (with no command, or only --db / --model /
--settings, it opens the window).

    mkt-desktop index ~/Pictures
    mkt-desktop search "black dog" --limit 20 --sort newest --taken-from 2023
    mkt-desktop photos --folder ~/Pictures/2023 --sort oldest
    mkt-desktop labels add "birthday cake"
    mkt-desktop tags ~/Pictures/cake.jpg --accept "birthday cake"
    mkt-desktop similar ~/Pictures/cake.jpg
    mkt-desktop where ~/Pictures/cake.jpg "birthday cake" --json
    mkt-desktop export --xmp
"""

import argparse
import json
import math
import os
import sys

SORT_HELP = "best (search score; by path for photos), newest or oldest (date taken), name"


class UsageError(Exception):
    """A command line argparse cannot make sense of (rc 2)."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise UsageError(f"{self.prog}: error: {message}")


def _library(args, needs_model: bool = True):
    """The library of --db on --model; the model is checked first, so a wrong one never creates a database."""
    from mkt_desktop.library import Library
    from mkt_desktop.library.model_source import check_model

    if needs_model:
        check_model(args.model)
    options = {}
    if getattr(args, "device", None) and args.device != "auto":
        options["device"] = args.device
    library = Library(db_path=args.db, model=args.model, engine_options=options)
    _OPENED.append(library)
    return library


_OPENED: list = []  # the libraries this command opened: main closes them when it ends


def _view(args):
    from mkt_desktop.library.browse import View, parse_day, parse_last_day

    return View(folder=args.folder, taken_from=parse_day(args.taken_from) if args.taken_from else None,
                taken_to=parse_last_day(args.taken_to) if args.taken_to else None, sort=args.sort)


def _photo_lines(rows, threshold=None) -> list[str]:
    lines = []
    for row in rows:
        score = "" if row.score is None else f"{row.score:8.4f}"
        star = " *" if threshold is not None and row.score is not None and row.score >= threshold else "  "
        lines.append(f"{score}{star if score else ''} {row.taken:%Y-%m-%d %H:%M}  {row.path}")
    return lines


def _json_safe(data):
    """Data as strict JSON holds it: a non-finite number (which json.dumps writes as NaN) becomes null,
    a file name that is not UTF-8 its readable form."""
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, str):
        return _readable(data)
    if isinstance(data, dict):
        return {key: _json_safe(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [_json_safe(value) for value in data]
    return data


def _readable(text: str) -> str:
    """A file name that is not UTF-8 (surrogate-escaped bytes in Python's str) as \\xNN escapes:
    readable, and printable on any terminal (printing the str itself would raise)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _emit(args, data, text: str) -> None:
    print(json.dumps(_json_safe(data), ensure_ascii=False, allow_nan=False) if args.json else _readable(text))


def _warn(args, what: str) -> None:
    print(_readable(f"mkt-desktop {args.command}: warning: {what}"), file=sys.stderr)


def cmd_index(args) -> int:
    from pathlib import Path

    for folder in args.folders:  # before the database is created
        path = Path(folder).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"{path.resolve()}: no such folder")
        if not path.is_dir():
            raise NotADirectoryError(f"{path.resolve()}: not a folder (a file)")
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
        report = lib.index(args.folders, progress=progress, retry_failed=args.retry_failed)
    finally:
        if bar is not None:
            bar.close()
    for label, reason in report.skipped_labels:
        _warn(args, f"label {label!r} not scored: {reason} (rename or remove it)")
    counts = report.counts()
    for line in report.repairs:
        _warn(args, f"repaired: {line}")
    text = ", ".join(f"{k} {v}" for k, v in counts.items())
    if report.failures and not args.json:
        text += "\n" + "\n".join(f"  failed: {path}: {reason}" for path, reason in report.failures)
    _emit(args, counts, text)
    return 0


def _percent(value: float | None) -> str:
    return "" if value is None else f"{100 * value:5.1f} %"


def cmd_search(args) -> int:
    lib = _library(args)
    view = _view(args)
    if view.filtered or view.sort != "best":  # the best --limit of the view's photos, in its order
        hits, threshold = lib.search(args.text, limit=args.limit, among=lib.view_photo_ids(view))
        rows = lib.browse(view, hits)
        listed = [{"path": r.path, "score": round(r.score, 6), "taken": r.taken.isoformat()} for r in rows]
        footer = f"(* at or above the threshold {threshold:.4f})" if threshold is not None else ""
        _emit(args, listed, "\n".join(_photo_lines(rows, threshold) + [footer]) if rows else "no photos")
        return 0
    result = lib.search(args.text, limit=args.limit)
    hits, threshold = result
    data = {"hits": [{"path": h.path, "score": round(h.score, 6), "confidence": round(h.confidence, 4)}
                     for h in hits],
            "threshold": threshold, "threshold_confidence": result.threshold_confidence, "note": result.note}
    lines = [f"{_percent(h.confidence)}{' *' if threshold is not None and h.score >= threshold else '  '} {h.path}"
             for h in hits]
    footer = (f"(* at or above the threshold, {_percent(result.threshold_confidence).strip()})"
              if threshold is not None else "")
    if result.note:
        footer = result.note
    if result.warning:
        _warn(args, result.warning)
    _emit(args, data, "\n".join(lines + [footer]) if lines else "no indexed photos")
    return 0


def cmd_photos(args) -> int:
    lib = _library(args, needs_model=False)
    rows = lib.browse(_view(args))
    if args.limit:
        rows = rows[:args.limit]
    _emit(args, [{"path": r.path, "taken": r.taken.isoformat()} for r in rows],
          "\n".join(_photo_lines(rows)) or "no photos")
    return 0


def cmd_folders(args) -> int:
    lib = _library(args, needs_model=False)
    if args.action == "remove":
        for path in args.paths:
            lib.remove_folder(path)
    folders = lib.folders()
    _emit(args, folders, "\n".join(folders) or "no folders (add one with `mkt-desktop index FOLDER`)")
    return 0


def cmd_similar(args) -> int:
    lib = _library(args)
    hits = lib.similar(args.photo, limit=args.limit)
    _emit(args, [{"path": h.path, "similarity": round(h.score, 6)} for h in hits],
          "\n".join(f"{h.score:8.4f}  {h.path}" for h in hits) or "no other indexed photos")
    return 0


def cmd_train(args) -> int:
    """Train on my tags: a new model from the library's decisions, starting from --model (training_job.py)."""
    import signal

    from mkt_desktop.library.training_job import plan_training, run_training

    lib = _library(args)
    if lib.read_only:
        raise PermissionError(f"{lib.db_path}: the library is read-only; a training run writes its model beside it")
    plan = plan_training(lib, name=args.name, device=args.device, epochs=args.epochs, start_model=lib.bundle.path)
    counts = plan.counts
    _warn_or_say = (lambda text: None) if args.json else (lambda text: print(text, file=sys.stderr, flush=True))
    _warn_or_say(f"training on {counts['photos']} photos ({counts['accepted']} accepted, {counts['rejected']} "
                 f"rejected tags) from {lib.bundle.name}; Ctrl-C stops it")
    stop = {"asked": False}
    previous = signal.signal(signal.SIGINT, lambda *_: stop.update(asked=True))
    shown = {"line": ""}

    def progress(p):
        line = f"{p.done:4.0%}  {p.message}"
        if line != shown["line"]:
            shown["line"] = line
            _warn_or_say(line)

    try:
        report = run_training(plan, progress=progress, cancel=lambda: stop["asked"])
    finally:
        signal.signal(signal.SIGINT, previous)
    data = {"bundle": str(report.bundle) if report.bundle else None, "cancelled": report.cancelled,
            "photos": report.photos, "accepted": report.accepted, "rejected": report.rejected,
            "seconds": round(report.seconds, 1), "run_folder": str(report.run_folder)}
    if report.cancelled:
        _emit(args, data, f"cancelled: no new model (the run's checkpoints are in {report.run_folder})")
        return 130
    _emit(args, data, f"trained in {report.seconds:.0f} s: {report.bundle}\nuse it with --model {report.bundle} "
                      "(or choose it in the window's Settings)")
    return 0


def cmd_where(args) -> int:
    from mkt_desktop.library.where import where_text

    result = _library(args).where(args.photo, args.label)
    _emit(args, result, where_text(result))
    return 0


def cmd_labels(args) -> int:
    lib = _library(args)
    threshold = args.threshold
    if args.confidence is not None:
        threshold = lib.score_at(args.confidence / 100.0)
    if args.action == "add":
        lib.add_labels(args.text, threshold=threshold)  # all checked first: one bad label saves none
    elif args.action == "remove":
        for text in args.text:
            lib.remove_label(text)
    elif args.action == "rename":
        lib.rename_label(args.text[0], args.text[1])
    elif args.action == "threshold":
        lib.set_threshold(args.text[0], threshold)
    elif args.action == "forget-corrections":
        for text in args.text:
            lib.forget_corrections(text)
    infos = lib.labels(source=None if args.all else "user")
    data = [{"label": i.text, "threshold": i.effective_threshold, "threshold_confidence": i.threshold_confidence,
             "automatic": i.threshold is None, "above_threshold": i.above_threshold, "source": i.source,
             "learned_from": i.learned_from}
            for i in infos]
    text = "\n".join(f"{i.above_threshold:6d} photos  {i.text}"
                     + (f"  (threshold {_percent(i.threshold_confidence).strip()}"
                        f"{', automatic' if i.threshold is None else ''})"
                        if i.effective_threshold is not None else "")
                     + (f"  (learned from {i.learned_from} decision{'s' if i.learned_from != 1 else ''})"
                        if i.learned_from else "") for i in infos)
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
    data = [{"label": pl.label, "score": pl.score, "confidence": pl.confidence, "threshold": pl.threshold,
             "status": pl.status} for pl in labels]

    def above(pl) -> bool:
        return pl.score is not None and pl.threshold is not None and pl.score >= pl.threshold

    text = "\n".join(f"{_percent(pl.confidence):>7}{' *' if above(pl) else '  '}  {pl.status:8s}  {pl.label}"
                     for pl in labels)
    _emit(args, data, text or "no labels")
    return 0


def cmd_failures(args) -> int:
    lib = _library(args, needs_model=False)
    failures = lib.failures()
    _emit(args, [{"path": p, "reason": r} for p, r in failures],
          "\n".join(f"{p}: {r}" for p, r in failures) or "no failures")
    return 0


def cmd_export(args) -> int:
    from mkt_desktop.library.export import write_csv, write_json

    if not (args.xmp or args.csv or args.json_file or args.training_set):
        raise UsageError("mkt-desktop export: give --xmp, --csv FILE, --json-file FILE or --training-set FOLDER")
    lib = _library(args)
    result: dict = {}
    errors = []  # one export that cannot be written does not stop the others
    if args.xmp:
        written, problems = lib.export_xmp()
        result["xmp_written"] = written
        result["xmp_problems"] = [{"path": p, "reason": r} for p, r in problems]
        for path, reason in problems:
            _warn(args, f"{path}: {reason}")
    if args.training_set:
        from mkt_desktop.library.training_set import write_training_set

        try:
            result["training_set"] = write_training_set(lib, args.training_set)
        except OSError as exc:
            errors.append(f"{args.training_set}: {exc}")
    rows = lib.export_rows() if (args.csv or args.json_file) else []
    for key, path, writer in (("csv", args.csv, write_csv), ("json", args.json_file, write_json)):
        if path:
            try:
                writer(rows, path)
                result[key] = path
            except (OSError, ValueError) as exc:
                errors.append(f"{path}: {exc}")
    for error in errors:
        print(f"mkt-desktop export: error: {error}", file=sys.stderr)
    _emit(args, result, "\n".join(f"{k}: {v}" for k, v in result.items() if k != "xmp_problems"))
    return 1 if errors else 0


def _cache_dir(args):
    from pathlib import Path

    from mkt_desktop.paths import default_data_dir

    db = Path(args.db).expanduser() if args.db else default_data_dir() / "library.sqlite"
    return db.parent / "cache"  # where the library keeps the models it makes


def cmd_models(args) -> int:
    from mkt_desktop.library.catalogue import add_official, catalogue

    if args.action == "add-official":
        if not args.checkpoints or len(args.checkpoints) > 2:
            raise UsageError("mkt-desktop models add-official: give FIRST_STAGE [SECOND_STAGE]")
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


MODEL_HELP = ("'demo', a bundle folder, or an open_clip CLIP: clip:NAME/TAG (clip:ViT-B-16/openai, downloaded "
              "once) or clip:NAME/PATH to a local weights file (clip:ViT-B-16//home/me/open_clip_pytorch_model.bin)")


def cmd_check(args) -> int:
    """Report damage to the database and the embedding store, and repair what can be repaired."""
    from mkt_desktop.library.db import DatabaseError

    try:
        problems = _library(args).check()
    except DatabaseError as exc:
        _emit(args, {"problems": [str(exc)], "healthy": False}, f"damaged: {exc}")
        return 1
    text = "\n".join(f"found and repaired: {line}" for line in problems) or "no damage found"
    _emit(args, {"problems": problems, "healthy": not problems}, text)
    return 0


def _add_view_options(p: argparse.ArgumentParser, default_sort: str = "best") -> None:
    p.add_argument("--folder", help="only the photos of this library folder")
    p.add_argument("--taken-from", metavar="DATE", help="taken on or after: YYYY, YYYY-MM or YYYY-MM-DD")
    p.add_argument("--taken-to", metavar="DATE", help="taken on or before: YYYY, YYYY-MM or YYYY-MM-DD")
    p.add_argument("--sort", default=default_sort, choices=("best", "newest", "oldest", "name"), help=SORT_HELP)


def build_parser() -> argparse.ArgumentParser:
    common = Parser(add_help=False)
    common.add_argument("--db", help="library database (default: the user data folder)")
    common.add_argument("--model", default="demo", help=MODEL_HELP)
    common.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    common.add_argument("--json", action="store_true", help="machine-readable output (errors too: {\"error\": ...})")

    parser = Parser(prog="mkt-desktop", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", dest="window_db", metavar="PATH", help="open the window on this library database")
    parser.add_argument("--model", dest="window_model", metavar="SPEC",
                        help=f"open the window on this model ({MODEL_HELP})")
    parser.add_argument("--settings", dest="window_settings", metavar="FILE", help="the window's settings file")
    sub = parser.add_subparsers(dest="command", parser_class=Parser)
    p = sub.add_parser("index", parents=[common], help="index folders (all library folders when none given)")
    p.add_argument("folders", nargs="*")
    p.add_argument("--retry-failed", action="store_true",
                   help="read every failed file again (failures that may pass are retried anyway)")
    p.set_defaults(func=cmd_index)
    p = sub.add_parser("search", parents=[common], help="photos that match any text, best first")
    p.add_argument("text")
    p.add_argument("--limit", type=int, default=20)
    _add_view_options(p)
    p.set_defaults(func=cmd_search)
    p = sub.add_parser("photos", parents=[common], help="indexed photos of a folder or a date range, in an order")
    _add_view_options(p)
    p.add_argument("--limit", type=int, default=0, help="at most this many (default: all)")
    p.set_defaults(func=cmd_photos)
    p = sub.add_parser("folders", parents=[common], help="the library's folders: list, or remove some")
    p.add_argument("action", nargs="?", default="list", choices=("list", "remove"))
    p.add_argument("paths", nargs="*", metavar="FOLDER")
    p.set_defaults(func=cmd_folders)
    p = sub.add_parser("similar", parents=[common], help="more like this: the photos most like a photo")
    p.add_argument("photo")
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(func=cmd_similar)
    p = sub.add_parser("train", parents=[common], help="train a new model on the library's accepted and rejected "
                       "tags, starting from --model (mkt-train in the background; the GPU when there is one)")
    p.add_argument("--name", help="the new model's folder name in the cache's trained/ folder (default: mine-DATE)")
    p.add_argument("--epochs", type=int, help="passes over the tagged photos (default: trainer/configs/library.toml's)")
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("where", parents=[common], help="where in a photo a label is: its score on each patch")
    p.add_argument("photo")
    p.add_argument("label")
    p.set_defaults(func=cmd_where)
    p = sub.add_parser("labels", parents=[common], help="saved labels: add, list, remove, rename, threshold; "
                       "forget-corrections: scores stop learning from the decisions made so far (they stay)")
    p.add_argument("action", choices=("add", "list", "remove", "rename", "threshold", "forget-corrections"))
    p.add_argument("text", nargs="*")
    p.add_argument("--threshold", type=float, help="raw score threshold (default: automatic)")
    p.add_argument("--confidence", type=float, metavar="PERCENT",
                   help="threshold as a confidence, 0 to 100 (default: automatic)")
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
    p = sub.add_parser("check", parents=[common], help="find damage to the library and repair what can be")
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("export", parents=[common], help="write XMP sidecars, CSV or JSON")
    p.add_argument("--xmp", action="store_true", help="dc:subject in photo.jpg.xmp beside each photo")
    p.add_argument("--csv", metavar="FILE")
    p.add_argument("--json-file", metavar="FILE")
    p.add_argument("--training-set", metavar="FOLDER",
                   help="the decisions as annotations.jsonl + labels.txt, a data set mkt-train reads")
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


def _open_window(args) -> int:
    """No command: the window, on --db / --model / --settings when given."""
    forwarded = []
    for flag, value in (("--db", args.window_db), ("--model", args.window_model), ("--settings", args.window_settings)):
        if value:
            forwarded += [flag, value]
    try:
        from mkt_desktop.app import main as app_main
    except ImportError as exc:  # PySide6 missing: the command line still works
        print(f"mkt-desktop: the window cannot open ({exc}); see `mkt-desktop --help` for the commands",
              file=sys.stderr)
        return 1
    return app_main(forwarded)


def _fail(argv: list[str], message: str, rc: int) -> int:
    if "--json" in argv:
        print(json.dumps({"error": _readable(message)}, ensure_ascii=False))
    else:
        print(_readable(message), file=sys.stderr)
    return rc


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = None
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            return _open_window(args)
        args.db = args.db or args.window_db  # `mkt-desktop --db X search ...` means the same library
        if args.window_model and args.model == "demo":
            args.model = args.window_model
        if args.command == "labels" and args.action in ("add", "remove", "forget-corrections") and not args.text:
            raise UsageError(f"mkt-desktop labels: error: labels {args.action} needs at least one label")
        if args.command == "labels" and args.action == "rename" and len(args.text) != 2:
            raise UsageError("mkt-desktop labels: error: labels rename needs OLD NEW")
        if args.command == "labels" and args.action == "threshold" and len(args.text) != 1:
            raise UsageError("mkt-desktop labels: error: labels threshold needs LABEL, and --confidence PERCENT "
                             "or --threshold SCORE (neither: automatic)")
        if args.command == "folders" and args.action == "remove" and not args.paths:
            raise UsageError("mkt-desktop folders: error: folders remove needs at least one FOLDER")
        return args.func(args)
    except UsageError as exc:
        return _fail(argv, f"{exc} (see mkt-desktop --help)", 2)
    except KeyboardInterrupt:
        return _fail(argv, "mkt-desktop: interrupted", 130)
    except Exception as exc:  # noqa: BLE001 - every failure is one line naming its cause, never a traceback
        if os.environ.get("MKT_DEBUG"):
            raise
        from mkt_desktop.library.errors import describe_error

        command, db = getattr(args, "command", None), getattr(args, "db", None)
        prefix = f"mkt-desktop {command}: error: " if command else "mkt-desktop: error: "
        return _fail(argv, prefix + describe_error(exc, db), 1)
    finally:
        while _OPENED:
            _OPENED.pop().close()


def run() -> None:
    """The `mkt-desktop` command: `main`, then a quick exit. Tearing down SQLAlchemy's and numpy's modules
    at interpreter exit takes 0.3 s, a third of a read-only command; main has closed every library it
    opened (and with it SQLite's WAL), so nothing is lost by skipping it. The window exits the ordinary way."""
    rc = main()
    if "mkt_desktop.app" in sys.modules:
        sys.exit(rc)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


if __name__ == "__main__":
    run()
