"""The demo client (TOML) and demo release (Markdown with TOML front matter).

Fictional text in the shape of a real media advisory; every organisation is invented and
every address is at an example.* domain. The release targets the demo segments
``foreign-policy-print`` and ``broadcast-bookers`` (see :mod:`mailer.demo.run`).
"""

from pathlib import Path

DEMO_DATA_DIR = Path(__file__).resolve().parent
#: ``mailer clients create --file`` input
CLIENT_FILE = DEMO_DATA_DIR / "client.toml"
#: ``mailer releases create`` input
RELEASE_FILE = DEMO_DATA_DIR / "release.md"
#: the release's press kit (``mailer releases attach``): a drawn photo and a one-page fact sheet
PHOTO_FILE = DEMO_DATA_DIR / "port-sarrent-harbour.png"
FACT_SHEET_FILE = DEMO_DATA_DIR / "kessar-strait-fact-sheet.pdf"
