"""`forensight models`: list, show, import, remove detectors, the catalogue, the default, input settings."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from app.errors import UsageError, library_errors_as_usage

# models.card.INPUT_POLICIES, written out so that the parser does not load torch (a test keeps them equal)
POLICY_CHOICES = ("resize", "resize_center_crop", "center_crop", "tiles", "full", "five_crop", "ten_crop")


def add_command(sub) -> None:
    """The models subcommand and its actions."""
    models = sub.add_parser("models", help="list, show, import and remove detectors; the catalogue, the default, "
                            "input settings")
    msub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    p = msub.add_parser("list", help="models in the library")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_models_list)
    p = msub.add_parser("show", help="a model's card")
    p.add_argument("id")
    p.set_defaults(run=cmd_models_show)
    p = msub.add_parser("import", help="add a detector: a Forensight folder or card, .safetensors, .pth/.pt, .onnx, "
                        "or a Hugging Face model's folder")
    p.add_argument("path", type=Path)
    p.add_argument("--arch", help="architecture (default: inferred from the weights)")
    p.add_argument("--id", dest="model_id", help="library id (default: from the file name)")
    p.add_argument("--name", help="display name")
    p.add_argument("--fake-index", type=int, choices=(0, 1), help="which of two logits means fake (default 1)")
    p.add_argument("--policy", choices=POLICY_CHOICES, help="input policy (see README: How a scan works)")
    p.add_argument("--threshold", type=float)
    p.add_argument("--family", help="published detector family (default: recognised from the file; see "
                   "`forensight models catalogue`)")
    p.add_argument("--fake-label", metavar="LABEL", help="Hugging Face model: the label(s) that mean fake, "
                   "comma-separated (default: from id2label)")
    for option, kind, text in (("--size", int, "input side in pixels"), ("--resize", int, "shorter side before "
                               "the centre crop"), ("--mean", str, "R,G,B mean of the 0..1 pixels"),
                               ("--std", str, "R,G,B std"), ("--interpolation", str, "bilinear, bicubic, lanczos "
                               "or nearest")):
        p.add_argument(option, type=kind, help=f"ONNX model: {text}")
    p.add_argument("--tower", type=Path, metavar="FILE", help="UnivFD head (fc_weights.pth) or RINE head "
                   "(model_*_trainable.pth): the CLIP ViT-L/14 image tower it reads, as OpenCLIP distributes it (open_clip_pytorch_model.bin or "
                   "open_clip_model.safetensors)")
    p.add_argument("--input-json", type=Path, metavar="FILE", help="ONNX model: the input settings as a JSON "
                   'object, e.g. {"policy": "resize", "size": 224, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}')
    p.set_defaults(run=cmd_models_import)
    p = msub.add_parser("catalogue", help="published detectors Forensight can import, and which are installed")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_models_catalogue)
    p = msub.add_parser("remove", help="delete a model you imported or trained")
    p.add_argument("id")
    p.set_defaults(run=cmd_models_remove)
    p = msub.add_parser("default", help="make a model the default for scans")
    p.add_argument("id")
    p.set_defaults(run=cmd_models_default)
    p = msub.add_parser("set", help="change how one of your models analyses a picture (its input policy)")
    p.add_argument("id")
    p.add_argument("settings", nargs="+", metavar="input.FIELD=VALUE",
                   help="e.g. input.policy=tiles input.tile_stride=112 input.max_tiles=64 input.aggregation=max")
    p.set_defaults(run=cmd_models_set)


def _library():
    from models.library import ModelLibrary

    return ModelLibrary()


def cmd_models_list(args: argparse.Namespace) -> int:
    library = _library()
    entries = library.entries()
    default = library.default_id()
    if args.json:
        print(json.dumps([{"id": e.card.id, "name": e.card.name, "architecture": e.card.architecture,
                           "shipped": e.shipped, "default": e.card.id == default,
                           "weights_sha256": e.card.weights_sha256} for e in entries], indent=2))
        return 0
    if not entries:
        print("No models installed. Import one with `forensight models import PATH`.")
        return 0
    for e in entries:
        mark = "*" if e.card.id == default else " "
        origin = "shipped" if e.shipped else "yours"
        print(f"{mark} {e.card.id:<28} {e.card.architecture:<22} {origin:<8} {e.card.name}")
    print("(* = default)")
    return 0


def cmd_models_show(args: argparse.Namespace) -> int:
    with library_errors_as_usage():
        entry = _library().get(args.id)
    print(f"# {entry.directory}")
    print(entry.card.to_json(), end="")
    return 0


def cmd_models_import(args: argparse.Namespace) -> int:
    spec = _input_options(args)
    with library_errors_as_usage(f"cannot import {args.path}: "):
        entry = _library().import_path(args.path, architecture=args.arch, model_id=args.model_id,
                                       name=args.name, fake_index=args.fake_index, policy=args.policy,
                                       threshold=args.threshold, family=args.family, fake_label=args.fake_label,
                                       input_spec=spec, tower=args.tower)
    card = entry.card
    family = f" [{card.family}]" if card.family else ""
    print(f"Imported {card.id}{family}: {card.architecture}, {card.num_logits} logit(s) ({card.output}), "
          f"input {card.input.policy} {card.input.size}, weights {card.weights_sha256[:12]}")
    return 0


def _input_options(args: argparse.Namespace) -> dict | None:
    """--input-json and --size/--resize/--mean/--std/--interpolation as one dict (the options win)."""
    spec: dict = {}
    if args.input_json:
        try:
            spec = json.loads(args.input_json.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read --input-json {args.input_json}: {exc}") from None
        if not isinstance(spec, dict):
            raise UsageError("--input-json must hold a JSON object of input settings")
    for name in ("size", "resize", "interpolation"):
        if getattr(args, name) is not None:
            spec[name] = getattr(args, name)
    for name in ("mean", "std"):
        if getattr(args, name) is not None:
            try:
                values = [float(v) for v in getattr(args, name).split(",")]
            except ValueError:
                raise UsageError(f"--{name} expects three numbers R,G,B such as 0.5,0.5,0.5") from None
            spec[name] = values * 3 if len(values) == 1 else values
    return spec or None


def cmd_models_catalogue(args: argparse.Namespace) -> int:
    from models.families import catalogue_benchmarks, catalogue_status

    rows, benchmarks = catalogue_status(_library()), catalogue_benchmarks()
    if args.json:
        print(json.dumps({"families": rows, "benchmarks": benchmarks}, indent=2, ensure_ascii=False))
        return 0
    for row in rows:
        installed = ", ".join(row["installed"]) or "not installed"
        print(f"{row['id']:<20} {row['name']}  [{row['status']}; {installed}]")
        if row["paper"]:
            print(f"    {row['paper']} ({row['venue']})")
        for item in row["files"]:
            print(f"    file {item['file']}: {item['download']}")
        if row["licence"]:
            print(f"    licence: {row['licence']}")
        for item in row["independent_results"]:
            print(f"    independent: {item['benchmark']}: {item['result']}")
    print("Import a downloaded file with `forensight models import FILE` (a Hugging Face model: its folder).")
    if benchmarks:
        print("\nIndependent benchmarks (choose a detector by the threat you face):")
    for bench in benchmarks:
        print(f"  {bench['name']}, \"{bench['title']}\" ({bench['where']}; from {bench['source']})")
        print(f"    {bench['scope']}")
        for finding in bench["findings"]:
            print(f"    - {finding}")
        for item in bench["by_threat"]:
            print(f"    threat: {item['threat']}: {item['result']}")
        if bench["per_detector"]:
            print(f"    {bench['per_detector']}")
    return 0


def cmd_models_remove(args: argparse.Namespace) -> int:
    with library_errors_as_usage():
        _library().remove(args.id)
    print(f"Removed {args.id}")
    return 0


def cmd_models_set(args: argparse.Namespace) -> int:
    from models.input_settings import parse_settings, set_model_input
    from models.preprocess import describe_policy

    try:
        changes = parse_settings(args.settings)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    with library_errors_as_usage(f"cannot change {args.id}: "):
        entry = set_model_input(_library(), args.id, changes)
    print(f"{args.id} now looks at {describe_policy(entry.card.input)}")
    return 0


def cmd_models_default(args: argparse.Namespace) -> int:
    with library_errors_as_usage():
        _library().set_default(args.id)
    print(f"Default model: {args.id}")
    return 0
