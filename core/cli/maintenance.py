"""`gc`: remove datasets, cache entries, exports and workspaces unused for the retention time."""
from __future__ import annotations

import argparse
import json

from core import maintenance, paths
from core.i18n import _


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gc", help=_("remove working data unused for TRANSFERLAB_RETENTION_DAYS (default 30); "
                                  "prints JSON of what was removed"))
    p.add_argument("--dry-run", action="store_true", help=_("only list what would be removed"))
    p.add_argument("--days", type=float, default=None, help=_("retention in days (default: the environment's, or 30)"))
    p.set_defaults(handler=_gc)


def _gc(args: argparse.Namespace) -> int:
    if args.days is not None and args.days < 0:
        raise ValueError(_("--days must be 0 or more"))
    removals = maintenance.collect(paths.home(), days=args.days, dry_run=args.dry_run)
    print(json.dumps(maintenance.to_json(removals, args.dry_run), ensure_ascii=False, indent=2))
    return 0
