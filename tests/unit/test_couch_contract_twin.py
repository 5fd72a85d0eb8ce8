"""The CouchDB and store contracts (tests/contract/) on the in-memory CouchDB 3 twin.

The same tests run on PouchDB Server in tests/integration/test_couch_contract.py.
"""

from __future__ import annotations

import pytest

from tests.contract.couch import *  # noqa: F403
from tests.contract.store import *  # noqa: F403
from workers.couch.client import CouchClient
from workers.couch.memory import MemoryCouchClient

pytestmark = pytest.mark.unit


@pytest.fixture
def client() -> CouchClient:
    return MemoryCouchClient()
