from django.conf import settings
from django.contrib import admin
from django.urls import path

from notes import background, views

urlpatterns = [
    path("", views.index, name="index"),
    path("api/notes", views.notes_api, name="notes-api"),
    path("api/notes/<int:pk>", views.note_update, name="note-update"),
    path("api/tasks", background.enqueue, name="task-enqueue"),
    path("api/tasks/<str:task_id>", background.task, name="task"),
    path("api/beat", background.beat, name="beat"),
    path("api/uploads", views.upload, name="upload"),
    path(f"{settings.MEDIA_URL.strip('/')}/<path:name>", views.media, name="media"),
]

# A secret path keeps the admin away from drive-by scanners; no path, no admin.
if settings.ADMIN_PATH:
    urlpatterns.append(path(f"{settings.ADMIN_PATH}/", admin.site.urls))
