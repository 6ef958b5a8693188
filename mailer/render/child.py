"""Entry point of a render process: ``python -m mailer.render.child CONN LIFELINE PROGRESS``
(three inherited file descriptors; see :mod:`mailer.render.isolated`)."""

import sys

from mailer.render.isolated import child_main

if __name__ == "__main__":
    child_main(*(int(arg) for arg in sys.argv[1:4]))
