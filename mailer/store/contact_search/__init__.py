"""The staff contact list: search words and sort keys kept per contact, and one keyset
page of contacts by search, filters and sort (read only, but for the reindex writes).

Searching 1,000,000 contacts in well under 200 ms a page on both backends
(``bench/contact_search_bench.py``) rests on four things:

* words live in ``contact_terms`` (term, contact_id), so a prefix is a range scan of the
  primary key, never a ``LIKE '%...%'`` over every row;
* sorts walk an index (``sort_name``/``sort_outlet``/``email``/``updated_at`` with the id)
  and stop after one page: keyset paging, never OFFSET;
* a page filtered by outlet type or region walks the index of (that column, sort key, id)
  instead, so the contacts of other types or regions are never read (broad filters
  together, 'ana' in a list of a third of the contacts, type tv: 1/11 of the rows);
* each page takes the cheaper access path (:func:`costs.plan`): every word, list, beat,
  tag, outlet type and region is counted first, up to :data:`costs.DRIVE_CAP` index
  entries (from the index alone); walking reads about ``limit`` / (the product of the
  other conditions' shares) rows, starting from the rarest set reads all of it (then
  sorts it). A rare condition drives; broad ones are tested on the walked rows, the
  rarest first;
* two broad sets with nothing rare to walk within ('ana' and a beat: 5% each, 0.3% in
  both): when their sizes, guessed from where their first entries end
  (:func:`costs.guessed`), say an intersection may beat the walk, they are counted
  further (:func:`costs.intersect_cap`), and when reading both whole costs less than the
  walk, the page starts from their intersection (``intersect``): each set's ids come from
  its index alone, so an entry read costs a twentieth of a walked row and its probes
  (:data:`costs.READ_COST`). Only counted sizes choose an intersection.

The modules, one noun each (dependencies point down the list):

    index    writes: the sort keys and search words of each contact
    filters  what a page is narrowed and sorted by; each condition's ids and row test
    costs    the counts, the guessed sizes and the cheapest access path
    cursor   keyset cursors and positions down a sort index
    paths    the statement of a page by each access path
    page     one page (:func:`contact_page`), and the ids of every match

The planner's tunables (``DRIVE_CAP``, ``READ_COST``, ``TRIAL_SHARE``) are read from
:mod:`costs` when a page runs: patch them there, not on this package.
"""

from mailer.store.contact_search.costs import DRIVE_CAP, INTERSECT, READ_COST, TRIAL_SHARE
from mailer.store.contact_search.filters import FACETS, SORTS, ContactFilters
from mailer.store.contact_search.index import add_terms, reindex_all, reindex_contacts
from mailer.store.contact_search.page import ContactPage, ContactRow, contact_page, matching_ids

__all__ = [
    "DRIVE_CAP",
    "FACETS",
    "INTERSECT",
    "READ_COST",
    "SORTS",
    "TRIAL_SHARE",
    "ContactFilters",
    "ContactPage",
    "ContactRow",
    "add_terms",
    "contact_page",
    "matching_ids",
    "reindex_all",
    "reindex_contacts",
]
