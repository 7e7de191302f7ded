# GIN trigram indexes on UPPER(column::text) for the global search's tickets (number, subject, requester's
# address) and articles (title, keywords): a rare term is read through them (PostgreSQL only; see
# crm.search_indexes and crm.search.first_match_ids).

from django.db import migrations

from crm.search_indexes import create_trigram_indexes


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0004_pg_trgm"),
        ("activities", "0023_ticket_queue_and_board_indexes"),
    ]

    operations = [
        create_trigram_indexes("activities_ticket", "activities_article"),
    ]
