"""Benchmark: the global search in the admin's header (issue 23): target p95 ≤ 150 ms at full volume.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_full_copy \\
        .venv/bin/python benchmarks/global_search.py [--runs 30] [--warmup 3] [--only rep]

Run against (a copy of) a database seeded with ``manage.py crm_seed`` at full volume: it adds a CRM Admin
user (``bench-crm-admin``) and signs in as it and as a seeded sales rep (who sees only their own and
unowned leads and deals; accounts and contacts are shared). Cases: ``GET /admin/search/?q=…&format=json``
(what the header's box asks for: five hits a kind, grouped) for a substring of an email, a last name,
a common three-letter fragment and a rare one, each as the CRM Admin and as the rep.

Baseline: the same hits read with a bare cursor as a person would write it: per kind, the ids of the
first six visible matches (``UPPER(col) LIKE UPPER('%term%')`` OR-ed across the searched columns, which
the trigram indexes answer; for the leads one ``LIKE`` on their search text, crm 0046), then those
records with what their lines show. A check compares the ids.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h

TARGET_MS = 150
PER_KIND = 5
ADMIN_USERNAME = "bench-crm-admin"

# (table, searched columns, owned: visibility by owner, the columns and joins of a hit's line)
KINDS = {
    "leads": (
        "crm_lead",
        ("name", "contact_name", "email", "company_name", "phone"),
        True,
        "SELECT x.id, x.name, x.company_name, x.contact_name, x.email, s.name FROM crm_lead x "
        "JOIN crm_stage s ON s.id = x.stage_id",
    ),
    "contacts": (
        "crm_contact",
        ("first_name", "last_name", "email", "phone", "mobile"),
        False,
        "SELECT x.id, x.first_name, x.last_name, x.email, x.phone, a.name FROM crm_contact x "
        "LEFT JOIN crm_account a ON a.id = x.account_id",
    ),
    "accounts": (
        "crm_account",
        ("name", "website", "phone", "billing_city", "billing_country"),
        False,
        "SELECT x.id, x.name, x.industry, x.billing_city, x.website FROM crm_account x",
    ),
    "deals": (
        "sales_opportunity",
        ("name",),
        True,
        "SELECT x.id, x.name, a.name, s.name, x.status FROM sales_opportunity x "
        "LEFT JOIN crm_account a ON a.id = x.account_id JOIN crm_stage s ON s.id = x.stage_id",
    ),
}


def match_sql(table: str, columns, term: str) -> tuple[str, list]:
    """A substring in any case in one of ``columns``: on the leads, their search text (crm 0046)."""
    if table == "crm_lead":
        return "search_text LIKE UPPER(%s)", [f"%{term}%"]
    condition = " OR ".join(f'UPPER("{column}"::text) LIKE UPPER(%s)' for column in columns)
    return condition, [f"%{term}%"] * len(columns)


def search_sql(term: str, owner_id: int | None):
    """Per kind: the first PER_KIND + 1 matching ids the user sees, then the first PER_KIND records."""

    def run():
        from django.db import connection

        connection.ensure_connection()
        results = []
        with connection.connection.cursor() as cursor:
            for table, columns, owned, hit_sql in KINDS.values():
                condition, params = match_sql(table, columns, term)
                visible = ""
                if owned and owner_id is not None:
                    visible = " AND (owner_id IS NULL OR owner_id = %s)"
                    params.append(owner_id)
                cursor.execute(
                    f"SELECT id FROM {table} WHERE ({condition}){visible} LIMIT %s", [*params, PER_KIND + 1]
                )
                ids = [row[0] for row in cursor.fetchall()]
                results.append(ids)
                if ids:
                    cursor.execute(f"{hit_sql} WHERE x.id = ANY(%s) ORDER BY x.id DESC", [ids[:PER_KIND]])
                    cursor.fetchall()
        return results

    return run


def same_hits(client, url: str, sql) -> tuple[str, None]:
    body = h.get_ok(client, url).json()
    ours = {group["key"]: len(group["hits"]) for group in body["groups"]}
    theirs = {key: min(len(ids), PER_KIND) for key, ids in zip(KINDS, sql(), strict=True) if ids}
    if ours != theirs:
        raise SystemExit(f"{url}: hits per kind {ours}, the SQL baseline's {theirs}")
    return f"same hits per kind as the SQL baseline: {ours or 'none'}", None


def matches(term: str) -> str:
    """How many records of each kind contain ``term`` (up to 100,000): how common it is."""
    from django.db import connection

    counts = []
    with connection.cursor() as cursor:
        for key, (table, columns, _owned, _hit) in KINDS.items():
            condition, params = match_sql(table, columns, term)
            sql = f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE {condition} LIMIT 100000) x"
            cursor.execute(sql, params)
            counts.append(f"{key} {cursor.fetchone()[0]:,}")
    return ", ".join(counts)


def users():
    """The CRM Admin (made on first use) and a seeded rep who owns records."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from crm.models import Lead

    User = get_user_model()
    admin = User.objects.filter(username=ADMIN_USERNAME).first()
    if admin is None:
        admin = User.objects.create_user(ADMIN_USERNAME, f"{ADMIN_USERNAME}@example.com", None, is_staff=True)
        admin.groups.add(Group.objects.get(name="CRM Admin"))
    owner_id = (
        Lead.objects.filter(owner__isnull=False).order_by("pk").values_list("owner_id", flat=True).first()
    )
    rep = User.objects.get(pk=owner_id)
    return admin, rep


def terms() -> list[tuple[str, str]]:
    """(what, term): taken from the data, so the benchmark searches what the seed holds."""
    from crm.models import Lead

    middle = Lead.objects.order_by("pk").values("pk")[
        Lead.objects.count() // 2 : Lead.objects.count() // 2 + 1
    ]
    lead = Lead.objects.filter(pk__in=middle).values("email", "contact_name").get()
    email = lead["email"].split("@")[0]
    last_name = lead["contact_name"].split()[-1]
    return [
        ("email", email),
        ("last name", last_name),
        ("common fragment", "son"),
        ("rare fragment", "xyq"),
    ]


def cases(args) -> list[h.Case]:
    admin, rep = users()
    admin_client, rep_client = h.admin_client(admin), h.admin_client(rep)
    result = []
    for what, term in terms():
        counts = matches(term)
        for label, client, owner_id in (("CRM Admin", admin_client, None), ("rep", rep_client, rep.pk)):
            url = f"/admin/search/?q={term}&format=json"
            sql = search_sql(term, owner_id)
            result.append(
                h.Case(
                    name=f"search {what} “{term}” as {label}",
                    call=h.request_call(client, url),
                    sql=sql,
                    target=f"p95 ≤ {TARGET_MS} ms",
                    target_p95_ms=TARGET_MS,
                    check=lambda client=client, url=url, sql=sql: same_hits(client, url, sql),
                    notes=[f"matches: {counts}"],
                )
            )
    return result


def main(argv=None):
    h.setup_django()
    args = h.arguments("Global search benchmark", argv, runs=30, warmup=3)
    h.run("Global search at full volume", cases(args), args)


if __name__ == "__main__":
    main()
