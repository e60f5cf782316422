"""Background work of the example site, recorded in Redis so tests can count it.

record_run: enqueued by POST /api/tasks; counts each start and each completed run of its id,
and which release ran it. beat_tick: scheduled by beat every BEAT_INTERVAL_SECONDS; appends
when beat sent it and which release ran it. Nothing here touches the database (no migration).
"""
import json
import time

from celery import shared_task
from celery.signals import before_task_publish
from django.conf import settings

from .background import store


@before_task_publish.connect
def stamp_sent(headers=None, **_):
    # When the message left (beat or web): a tick's time is when beat sent it, not when a
    # worker got to it.
    if headers is not None:
        headers.setdefault("greenlight_sent", time.time())


@shared_task(bind=True)
def record_run(self, seconds=0.0):
    key = f"greenlight:task:{self.request.id}"
    r = store()
    r.hincrby(key, "starts", 1)
    if seconds:
        time.sleep(min(float(seconds), 120.0))
    r.hset(key, mapping={"ranBy": settings.RELEASE_ID, "finishedAt": f"{time.time():.3f}"})
    r.hincrby(key, "runs", 1)


@shared_task(bind=True)
def beat_tick(self):
    sent = self.request.get("greenlight_sent") or time.time()
    store().rpush(
        "greenlight:beat",
        json.dumps({"sent": float(sent), "ran": time.time(), "release": settings.RELEASE_ID}),
    )
