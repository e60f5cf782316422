"""A tiny JSON API and a status page, enough for tests to exercise a release."""
import mimetypes
import posixpath

from django import forms
from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.utils.html import format_html
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from .models import Note


class NoteForm(forms.ModelForm):
    class Meta:
        model = Note
        fields = ["title", "body", "attachment"]


def note_json(note):
    return {"id": note.pk, "title": note.title, "attachment": note.attachment.url if note.attachment else None}


@require_GET
def index(request):
    return HttpResponse(
        format_html(
            "<!doctype html><title>greenlight</title><h1>greenlight example site</h1>"
            "<p>Release <code>{}</code>, {} notes.</p>",
            settings.RELEASE_ID,
            Note.objects.count(),
        )
    )


# csrf_exempt: a machine-to-machine test endpoint without sessions or cookies.
@csrf_exempt
@require_http_methods(["GET", "POST"])
def notes_api(request):
    if request.method == "POST":
        form = NoteForm(request.POST, request.FILES)
        if not form.is_valid():
            return JsonResponse({"errors": form.errors.get_json_data()}, status=400)
        return JsonResponse(note_json(form.save()), status=201)
    notes = Note.objects.order_by("id")
    # ?limit=N: the newest N only (a load that keeps writing keeps its reads the same size).
    limit = request.GET.get("limit", "")
    if limit.isdigit():
        notes = reversed(Note.objects.order_by("-id")[: int(limit)])
    return JsonResponse({"release": settings.RELEASE_ID, "notes": [note_json(note) for note in notes]})


# The write path that changes a row: POST /api/notes/<id> with the fields to change (title,
# body), as a form posts them; fields left out keep their value.
@csrf_exempt
@require_http_methods(["POST"])
def note_update(request, pk):
    note = Note.objects.filter(pk=pk).first()
    if note is None:
        return JsonResponse({"errors": {"id": "no such note"}}, status=404)
    data = {"title": note.title, "body": note.body, **request.POST.dict()}
    form = NoteForm(data, request.FILES, instance=note)
    if not form.is_valid():
        return JsonResponse({"errors": form.errors.get_json_data()}, status=400)
    return JsonResponse(note_json(form.save()))


class UploadForm(forms.Form):
    file = forms.FileField()


# POST /api/uploads (multipart, the file as `file`): stores it in the site's media storage
# (the stack's bucket, or MEDIA_ROOT) under uploads/, never over an existing file, and answers
# its name and URL. The URL is on the site (MEDIA_URL), so any host serves it.
@csrf_exempt
@require_http_methods(["POST"])
def upload(request):
    form = UploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return JsonResponse({"errors": form.errors.get_json_data()}, status=400)
    f = form.cleaned_data["file"]
    name = default_storage.save(posixpath.join("uploads", posixpath.basename(f.name)), f)
    return JsonResponse({"name": name, "size": f.size, "url": default_storage.url(name)}, status=201)


# GET /media/<name>: a stored file, streamed from the media storage. On the hosts nginx serves
# what is in shared/media itself and passes the rest here (the bucket's files).
@require_GET
def media(request, name):
    try:
        f = default_storage.open(name, "rb")
    except (SuspiciousOperation, FileNotFoundError):
        raise Http404("no such file") from None
    content_type, encoding = mimetypes.guess_type(name)
    response = FileResponse(f, content_type=content_type or "application/octet-stream")
    if encoding:
        response.headers["Content-Encoding"] = encoding
    # Uploads are the users' content on the site's own origin: never run as a page of it.
    response.headers["Content-Security-Policy"] = "sandbox"
    return response
