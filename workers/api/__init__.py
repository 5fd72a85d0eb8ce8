"""couchwatch's HTTP API (FastAPI): `create_app(settings)` in `workers.api.app`."""
