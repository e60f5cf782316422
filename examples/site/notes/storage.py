"""The site's media storage when MEDIA_BUCKET is set: the stack's private S3 bucket."""
from django.conf import settings
from django.utils.encoding import filepath_to_uri
from storages.backends.s3 import S3Storage


class MediaStorage(S3Storage):
    """S3 through django-storages, with URLs on the site itself (MEDIA_URL).

    The bucket is private and refuses plain HTTP, so a browser never fetches from it: the site
    streams each file (notes.views.media), on whichever host the load balancer picks.
    """

    def url(self, name, parameters=None, expire=None, http_method=None):
        return settings.MEDIA_URL + filepath_to_uri(self._normalize_name(name))
