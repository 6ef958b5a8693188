"""`make demo`: the main job end to end on the embedded defaults.

This slice: create the schema, import the sample lists, define segments, and print a
summary. Later slices add the release, approval, send and delivery report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mailer import contacts, db, store
from mailer.app import Runtime
from mailer.contacts import ImportResult
from mailer.db import transaction

SAMPLE_LISTS = {
    "national-press": "national-press.csv",
    "foreign-desk": "foreign-desk.csv",
    "broadcast-bookers": "broadcast-bookers.csv",
}

DEMO_SEGMENTS = {
    "foreign-policy-print": (
        "(list:national-press OR list:foreign-desk) AND beat IN (foreign-policy, national-security)"
        " AND NOT outlet_type IN (tv, radio, podcast)",
        "Print, online and wire reporters on foreign policy and national security",
    ),
    "broadcast-bookers": (
        "list:broadcast-bookers AND (beat:tv-booking OR beat:radio-production)",
        "TV bookers and radio producers",
    ),
}


@dataclass
class DemoImport:
    slug: str
    file: Path
    result: ImportResult


def import_samples(rt: Runtime, lists_dir: Path) -> list[DemoImport]:
    """Create the schema, import the sample lists and save the demo segments."""
    db.upgrade(rt.engine)
    done = []
    for slug, name in SAMPLE_LISTS.items():
        path = lists_dir / name
        done.append(DemoImport(slug, path, contacts.import_csv(rt.sessions, path, list_slug=slug, now=rt.clock())))
    with transaction(rt.sessions) as session:
        for slug, (rule, description) in DEMO_SEGMENTS.items():
            store.save_segment(session, slug, rule, description=description, now=rt.clock())
    return done
