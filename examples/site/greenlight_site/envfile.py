"""Reading the site's configuration from BASE_DIR/.env.

On the hosts `.env` is a symlink to the shared, mode-0600 file rendered from
SSM; it is the only source of secrets (never os.environ, which leaks into
child processes, /proc and crash reports). The format is deliberately dumb:
KEY=VALUE, the value is everything after the first "=", no quotes, no "$"
expansion, so that any generated secret round-trips unchanged.
"""
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured


def read_env(path):
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise ImproperlyConfigured(f"{path} is missing; the site reads its settings only from that file") from None
    values = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            # Never echo the line: it may hold a secret.
            raise ImproperlyConfigured(f"{path}:{number}: expected KEY=VALUE")
        values[key.strip()] = value
    return values


def flag(env, key, default=False):
    value = env.get(key)
    if value is None or value == "":
        return default
    if value not in ("on", "off"):
        raise ImproperlyConfigured(f"{key} must be 'on' or 'off'")
    return value == "on"


def database_from_url(url):
    """Django DATABASES entry from postgres://user:password@host:port/name?opts."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ImproperlyConfigured("DATABASE_URL must be a postgres:// URL")
    try:
        port = parts.port
    except ValueError:
        raise ImproperlyConfigured("DATABASE_URL has an invalid port") from None
    name = unquote(parts.path.lstrip("/"))
    if not name or not parts.hostname:
        raise ImproperlyConfigured("DATABASE_URL needs a host and a database name")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname,
        "PORT": str(port) if port else "",
        # Everything in the query string (sslmode, connect_timeout, ...) goes
        # to libpq untouched.
        "OPTIONS": dict(parse_qsl(parts.query, keep_blank_values=True)),
    }


def host_list(value):
    return [host.strip() for host in (value or "").split(",") if host.strip()]
