"""A sales team's day against the REST API: 70% reads, 30% writes, each simulated user its own rep.

Run by ``benchmarks/loadtest/run.py``, which prepares the plan (``LOADTEST_PLAN``: a JSON file with one
entry per rep: API token, user id, some of the rep's open leads and open deals, search words) and starts
gunicorn. Each request type is its own task; the task weights are the mix, out of 100 (``READS`` and
``WRITES`` below, checked by tests/test_loadtest_locustfile.py).
"""

import csv
import io
import itertools
import json
import os
import random
import uuid
from datetime import UTC, datetime

from locust import between, task
from locust.contrib.fasthttp import FastHttpUser

API = "/api/v1/crm"

# Request type → weight (per 100 requests). Reads: lists, boards, record pages, search, dashboard.
READS = {
    "lead_list": 14,
    "opportunity_list": 9,
    "lead_kanban": 7,
    "opportunity_kanban": 7,
    "lead_detail": 12,
    "opportunity_detail": 7,
    "lead_search": 7,
    "dashboard": 7,
}
# Writes: create a lead, log an activity, move a deal's stage, convert a lead, import 100 leads.
WRITES = {
    "lead_create": 10,
    "activity_log": 9,
    "opportunity_move_stage": 6,
    "lead_convert": 3,
    "lead_import_100": 2,
}
IMPORT_ROWS = 100


def _load_plan() -> list[dict]:
    path = os.environ.get("LOADTEST_PLAN")
    if not path:
        return []
    with open(path) as handle:
        return json.load(handle)["reps"]


PLAN = _load_plan()
# Runs against one database share the plan: run i of n converts only every n-th of a rep's open
# leads, from the i-th on, so no run tries to convert a lead an earlier run converted.
_PHASE, _PHASES = (int(part) for part in os.environ.get("LOADTEST_PHASE", "0/1").split("/"))
# Simulated user n is rep n of the plan: run.py starts as many users as the plan has reps.
_next_rep = itertools.count()


class SalesRep(FastHttpUser):
    # A rep reads a page, thinks briefly, acts again; the runner sets the number of reps.
    wait_time = between(
        float(os.environ.get("LOADTEST_WAIT_MIN", "0.5")), float(os.environ.get("LOADTEST_WAIT_MAX", "1.5"))
    )

    def on_start(self):
        rep = PLAN[next(_next_rep) % len(PLAN)]
        self.rep = rep
        self.headers = {
            "Authorization": f"Token {rep['token']}",
            # What the TLS-terminating proxy in front of gunicorn says (production's setting).
            "X-Forwarded-Proto": "https",
            "Accept": "application/json",
        }
        self.my_leads = list(rep["open_leads"])
        self.open_leads = self.my_leads[_PHASE::_PHASES]
        random.shuffle(self.open_leads)
        self.deals = [tuple(deal) for deal in rep["open_deals"]]
        self.stages = {int(pipeline): ids for pipeline, ids in rep["open_stages"].items()}

    def _get(self, url: str, *, name: str):
        return self.client.get(url, name=name, headers=self.headers)

    def _post(self, url: str, *, name: str, json=None, files: dict | None = None):
        if files is None:
            return self.client.post(url, name=name, json=json, headers=self.headers)
        # One file as multipart/form-data, written here: the client sends the body it is given.
        (field, (filename, content, content_type)), boundary = next(iter(files.items())), uuid.uuid4().hex
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
                f"Content-Type: {content_type}\r\n\r\n"
            ).encode()
            + content
            + f"\r\n--{boundary}--\r\n".encode()
        )
        headers = {**self.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"}
        return self.client.post(url, name=name, data=body, headers=headers)

    # -- reads -------------------------------------------------------------------------------------

    @task(READS["lead_list"])
    def lead_list(self):
        self._get(f"{API}/leads/?status=open&owner={self.rep['user_id']}", name="GET leads/ (mine, open)")

    @task(READS["opportunity_list"])
    def opportunity_list(self):
        self._get(f"{API}/opportunities/?status=open", name="GET opportunities/ (open)")

    @task(READS["lead_kanban"])
    def lead_kanban(self):
        self._get(f"{API}/leads/kanban/?owner={self.rep['user_id']}", name="GET leads/kanban/ (mine)")

    @task(READS["opportunity_kanban"])
    def opportunity_kanban(self):
        self._get(f"{API}/opportunities/kanban/", name="GET opportunities/kanban/")

    @task(READS["lead_detail"])
    def lead_detail(self):
        self._get(f"{API}/leads/{random.choice(self.my_leads)}/", name="GET leads/{id}/")

    @task(READS["opportunity_detail"])
    def opportunity_detail(self):
        deal_id, _pipeline = random.choice(self.deals)
        self._get(f"{API}/opportunities/{deal_id}/", name="GET opportunities/{id}/")

    @task(READS["lead_search"])
    def lead_search(self):
        self._get(f"{API}/leads/?search={random.choice(self.rep['search'])}", name="GET leads/?search=")

    @task(READS["dashboard"])
    def dashboard(self):
        self._get(f"{API}/dashboard/", name="GET dashboard/")

    # -- writes ------------------------------------------------------------------------------------

    @task(WRITES["lead_create"])
    def lead_create(self):
        tag = uuid.uuid4().hex[:12]
        response = self._post(
            f"{API}/leads/",
            json={
                "name": f"Load test {tag} — inbound enquiry",
                "contact_name": f"Pat {tag}",
                "email": f"pat.{tag}@loadtest.example",
                "company_name": f"Loadtest {tag} Ltd",
                "priority": "medium",
                "source": "website",
                "expected_revenue": "12000.00",
                "owner_id": self.rep["user_id"],
            },
            name="POST leads/",
        )
        if response.status_code == 201:
            lead_id = response.json()["id"]
            self.my_leads.append(lead_id)
            self.open_leads.append(lead_id)

    @task(WRITES["activity_log"])
    def activity_log(self):
        self._post(
            f"{API}/activities/",
            json={
                "subject": "Call: discussed next steps",
                "activity_type": "call",
                "status": "completed",
                "due_date": datetime.now(UTC).isoformat(),
                "lead_id": random.choice(self.my_leads),
                "owner_id": self.rep["user_id"],
            },
            name="POST activities/ (log a call)",
        )

    @task(WRITES["opportunity_move_stage"])
    def opportunity_move_stage(self):
        deal_id, pipeline = random.choice(self.deals)
        self._post(
            f"{API}/opportunities/{deal_id}/move-stage/",
            json={"stage_id": random.choice(self.stages[pipeline])},
            name="POST opportunities/{id}/move-stage/",
        )

    @task(WRITES["lead_convert"])
    def lead_convert(self):
        if not self.open_leads:
            return
        lead_id = self.open_leads.pop()
        self._post(f"{API}/leads/{lead_id}/convert/", json={}, name="POST leads/{id}/convert/")

    @task(WRITES["lead_import_100"])
    def lead_import_100(self):
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["name", "contact_name", "email", "company_name", "priority", "source", "owner"])
        batch = uuid.uuid4().hex[:10]
        for n in range(IMPORT_ROWS):
            writer.writerow(
                [
                    f"Trade show lead {batch}-{n}",
                    f"Sam Visitor{n}",
                    f"sam.{batch}.{n}@loadtest.example",
                    f"Expo {batch} {n} GmbH",
                    "low",
                    "trade_show",
                    self.rep["username"],
                ]
            )
        self._post(
            f"{API}/leads/import/",
            files={"file": (f"expo-{batch}.csv", out.getvalue().encode(), "text/csv")},
            name="POST leads/import/ (100 rows)",
        )
