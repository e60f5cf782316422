"""WSGI entry point; the artifact's manifest names it (greenlight.json "wsgi")."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "greenlight_site.settings")

application = get_wsgi_application()
