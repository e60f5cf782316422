"""Health endpoint answered before anything else in the middleware stack."""
from django.conf import settings
from django.http import HttpResponse


class HealthCheckMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.path = settings.HEALTH_PATH
        self.body = settings.RELEASE_ID.encode("utf-8")

    def __call__(self, request):
        # Answer before request.get_host() is ever called (no ALLOWED_HOSTS
        # check) and without a query: the deploy gate and the load balancer
        # ask "which release is this process?", not "is the database up?".
        if request.path_info == self.path and request.method in ("GET", "HEAD"):
            response = HttpResponse(b"" if request.method == "HEAD" else self.body, content_type="text/plain")
            response["Content-Length"] = str(len(self.body))
            response["Cache-Control"] = "no-store"
            return response
        return self.get_response(request)
