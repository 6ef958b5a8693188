"""Accuracy of mailer.bounces against flufl.bounce alone, over the labelled corpora.

A message counts as right when the labelled recipient is found AND its class matches:
``hard``/``soft`` as labelled, ``delayed`` counted as soft. Complaints need the recipient
(no class); auto-replies and human replies are right when no failed recipient is reported.

flufl.bounce (``all_failures``) gets the recipient right when the labelled address is among
what it returns, and its class is ``hard`` when it puts the address in its permanent set,
``soft`` when in its temporary set.

Usage: ``.venv/bin/python bench/bounce_accuracy.py [--write]`` (``--write`` also saves the
table to ``bench/BOUNCE_ACCURACY.md``).
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flufl.bounce import all_failures

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mailer.bounces.parse import Kind, parse_message  # noqa: E402

CORPORA = ROOT / "tests" / "bounces"
OUTPUT = ROOT / "bench" / "BOUNCE_ACCURACY.md"


@dataclass(frozen=True)
class Expectation:
    """What a labelled message should yield."""

    file: str
    kind: str
    recipient: str | None
    bounce_class: str | None


@dataclass
class Tally:
    """Counts for one corpus (or the total)."""

    messages: int = 0
    ours_recipient: int = 0
    ours_both: int = 0
    flufl_recipient: int = 0
    flufl_both: int = 0

    def add(self, other: Tally) -> None:
        self.messages += other.messages
        self.ours_recipient += other.ours_recipient
        self.ours_both += other.ours_both
        self.flufl_recipient += other.flufl_recipient
        self.flufl_both += other.flufl_both


def expectations(corpus: str) -> list[Expectation]:
    """The labels of one corpus, in the shape this bench compares."""
    labels: list[dict[str, Any]] = json.loads((CORPORA / corpus / "labels.json").read_text())
    return [_expectation(label) for label in labels]


def _expectation(label: dict[str, Any]) -> Expectation:
    expected = label["expected"]
    kind = label.get("kind") or {"delayed": "delay", "not_bounce": "auto_reply"}.get(expected, "bounce")
    recipient = label["original_recipient"] if kind in ("bounce", "delay", "complaint") else None
    bounce_class = {"delayed": "soft", "hard": "hard", "soft": "soft"}.get(expected or "")
    return Expectation(label["file"], kind, recipient, bounce_class)


def ours(raw: bytes, want: Expectation) -> tuple[bool, bool]:
    """(recipient right, recipient and class right) for mailer.bounces."""
    report = parse_message(raw)
    if want.recipient is None:
        right = report.kind not in (Kind.BOUNCE, Kind.DELAY) and not report.recipients
        return right, right
    found = [r for r in report.recipients if r.address.lower() == want.recipient.lower()]
    if not found:
        return False, False
    if want.bounce_class is None:
        return True, report.kind.value == want.kind
    return True, found[0].bounce_class.value == want.bounce_class


def flufl(raw: bytes, want: Expectation) -> tuple[bool, bool]:
    """(recipient right, recipient and class right) for flufl.bounce alone."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    try:
        temporary, permanent = all_failures(msg)
    except Exception:
        temporary, permanent = set(), set()
    temporary = {_text(a).lower() for a in temporary}
    permanent = {_text(a).lower() for a in permanent}
    if want.recipient is None:
        right = not (temporary or permanent)
        return right, right
    address = want.recipient.lower()
    if address not in temporary | permanent:
        return False, False
    if want.bounce_class is None:
        return True, False  # flufl.bounce has no notion of a complaint
    got = "hard" if address in permanent else "soft"
    return True, got == want.bounce_class


def _text(address: bytes | str) -> str:
    return address.decode("ascii", "replace") if isinstance(address, bytes) else address


def tally(corpus: str) -> tuple[Tally, list[str]]:
    """Counts for one corpus, and the files mailer.bounces gets wrong."""
    counts = Tally()
    misses: list[str] = []
    for want in expectations(corpus):
        raw = (CORPORA / corpus / want.file).read_bytes()
        our_recipient, our_both = ours(raw, want)
        their_recipient, their_both = flufl(raw, want)
        counts.messages += 1
        counts.ours_recipient += our_recipient
        counts.ours_both += our_both
        counts.flufl_recipient += their_recipient
        counts.flufl_both += their_both
        if not our_both:
            misses.append(f"{corpus}/{want.file}")
    return counts, misses


def _share(count: int, total: int) -> str:
    return f"{count}/{total} ({100 * count / total:.1f} %)" if total else "-"


def table(rows: list[tuple[str, Tally]]) -> str:
    """The markdown table of results."""
    lines = [
        "| corpus | messages | mailer: recipient | mailer: recipient + class "
        "| flufl.bounce: recipient | flufl.bounce: recipient + class |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, t in rows:
        lines.append(
            f"| {name} | {t.messages} | {_share(t.ours_recipient, t.messages)} "
            f"| {_share(t.ours_both, t.messages)} | {_share(t.flufl_recipient, t.messages)} "
            f"| {_share(t.flufl_both, t.messages)} |"
        )
    return "\n".join(lines)


def main() -> None:
    """Print the table (and the misses); with ``--write`` also save it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"also write {OUTPUT.name}")
    args = parser.parse_args()
    rows: list[tuple[str, Tally]] = []
    total = Tally()
    misses: list[str] = []
    for corpus in ("real", "written"):
        counts, missed = tally(corpus)
        rows.append((corpus, counts))
        total.add(counts)
        misses += missed
    rows.append(("total", total))
    result = table(rows)
    print(result)
    print("\nmailer.bounces misses:", ", ".join(misses) or "none")
    if args.write:
        OUTPUT.write_text(
            "# Bounce parsing accuracy\n\n"
            "Output of `bench/bounce_accuracy.py`. A message is right when the labelled "
            "recipient is found and its class (hard/soft; a delay counts as soft) matches; "
            "complaints need the recipient, auto-replies and human replies need no failed "
            "recipient. flufl.bounce alone: `all_failures`, its permanent set read as hard, "
            "its temporary set as soft.\n\n"
            "Caveat: the `written` corpus was written alongside the parser, so its score "
            "shows coverage of those shapes, not accuracy on unseen mail; the `real` corpus "
            "was generated by real MTAs but also served during development.\n\n"
            + result
            + "\n\nmailer.bounces misses: "
            f"{', '.join(misses) or 'none'}\n"
        )


if __name__ == "__main__":
    main()
