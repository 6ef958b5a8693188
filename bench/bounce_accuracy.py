"""Accuracy of mailer.bounces over the labelled corpora, per reason.

Corpora: the real MTA notices in ``/work/shared/bounces`` (or its copy in
``tests/bounces/data/real``; Postfix, Exim, OpenSMTPD, Sendmail), ``tests/bounces/data/written``
and ``tests/bounces/data/corpus`` (written in the shapes of many more MTAs and providers).

Per labelled reason (the ``reason`` of a label, else its ``scenario``):

* **recipients found**: among notices that report a failed (or delayed, or complaining)
  recipient, the share where the labelled address is among those reported;
* **hard/soft agreement**: among notices labelled hard, soft or delayed (delayed counts
  as soft), the share where the found recipient's class matches;
* **no false recipient**: among auto-replies and human mail, the share reporting none.

Usage: ``.venv/bin/python bench/bounce_accuracy.py [--write]`` (``--write`` also saves the
output to ``bench/BOUNCE_ACCURACY.md``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mailer.bounces.parse import parse_message  # noqa: E402

SHARED = Path("/work/shared/bounces")
CORPORA = {
    "real": SHARED if (SHARED / "labels.json").exists() else ROOT / "tests" / "bounces" / "data" / "real",
    "written": ROOT / "tests" / "bounces" / "data" / "written",
    "corpus": ROOT / "tests" / "bounces" / "data" / "corpus",
}
OUTPUT = ROOT / "bench" / "BOUNCE_ACCURACY.md"
_NOT_NOTICE = ("auto_reply", "not_bounce")


@dataclass
class Tally:
    """Counts for one reason (or the total)."""

    notices: int = 0
    found: int = 0
    classed: int = 0
    agreed: int = 0
    replies: int = 0
    clean: int = 0

    def add(self, other: Tally) -> None:
        for key in vars(self):
            setattr(self, key, getattr(self, key) + getattr(other, key))


def _kind(label: dict[str, Any]) -> str:
    if "kind" in label:
        return str(label["kind"])
    if label["expected"] == "not_bounce":
        return "auto_reply"
    return "delay" if label["expected"] == "delayed" else "bounce"


def _group(label: dict[str, Any]) -> str:
    kind = _kind(label)
    if kind in _NOT_NOTICE:
        return "(auto-reply / human)"
    if kind in ("complaint", "feedback"):
        return f"(arf {kind})"
    return str(label.get("reason") or label.get("scenario") or "unlabelled")


def score(corpus: str, directory: Path, tallies: dict[str, Tally], misses: list[str]) -> None:
    """Add one corpus's results to ``tallies`` (by reason) and its misses to ``misses``."""
    labels: list[dict[str, Any]] = json.loads((directory / "labels.json").read_text())
    for label in labels:
        report = parse_message((directory / label["file"]).read_bytes())
        tally = tallies[_group(label)]
        name = f"{corpus}/{label['file']}"
        if _kind(label) in _NOT_NOTICE:
            tally.replies += 1
            clean = not report.recipients
            tally.clean += clean
            if not clean:
                misses.append(f"{name} (reported {', '.join(r.address for r in report.recipients)})")
            continue
        want = str(label["original_recipient"]).lower()
        found = [r for r in report.recipients if r.address.lower() == want]
        tally.notices += 1
        tally.found += bool(found)
        if not found:
            misses.append(f"{name} (recipient not found)")
        expected = {"hard": "hard", "soft": "soft", "delayed": "soft"}.get(label.get("expected") or "")
        if expected is None:
            continue
        tally.classed += 1
        agreed = bool(found) and found[0].bounce_class.value == expected
        tally.agreed += agreed
        if found and not agreed:
            misses.append(f"{name} ({found[0].bounce_class.value}/{found[0].reason.value}, labelled {expected})")


def _share(count: int, total: int) -> str:
    return f"{count}/{total} ({100 * count / total:.1f} %)" if total else "-"


def table(tallies: dict[str, Tally]) -> str:
    """The markdown table, one row per reason and a total."""
    lines = [
        "| reason | recipients found | hard/soft agreement | no false recipient |",
        "| --- | ---: | ---: | ---: |",
    ]
    total = Tally()
    for reason in sorted(tallies):
        t = tallies[reason]
        total.add(t)
        lines.append(
            f"| {reason} | {_share(t.found, t.notices)} | {_share(t.agreed, t.classed)} "
            f"| {_share(t.clean, t.replies)} |"
        )
    lines.append(
        f"| **total** | {_share(total.found, total.notices)} | {_share(total.agreed, total.classed)} "
        f"| {_share(total.clean, total.replies)} |"
    )
    return "\n".join(lines)


def main() -> None:
    """Print the tables per corpus and overall (and the misses); ``--write`` saves them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"also write {OUTPUT.name}")
    args = parser.parse_args()
    overall: dict[str, Tally] = defaultdict(Tally)
    sections: list[str] = []
    misses: list[str] = []
    for corpus, directory in CORPORA.items():
        tallies: dict[str, Tally] = defaultdict(Tally)
        score(corpus, directory, tallies, misses)
        for reason, t in tallies.items():
            overall[reason].add(t)
        count = sum(t.notices + t.replies for t in tallies.values())
        where = directory.relative_to(ROOT) if directory.is_relative_to(ROOT) else directory
        sections.append(f"## {corpus} ({count} messages, `{where}`)\n\n{table(tallies)}")
    sections.append(f"## all corpora\n\n{table(overall)}")
    result = "\n\n".join(sections) + "\n\nMisses: " + ("; ".join(misses) or "none") + "\n"
    print(result)
    if args.write:
        OUTPUT.write_text(
            "# Bounce parsing accuracy\n\n"
            "Output of `bench/bounce_accuracy.py`, per labelled reason: the share of notices whose "
            "failed recipient is found, the share whose hard/soft class agrees with the label "
            "(a delay counts as soft), and the share of auto-replies and human mail that report no "
            "recipient.\n\n"
            "Caveat: the `written` and `corpus` sets were written alongside the parser (in the shapes "
            "real MTAs use), so they show coverage of those shapes, not accuracy on unseen mail; the "
            "`real` set was generated by real MTAs but also served during development.\n\n" + result
        )


if __name__ == "__main__":
    main()
