"""couchwatch's HTTP API (FastAPI): `create_app(settings)` in `couchwatch.api.app`."""
