"""Entry point of a render process: ``python -m mailer.message.child CONN LIFELINE PROGRESS``
(three inherited file descriptors; see :mod:`mailer.message.isolated`)."""

import sys

from mailer.message.isolated import child_main

if __name__ == "__main__":
    child_main(*(int(arg) for arg in sys.argv[1:4]))
