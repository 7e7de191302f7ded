"""The load test's locustfile (benchmarks/loadtest/) imports and mixes 70% reads with 30% writes; the
in-process replay of its requests (in_process.py) sends the same request types.

Imported in a child process: locust patches the standard library with gevent when imported."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import json, sys
sys.path.insert(0, "benchmarks/loadtest")
import locustfile
weights = {}
for task in locustfile.SalesRep.tasks:
    weights[task.__name__] = weights.get(task.__name__, 0) + 1
print(json.dumps({"weights": weights, "reads": locustfile.READS, "writes": locustfile.WRITES}))
"""


def test_locustfile_imports_and_its_task_weights_are_70_reads_to_30_writes():
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    weights, reads, writes = found["weights"], found["reads"], found["writes"]
    # Every task is a read or a write, with the weight the tables give it.
    assert set(weights) == set(reads) | set(writes)
    assert not set(reads) & set(writes)
    assert {name: weights[name] for name in reads} == reads
    assert {name: weights[name] for name in writes} == writes
    assert sum(reads.values()) == 70
    assert sum(writes.values()) == 30
    # The writes the issue names: create lead, log activity, move stage, convert, import 100 rows.
    assert set(writes) == {
        "lead_create",
        "activity_log",
        "opportunity_move_stage",
        "lead_convert",
        "lead_import_100",
    }


IN_PROCESS_PROBE = """
import json, sys
sys.path.insert(0, "benchmarks/loadtest")
import in_process
print(json.dumps({"requests": sorted(in_process.REQUESTS), "weights": in_process.mix_weights(),
                  "locust": "locust" in sys.modules}))
"""


def test_the_in_process_replay_sends_each_request_type_of_the_mix_without_importing_locust():
    result = subprocess.run(
        [sys.executable, "-c", IN_PROCESS_PROBE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["requests"] == sorted(found["weights"])
    assert sum(found["weights"].values()) == 100
    assert found["locust"] is False
