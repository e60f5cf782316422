"""Endpoints of the example site's background work (Celery on Redis, greenlight.json's worker
and beat): enqueue a task, read what happened to it, read beat's ticks."""
import json

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

_store = None


def store():
    """The Redis the broker uses (REDIS_URL): where tasks and ticks are recorded."""
    global _store
    if _store is None:
        import redis

        _store = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    return _store


def _no_broker():
    return JsonResponse({"errors": {"broker": "this environment has no Redis (REDIS_URL)"}}, status=503)


# csrf_exempt: a machine-to-machine test endpoint without sessions or cookies.
@csrf_exempt
@require_POST
def enqueue(request):
    """POST /api/tasks [seconds=N]: a task that runs N seconds (at most 120), then records its run."""
    if not settings.REDIS_URL:
        return _no_broker()
    from .tasks import record_run

    try:
        seconds = max(0.0, min(float(request.POST.get("seconds") or 0), 120.0))
    except ValueError:
        return JsonResponse({"errors": {"seconds": "not a number"}}, status=400)
    result = record_run.delay(seconds)
    store().hset(f"greenlight:task:{result.id}", "enqueuedBy", settings.RELEASE_ID)
    return JsonResponse({"id": result.id, "release": settings.RELEASE_ID}, status=202)


@require_GET
def task(request, task_id):
    """GET /api/tasks/<id>: how often it started and ran (once each, when all is well), and by whom."""
    if not settings.REDIS_URL:
        return _no_broker()
    h = store().hgetall(f"greenlight:task:{task_id}")
    return JsonResponse(
        {
            "id": task_id,
            "starts": int(h.get("starts", 0)),
            "runs": int(h.get("runs", 0)),
            "enqueuedBy": h.get("enqueuedBy"),
            "ranBy": h.get("ranBy"),
            "finishedAt": float(h["finishedAt"]) if h.get("finishedAt") else None,
        }
    )


@require_GET
def beat(request):
    """GET /api/beat: every tick beat sent (when, and the release that ran it), oldest first."""
    if not settings.REDIS_URL:
        return _no_broker()
    ticks = [json.loads(t) for t in store().lrange("greenlight:beat", 0, -1)]
    return JsonResponse({"interval": settings.BEAT_INTERVAL_SECONDS, "ticks": ticks})
