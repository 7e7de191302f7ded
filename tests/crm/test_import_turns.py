"""The import's engine and its background writer share one connection; the engine's reads go first."""

import threading
import time

from crm.importing.writing import Turns


def _wait_until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_the_engine_goes_before_the_writers_next_statement():
    turns, order = Turns(), []
    writing, release = threading.Event(), threading.Event()

    def writer():
        with turns.writer():
            order.append("write 1")
            writing.set()
            release.wait(5)
        with turns.writer():  # asked for at once: the waiting engine still goes first
            order.append("write 2")

    def engine():
        with turns.engine():
            order.append("read")

    threads = [threading.Thread(target=writer)]
    threads[0].start()
    writing.wait(5)
    threads.append(threading.Thread(target=engine))
    threads[1].start()
    _wait_until(lambda: turns._engine_waiting == 1)
    release.set()
    for thread in threads:
        thread.join(5)
    assert order == ["write 1", "read", "write 2"]


def test_a_turn_is_given_back_when_its_statement_fails():
    turns = Turns()
    try:
        with turns.writer():
            raise RuntimeError("COPY failed")
    except RuntimeError:
        pass
    done = threading.Event()

    def engine():
        with turns.engine():
            done.set()

    thread = threading.Thread(target=engine)
    thread.start()
    thread.join(5)
    assert done.is_set()


def test_a_streamed_file_starts_with_a_smaller_batch():
    from crm.importing.engine import _batched

    assert [len(batch) for batch in _batched(range(12), 5, first=2)] == [2, 5, 5]
    assert [len(batch) for batch in _batched(range(12), 5)] == [5, 5, 2]
    assert list(_batched([], 5, first=2)) == []
