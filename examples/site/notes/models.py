from django.db import models


class Note(models.Model):
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # db_default, not default: the column is added with a database default that stays, so the
    # release before it (which leaves the column out of its INSERTs) keeps working.
    attachment = models.FileField(upload_to="notes/", blank=True, db_default="")

    def __str__(self):
        return self.title
