"""Releases: from a Markdown file to an approved send plan. The modules, lowest first:

- :mod:`~mailer.releases.source`: the release file (TOML front matter + Markdown), parsed
  and validated without the database.
- :mod:`~mailer.releases.clients`: the organisations releases are sent for.
- :mod:`~mailer.releases.compliance`: the checks a release must pass to be submitted.
- :mod:`~mailer.releases.plan`: each segment's variant, the content hash an approval is
  bound to, and the send plan the delivery engine runs from.
- :mod:`~mailer.releases.fence` and :mod:`~mailer.releases.holds`: why an approved
  release waits for a person (late, or already started per the send fence).
- :mod:`~mailer.releases.workflow`: the one writer of a release's status and history,
  and the verbs on it (schedule, pause, resume, cancel, retry, confirm a held start).
- :mod:`~mailer.releases.authoring`: create a draft from a file, or edit one.
- :mod:`~mailer.releases.approval`: submit (checks, hash) and approve (a second person).
- :mod:`~mailer.releases.preview` and :mod:`~mailer.releases.proof`: the exact message a
  recipient would get, rendered, or sent to a person on staff through a transport.
"""
