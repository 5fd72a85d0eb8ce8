"""The Celery app worker and beat processes load: the fleet's app (`workers.celery_app`) with the
fleet's tasks, the planner tasks and the beat schedule of `scheduler/`.

    celery -A couchwatch.celery worker -Q plan,train,score,notify -n worker1@%h
    celery -A couchwatch.celery beat          # exactly one

Composed here, at the top layer, so that `workers/` never imports `scheduler/`: the fleet's tasks
enqueue the planners' work (and the planners the fleet's) by task name only.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

import scheduler.tasks
import workers.tasks
from scheduler.beat import beat_schedule
from workers.celery_app import app
from workers.settings import get_settings

__all__ = ["app"]
TASK_MODULES = (workers.tasks.__name__, scheduler.tasks.__name__)


def _add_beat_schedule(sender: Celery, **_: Any) -> None:
    sender.conf.beat_schedule = beat_schedule(get_settings())


if app.configured:  # something read the configuration before this module was imported
    _add_beat_schedule(app)
else:
    app.on_configure.connect(_add_beat_schedule, weak=False)
