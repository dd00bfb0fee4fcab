"""`forensight data`: inspect a training dataset (counts, corrupt files, shortcut warnings), build the starter
set, and rebuild the modern set from clones of its public sources; thin printers over training/."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from app.cli.options import output_outside_data
from app.errors import UsageError
from app.output_guard import JSON


def add_command(sub) -> None:
    """`forensight data inspect | build-starter | rebuild-modern`."""
    data = sub.add_parser("data", help="inspect a training dataset; build the starter and modern sets")
    dsub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    p = dsub.add_parser("inspect", help="counts, corrupt files, sizes, formats and shortcut warnings")
    p.add_argument("path", type=Path, help="the dataset folder (real/ and fake/, optionally under splits)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the full report as JSON")
    p.set_defaults(run=cmd_data_inspect)
    p = dsub.add_parser("build-starter", help="build the starter training set: offline photos and 3 small "
                        "generators, plus the modern set (real photos, modern generators) when present",
                        description="Build the starter training set. Sources: the offline set (photos shipped in "
                        "Debian and PyPI packages against DCGAN faces, painted eyes and Real-ESRGAN) and the modern "
                        "set (public real photos and modern generators' images, normalised so that format, size, "
                        "shape and metadata tell nothing), split by source repository.")
    p.add_argument("out", type=Path, help="where to write the set (outside the folders it reads)")
    p.add_argument("--install", action="store_true", help="install the Debian and PyPI packages it needs")
    p.add_argument("--seed", type=int, default=0, help="random seed of the splits and crops")
    p.add_argument("--crops-per-photo", type=int, default=36, metavar="N", help="crops cut from each offline photo")
    p.add_argument("--per-generator", type=int, default=420, metavar="N",
                   help="pictures made by each of the offline set's generators")
    p.add_argument("--modern", type=Path, metavar="DIR",
                   help="the modern set's folder (MANIFEST.csv and its files; default: ../shared/datasets/modern "
                        "beside this checkout, when present)")
    p.add_argument("--modern-crops", type=int, default=3, metavar="N",
                   help="crops per training picture of the modern set")
    p.add_argument("--without-modern", action="store_true", help="only the offline set")
    p.add_argument("--without-offline", action="store_true", help="only the modern set")
    p.set_defaults(run=cmd_build_starter)
    p = dsub.add_parser("rebuild-modern", help="recreate the modern set's files from local clones of its public "
                        "repositories (the project keeps the manifest, never the images)")
    p.add_argument("clones", type=Path, help="folder holding the clones as OWNER/NAME (git)")
    p.add_argument("out", type=Path, help="where to write the set (then: build-starter --modern OUT)")
    p.set_defaults(run=cmd_rebuild_modern)


def cmd_data_inspect(args: argparse.Namespace) -> int:
    from training.data import LayoutError
    from training.inspect_data import format_report, inspect_dataset

    if args.json:  # never into the data it inspects, never over a file that is not a JSON report
        args.json = output_outside_data(args.json, JSON, args.path)
    try:
        report = inspect_dataset(args.path)
    except LayoutError as exc:
        raise UsageError(str(exc)) from None
    print(format_report(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
        print(f"JSON: {args.json}")
    return 0


def cmd_build_starter(args: argparse.Namespace) -> int:
    from training import modern, starter

    modern_dir = None if args.without_modern else args.modern or (
        modern.DEFAULT_LOCATION if (modern.DEFAULT_LOCATION / modern.MANIFEST).is_file() else None)
    if args.without_offline and modern_dir is None:
        raise UsageError("nothing to build: --without-offline needs the modern set (--modern DIR)")
    guard_outside_sources(args.out, [modern_dir] if modern_dir else [])
    if not args.without_offline:
        if args.install:
            starter.install_inputs()
        try:
            manifest = starter.build_starter(args.out, crops_per_photo=args.crops_per_photo,
                                             per_generator=args.per_generator, seed=args.seed)
        except RuntimeError as exc:
            raise UsageError(str(exc)) from None
        for key, count in manifest["counts"].items():
            print(f"  {key:<32} {count:>6}")
        print(f"Offline set: {len(manifest['photos'])} photographs and 3 generators")
    if modern_dir is not None:
        print(f"modern set from {modern_dir}: every picture decoded, cropped and re-encoded the same way")
        try:
            done = modern.prepare(modern_dir, args.out, train_crops=args.modern_crops, seed=args.seed)
        except modern.ModernSetError as exc:
            raise UsageError(str(exc)) from None
        for key, count in done["pictures"].items():
            print(f"  modern {key:<25} {count:>6} pictures")
        for line in done["skipped"]:
            print(f"  skipped {line}")
        print(f"Modern set: {done['crops']} crops of {modern.CROP}×{modern.CROP} (list: modern-prepared.csv)")
    print(f"Starter dataset in {args.out}; check it with `forensight data inspect {args.out}`")
    return 0


def guard_outside_sources(out: Path, sources: list[Path]) -> None:
    """The prepared set is written beside, never into, the folders it reads (they may be read-only evidence);
    output_guard's Evidence compares folders by identity too, so a link or a bind mount does not slip through."""
    from app.output_guard import Evidence
    from models.discovery import absolute

    if Evidence(folders=sources).folder_of(absolute(out) / "manifest.json") is not None:
        raise UsageError(f"{out} is inside {sources[0] if len(sources) == 1 else 'a folder it reads'}: write the "
                         "starter set elsewhere")


def cmd_rebuild_modern(args: argparse.Namespace) -> int:
    from training import modern

    guard_outside_sources(args.out, [args.clones])
    done = modern.rebuild(args.clones, args.out)
    for line in done["problems"][:20]:
        print(f"  {line}")
    return 0 if done["written"] == done["total"] else 1
