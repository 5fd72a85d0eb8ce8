"""couchwatch's entry points: the `couchwatch` CLI, the HTTP API, the local stack, evaluation,
and the composed Celery app (`couchwatch.celery`) that worker and beat processes load.

The top layer: it imports `scheduler/` and `workers/`; neither imports it.
"""
