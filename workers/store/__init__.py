"""The store layer: every couchwatch document shape, `_id` rule, Mango selector and index name.

One module per document kind (docs/architecture.md, "Documents and who owns them"): `registry`
(entity entries), `models` (model heads and versions), `population`, `anomalies`, `incidents`,
`notifications`, `runs`, `keys` (API keys), `quarantine`, `events` (reading an entity's events),
and `pages` (keyset pages over anomalies and incidents).
Index names are constants here; `workers/couch/schema.py` creates them. The fleet, the
planners and the entry points query CouchDB through these modules, not with selectors of
their own. Above `workers/couch/`, below the fleet; the engine never imports it.
"""
