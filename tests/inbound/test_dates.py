"""Return dates in out-of-office text, in English, German, French and Spanish, the year
taken from the day the reply arrived."""

from __future__ import annotations

from datetime import date

import pytest

from mailer.inbound.dates import return_date

RECEIVED = date(2026, 11, 25)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I will be back on 3 December.", date(2026, 12, 3)),
        ("Returning December 3rd.", date(2026, 12, 3)),
        ("Out until Monday, 3rd of December 2026.", date(2026, 12, 3)),
        ("back in the office on Dec. 3", date(2026, 12, 3)),
        ("I return on 2026-12-03.", date(2026, 12, 3)),
        ("back on 12/03", date(2026, 12, 3)),  # US month first: the nearer future day
        ("back on 15/12", date(2026, 12, 15)),  # day first: 15 cannot be a month
        ("Ich bin bis zum 03.12. nicht im Büro.", date(2026, 12, 3)),
        ("Ab dem 4. Dezember bin ich wieder erreichbar.", date(2026, 12, 4)),
        ("Ich bin ab 07.12.2026 zurück.", date(2026, 12, 7)),
        ("Je serai de retour le 3 décembre.", date(2026, 12, 3)),
        ("Absente jusqu'au 1er décembre inclus.", date(2026, 12, 1)),
        ("à partir du 4 déc. 2026", date(2026, 12, 4)),
        ("Estaré fuera hasta el 3 de diciembre.", date(2026, 12, 3)),
        ("Regreso el 7 de diciembre de 2026.", date(2026, 12, 7)),
        ("De vacaciones a partir del 2 de enero.", date(2027, 1, 2)),
        ("Back on 5 January.", date(2027, 1, 5)),  # no year, already past this year: next year
        ("I am out of the office from 24 November to 2 December.", date(2026, 12, 2)),
        ("Out of office 24/11 - 04/12, limited email.", date(2026, 12, 4)),
        ("Ich bin vom 24.11. bis 04.12. nicht im Büro.", date(2026, 12, 4)),
        ("Absente du 24 novembre au 2 décembre.", date(2026, 12, 2)),
        ("Fuera de la oficina del 24 de noviembre al 4 de diciembre.", date(2026, 12, 4)),
    ],
)
def test_return_dates(text: str, expected: date) -> None:
    """Each wording gives its return date."""
    found = return_date(text, RECEIVED)
    assert found is not None and found.day == expected
    assert found.phrase and found.phrase in " ".join(text.split())


@pytest.mark.parametrize("text", ["I am on leave.", "Back soon!", "Call me at 14.30 or 16.45.", "Back on Monday."])
def test_no_date(text: str) -> None:
    """Text without a date (a time, a weekday) gives none."""
    assert return_date(text, RECEIVED) is None
