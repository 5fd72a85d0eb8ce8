"""The CouchDB and store contracts (tests/contract/) on PouchDB Server.

The same tests run on the in-memory twin in tests/unit/test_couch_contract_twin.py.
"""

from __future__ import annotations

import pytest

from tests.contract.couch import *  # noqa: F403
from tests.contract.store import *  # noqa: F403
from workers.couch.client import CouchClient

pytestmark = pytest.mark.integration


@pytest.fixture
def client(couch: CouchClient) -> CouchClient:
    return couch
