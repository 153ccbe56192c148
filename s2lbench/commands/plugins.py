"""`s2lbench plugins`: what is registered, by which plugin."""

from __future__ import annotations

import argparse
import json

from s2lbench.api.registry import describe_registry
from s2lbench.commands.base import Command


class PluginsCommand(Command):
    name = "plugins"
    help = "list registered selectors and evaluators and the plugin that registered each"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--json", action="store_true", help="print a JSON object instead of tables")

    def run(self, args: argparse.Namespace) -> int:
        info = describe_registry()
        if args.json:
            print(json.dumps(info, indent=2, default=str))
            return 0
        for kind in ("selectors", "evaluators", "executors"):
            rows = info[kind]
            print(f"{kind} ({len(rows)})")
            if not rows:
                print("  (none)")
            width = max((len(r["name"]) for r in rows), default=0)
            pwidth = max((len(r["plugin"]) for r in rows), default=0)
            for r in rows:
                extra = ""
                if kind == "selectors":
                    extra = "needs " + (", ".join(r["requires"]) or "nothing")
                    extra += f"  (version {r['version']})" if r["version"] != 1 else ""
                elif kind == "evaluators":
                    extra = ", ".join(f"{m['name']}{'↑' if m['higher_is_better'] else '↓'}" for m in r["metrics"])
                print(f"  {r['name']:<{width}}  {r['plugin']:<{pwidth}}  {extra}")
            print()
        return 0
