"""Settings of the greenlight example site.

Everything host-specific comes from BASE_DIR/.env (see envfile.py); the code
itself is identical in every environment and every release.
"""
import logging
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from .envfile import database_from_url, flag, host_list, read_env

# resolve(): on hosts the slot (blue/green) is a symlink to releases/<id>, and
# the release's own .env/media symlinks are what must be followed from here.
BASE_DIR = Path(__file__).resolve().parent.parent

ENV = read_env(BASE_DIR / ".env")


def _required(key):
    value = ENV.get(key, "")
    if not value:
        raise ImproperlyConfigured(f"{key} is not set in {BASE_DIR / '.env'}")
    return value


def _release_id():
    try:
        return (BASE_DIR / "REVISION").read_text(encoding="utf-8").strip() or "unknown"
    except FileNotFoundError:
        return "unknown"


SECRET_KEY = _required("SECRET_KEY")
DEBUG = flag(ENV, "DEBUG")
ALLOWED_HOSTS = host_list(ENV.get("ALLOWED_HOSTS"))

# Read once: a running process keeps answering with the release it was started
# from, which is exactly what the deploy's health gate checks.
RELEASE_ID = _release_id()
HEALTH_PATH = ENV.get("HEALTH_PATH") or "/healthz"
if not HEALTH_PATH.startswith("/"):
    raise ImproperlyConfigured("HEALTH_PATH must start with '/'")
ADMIN_PATH = ENV.get("ADMIN_PATH", "").strip("/")

DATABASES = {"default": database_from_url(_required("DATABASE_URL"))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "notes",
]

MIDDLEWARE = [
    # First: load balancer probes use the instance IP as Host, which
    # ALLOWED_HOSTS rejects, and must not depend on the database.
    "greenlight_site.health.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "greenlight_site.urls"
WSGI_APPLICATION = "greenlight_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.debug",
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# TLS ends at the load balancer; it tells us the original scheme.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
HTTPS = flag(ENV, "HTTPS")
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# On hosts a symlink to shared/media, so uploads outlive releases.
MEDIA_URL = "/media/"
MEDIA_ROOT = BASE_DIR / "media"
# Uploads every host sees: with MEDIA_BUCKET (the stack's media bucket, which greenlight puts in
# .env) they go to S3 through django-storages, with the instance role's credentials, and the
# site serves them itself at MEDIA_URL (notes.views.media: the bucket stays private). Without
# it, on MEDIA_ROOT (one host, or a laptop). MEDIA_ENDPOINT_URL and MEDIA_ACCESS_KEY_ID /
# MEDIA_SECRET_ACCESS_KEY are for an S3 other than AWS's (the test rig's stand-in, MinIO); on
# AWS leave them out: boto3 takes the instance role.
MEDIA_BUCKET = ENV.get("MEDIA_BUCKET", "")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
if MEDIA_BUCKET:
    _media = {
        "bucket_name": MEDIA_BUCKET,
        "region_name": ENV.get("MEDIA_REGION") or None,
        # Each upload keeps its own key (a suffix when the name is taken): an object is never
        # overwritten, so a backup's list of keys and versions names what the dump refers to.
        "file_overwrite": False,
        # No ACL: the bucket enforces its owner (BucketOwnerEnforced) and blocks public access.
        "default_acl": None,
        "querystring_auth": False,
    }
    if ENV.get("MEDIA_ENDPOINT_URL"):
        _media.update(endpoint_url=ENV["MEDIA_ENDPOINT_URL"], addressing_style="path")
    if ENV.get("MEDIA_ACCESS_KEY_ID"):
        _media.update(access_key=ENV["MEDIA_ACCESS_KEY_ID"], secret_key=_required("MEDIA_SECRET_ACCESS_KEY"))
    STORAGES["default"] = {"BACKEND": "notes.storage.MediaStorage", "OPTIONS": _media}
# nginx (another user) serves uploads and collected static files; the deploy user (in the
# app's group) removes old releases, static files included. These apply to both.
FILE_UPLOAD_PERMISSIONS = 0o664
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o775

# Background work (greenlight.json's worker and beat) on Redis, when the stack has it
# (greenlight:redis): REDIS_URL is then in .env. Without it the site runs, and its task
# endpoints answer 503.
REDIS_URL = ENV.get("REDIS_URL", "")
CELERY_BROKER_URL = REDIS_URL or "memory://"
# Acknowledged after the task ran: a task whose worker stops first goes back to the queue.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A task unacknowledged this long (its worker died) is delivered again: longer than any task runs.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
BEAT_INTERVAL_SECONDS = float(ENV.get("BEAT_INTERVAL_SECONDS") or 60)
CELERY_BEAT_SCHEDULE = {"tick": {"task": "notes.tasks.beat_tick", "schedule": BEAT_INTERVAL_SECONDS}}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "INFO"},
}

SENTRY_DSN = ENV.get("SENTRY_DSN", "")
if SENTRY_DSN:
    try:
        import sentry_sdk
        from sentry_sdk.integrations.django import DjangoIntegration
    except ImportError:
        logging.getLogger(__name__).warning("SENTRY_DSN is set but sentry_sdk is not installed; not reporting errors")
    else:
        sentry_sdk.init(dsn=SENTRY_DSN, integrations=[DjangoIntegration()], release=RELEASE_ID, send_default_pii=False)
