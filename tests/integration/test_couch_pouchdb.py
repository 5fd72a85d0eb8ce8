"""The CouchDB client against a real PouchDB Server with an admin configured: the schema created
once, and the server's auth (wrong credentials, creating a database needs admin). What the client
relies on of CouchDB (bulk rows, upsert merges, odd ids, _changes paging, key paging through ties,
_local documents, attachments) is tests/contract/couch.py's, run on this server by
test_couch_contract.py and on the in-memory twin by tests/unit/test_couch_contract_twin.py."""

from __future__ import annotations

import pytest

from tests.support.services import CouchServer
from workers.couch.client import CouchClient
from workers.couch.errors import Unauthorized
from workers.couch.schema import ensure_schema
from workers.couch.transport import CouchTransport
from workers.settings import Settings

pytestmark = pytest.mark.integration


def test_schema_is_created_once(couch: CouchClient, settings: Settings) -> None:
    first = ensure_schema(couch, settings)
    assert settings.events_db in first and settings.db_name("quarantine") in first
    assert ensure_schema(couch, settings) == []


def test_wrong_credentials_are_refused_even_for_reads(
    couch: CouchClient, settings: Settings, couchdb: CouchServer
) -> None:
    ensure_schema(couch, settings)
    wrong = CouchClient(CouchTransport(couchdb.url, auth=(couchdb.user, "wrong"), retries=0))
    with pytest.raises(Unauthorized):
        wrong.db_info(settings.events_db)
    with pytest.raises(Unauthorized):
        wrong.ensure_db(settings.events_db + "_x")


def test_creating_a_database_needs_admin(couchdb: CouchServer) -> None:
    import requests

    reply = requests.put(f"{couchdb.url}/anonymous_db_attempt", timeout=10)
    assert reply.status_code == 401
