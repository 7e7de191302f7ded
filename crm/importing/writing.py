"""Bulk writes for the import engine: never a save() per row.

``DjangoWriter`` uses bulk_create / bulk_update in batches and works on every database.
``PostgresWriter`` streams rows with COPY (ids taken from the table's sequence up front, so the tag
links can be written in the same pass) and updates through a temporary table; it is the same write,
several times faster for large files.
"""

from django.db import connection as default_connection
from django.db.models.functions import Lower

from crm.models import Tag

from .lookups import chunked

BATCH_SIZE = 1000


def lock_for_import(schema) -> None:
    """Serialise imports of one kind: two files naming the same new email must not both create it."""
    if default_connection.vendor == "postgresql":
        with default_connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"crm-import:{schema.kind}"])


def tag_through(model):
    through = model._meta.get_field("tags").remote_field.through
    fk = next(f.attname for f in through._meta.concrete_fields if f.is_relation and f.related_model is model)
    return through, fk


def ensure_tags(known: dict[str, int], new: dict[str, str]) -> dict[str, int]:
    """Ids of every tag by lower-case name, creating the new ones (a concurrent twin is reused)."""
    tag_ids = dict(known)
    if new:
        Tag.objects.bulk_create([Tag(name=name) for name in new.values()], ignore_conflicts=True)
        for chunk in chunked(list(new)):
            rows = (
                Tag.objects.annotate(_lname=Lower("name")).filter(_lname__in=chunk).values_list("id", "name")
            )
            for pk, name in rows:
                tag_ids[name.lower()] = pk
    return tag_ids


def writer_for(connection):
    return PostgresWriter() if connection.vendor == "postgresql" else DjangoWriter()


class DjangoWriter:
    def insert(self, model, attnames, rows, *, now, owner_id=None, progress=None) -> list[int]:
        extra = {"owner_id": owner_id} if owner_id is not None else {}
        ids = []
        for start in range(0, len(rows), BATCH_SIZE):
            objs = [
                model(**dict(zip(attnames, row, strict=True)), **extra)
                for row in rows[start : start + BATCH_SIZE]
            ]
            for obj in objs:
                obj.created_at = obj.updated_at = now
            model.objects.bulk_create(objs)
            ids.extend(obj.pk for obj in objs)
            if progress:
                progress(len(ids))
        return ids

    def update(self, model, attnames, rows, *, now, progress=None) -> None:
        fields = [*attnames, "updated_at"]
        done = 0
        for start in range(0, len(rows), BATCH_SIZE):
            batch = rows[start : start + BATCH_SIZE]
            objs = [
                model(pk=pk, updated_at=now, **dict(zip(attnames, row, strict=True))) for pk, row in batch
            ]
            model.objects.bulk_update(objs, fields)
            done += len(batch)
            if progress:
                progress(done)

    def set_tags(self, model, cleared_ids: list[int], links: list[tuple[int, int]]) -> None:
        """Replace the tags of ``cleared_ids`` and add ``links`` (record id, tag id)."""
        through, fk = tag_through(model)
        for chunk in chunked(cleared_ids):
            through.objects.filter(**{f"{fk}__in": chunk}).delete()
        for start in range(0, len(links), BATCH_SIZE * 5):
            through.objects.bulk_create(
                [
                    through(**{fk: pk, "tag_id": tag_id})
                    for pk, tag_id in links[start : start + BATCH_SIZE * 5]
                ]
            )


class PostgresWriter(DjangoWriter):
    pass
