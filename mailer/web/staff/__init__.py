"""The staff UI: server-rendered pages (Jinja2, autoescaped) with htmx for live parts.

:class:`StaffRoutes` (in :mod:`mailer.web.staff.pages`) holds the routes; charts are
drawn server-side as SVG (:mod:`mailer.web.staff.charts`); CSV exports are streamed
(:mod:`mailer.web.staff.export`). Sign-in, sessions, CSRF and roles: :mod:`mailer.web.auth`.
"""

from mailer.web.staff.pages import StaffRoutes

__all__ = ["StaffRoutes"]
