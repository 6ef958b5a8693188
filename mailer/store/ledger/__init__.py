"""Read models: typed, read-only views of the ledger shared by the CLI, the staff pages
and the JSON API. One module per view:

    paging          the read-only transaction, keyset pages (:class:`Page`)
    dashboard       releases due soon, releases sending now, one release's progress
    release_list    releases, newest first; segment slugs (filter choices)
    release_detail  one release: content, client, segments, approvals, history, proofs
    report          one release's counts by status, segment, domain, its problems, its rate
    log             the delivery log (filters, the one query behind page, export, API)
    bounces         bounce, complaint and refusal events
    suppressions    suppression lists
    history         everything recorded about one address
"""
