"""The site's Celery app: the broker is REDIS_URL from .env (never os.environ).

greenlight runs `celery -A greenlight_site worker` on every host and `celery -A
greenlight_site beat` on the first host only (greenlight.json), both under supervisor with
the live release's code. Tasks are acknowledged after they ran (acks_late), so a task whose
worker is stopped before it finishes goes back to the queue; a warm shutdown (TERM, what
supervisor sends) lets running tasks finish first.
"""
import os
import time

from celery import Celery
from celery.signals import before_task_publish

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "greenlight_site.settings")

app = Celery("greenlight_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@before_task_publish.connect
def stamp_sent(headers=None, **_):
    """Each message carries when it was sent (beat's ticks are counted by it, notes/tasks.py)."""
    if headers is not None:
        headers.setdefault("greenlight_sent", time.time())
