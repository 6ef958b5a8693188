"""`mailer demo`: the main job end to end on the embedded defaults (what `make demo` runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mailer import store
from mailer.cli.common import out, runtime
from mailer.db import transaction


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    lists_dir: Annotated[Path, typer.Option(help="Folder with the sample CSV lists.")] = Path("lists"),
) -> None:
    """Run the main job end to end on the configured (embedded) defaults and report."""
    from mailer import demo as demo_mod

    with runtime(check_schema=False) as rt:
        imports = demo_mod.import_samples(rt, lists_dir)
        with transaction(rt.sessions) as session:
            lists = store.list_summaries(session)
            segs = [(s, store.segment_count(session, s.rule)) for s in store.all_segments(session)]
    out.rule("[bold]mailer demo[/]")
    out.print(f"database: {rt.engine.url.render_as_string(hide_password=True)}")
    for imp in imports:
        r = imp.result
        out.print(f"imported {imp.file}: {r.accepted} new, {r.updated} updated, {r.rejected_total} rejected")
    table = Table("list", "members")
    for summary in lists:
        table.add_row(summary.slug, str(summary.members))
    out.print(table)
    seg_table = Table("segment", "rule", "contacts")
    for seg, count in segs:
        seg_table.add_row(seg.slug, seg.rule, str(count))
    out.print(seg_table)
