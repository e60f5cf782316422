"""Background work of the example site, recorded in Redis so tests can count it.

record_run: enqueued by POST /api/tasks; counts each start and each completed run of its id,
and which release ran it. beat_tick: scheduled by beat every BEAT_INTERVAL_SECONDS; appends
when beat sent it and which release ran it. Nothing here touches the database (no migration).
"""
import json
import time

from celery import shared_task
from django.conf import settings

from .background import store


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
    # When beat sent it (greenlight_site/celery.py stamps each message), not when a worker got to it.
    sent = self.request.get("greenlight_sent") or (self.request.headers or {}).get("greenlight_sent") or time.time()
    store().rpush(
        "greenlight:beat",
        json.dumps({"sent": float(sent), "ran": time.time(), "release": settings.RELEASE_ID}),
    )
