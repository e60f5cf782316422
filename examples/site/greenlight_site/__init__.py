# The Celery app, so that @shared_task binds to it in every process (web and worker).
from .celery import app as celery_app

__all__ = ("celery_app",)
