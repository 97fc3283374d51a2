"""`dataset`: the versioned dataset store, headless (every answer is JSON on stdout)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from core import paths
from core.i18n import _


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dataset", help=_("versioned datasets: list, log, diff, export, import, label (JSON)"))
    p.add_argument("--root", default=None, help=_("the store folder (default: $TRANSFERLAB_HOME/datasets)"))
    commands = p.add_subparsers(required=True, metavar="action")
    commands.add_parser("list", help=_("every dataset, newest version")).set_defaults(handler=_list)
    log = commands.add_parser("log", help=_("every version of a dataset with its changes"))
    log.add_argument("dataset")
    log.set_defaults(handler=_log)
    compare = commands.add_parser("diff", help=_("what changed between two versions"))
    compare.add_argument("dataset")
    compare.add_argument("old", type=int)
    compare.add_argument("new", type=int)
    compare.set_defaults(handler=_diff)
    export = commands.add_parser("export", help=_("a version as a zip of class folders"))
    export.add_argument("ref", help=_("ID or ID@VERSION (default: the newest)"))
    export.add_argument("out", help=_("the .zip to write"))
    export.set_defaults(handler=_export)
    imported = commands.add_parser("import", help=_("a zip or folder of class folders becomes a new dataset"))
    imported.add_argument("source")
    imported.add_argument("--name", default=None)
    imported.set_defaults(handler=_import)
    label = commands.add_parser("label", help=_("give images (by content hash) a class; 'none' sends them to the pool"))
    label.add_argument("ref", help=_("ID@VERSION the change is based on (refused if someone changed them since)"))
    label.add_argument("label")
    label.add_argument("hashes", nargs="+")
    label.set_defaults(handler=_label)


def _store(args: argparse.Namespace):
    from core.data.store import DatasetStore

    return DatasetStore(Path(args.root) if args.root else paths.home() / "datasets")


def _describe(version) -> dict[str, Any]:
    return {"id": version.dataset, "name": version.name, "version": version.number, "ref": version.ref,
            "created": version.created, "message": version.message, "changes": version.changes,
            "summary": version.summary(), "classes": version.counts(), "unlabelled": len(version.pool()),
            "images": len(version.images)}


def _list(args: argparse.Namespace) -> int:
    return _print([_describe(v) for v in _store(args).datasets()])


def _log(args: argparse.Namespace) -> int:
    return _print([_describe(v) for v in _store(args).log(args.dataset)])


def _diff(args: argparse.Namespace) -> int:
    from core.data.store import diff

    store = _store(args)
    changes = diff(store.version(args.dataset, args.old).images, store.version(args.dataset, args.new).images)
    return _print({kind: sorted(hashes) for kind, hashes in changes.items()})


def _export(args: argparse.Namespace) -> int:
    from core.data.checkout import export_zip

    store = _store(args)
    version = store.resolve(args.ref)
    path = export_zip(store, version.dataset, version.number, Path(args.out).resolve())
    return _print({"path": str(path), "ref": version.ref, "classes": version.counts()})


def _import(args: argparse.Namespace) -> int:
    from core.data.archive import ArchiveRefused
    from core.data.intake import import_labelled

    source = Path(args.source)
    try:
        result = import_labelled(_store(args), source, args.name or source.stem, paths.home())
    except ArchiveRefused as error:
        print(str(error), file=sys.stderr)
        return 2
    return _print({**_describe(result.version), "added": result.added, "duplicates": result.duplicates,
                   "skipped": [{"path": s.path, "reason": s.reason} for s in result.skipped]})


def _label(args: argparse.Namespace) -> int:
    from core.data.store import Edit

    store = _store(args)
    base = store.resolve(args.ref)
    target = None if args.label.lower() == "none" else args.label
    unknown = [h for h in args.hashes if h not in base.images]
    if unknown:
        raise ValueError(_("{count} of these hashes are not images of version {version}").format(
            count=len(unknown), version=base.number))
    edit = Edit(set_label={h: target for h in args.hashes}, message=f"labelled {len(args.hashes)} as {target}")
    return _print(_describe(store.commit(base.dataset, base.number, edit)))


def _print(value: Any) -> int:
    print(json.dumps(value, ensure_ascii=False, indent=2))
    return 0
