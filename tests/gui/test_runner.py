"""The one runner of background work: callbacks on the GUI thread, cancel closes the generator
on its worker thread (so core's ``finally`` runs there), quitting waits for every job."""

import threading
import time

import pytest

from fcn_gui.runner import Runner
from fcn_gui.workers import cancel_asked


@pytest.fixture
def runner():
    """A runner that waits for its jobs at the end (a QThread must not outlive its object)."""
    runner = Runner()
    yield runner
    runner.shutdown()


def test_callbacks_arrive_on_the_gui_thread_in_order(qtbot, runner):
    seen, gui = [], threading.current_thread()

    def work():
        yield from range(3)
        return "done"

    def note(kind):
        return lambda *args: seen.append((kind, threading.current_thread() is gui, *args))

    runner.start(work, "work", on_yield=note("yield"), on_result=note("result"), on_finished=note("end"))
    qtbot.waitUntil(lambda: bool(seen) and seen[-1][0] == "end")
    assert [s[0] for s in seen] == ["yield"] * 3 + ["result", "end"]
    assert all(s[1] for s in seen)  # every callback ran on the GUI thread
    assert runner.names() == []


def test_cancel_closes_the_generator_on_its_worker_thread(qtbot, runner):
    cleaned, worker, started = [], [], threading.Event()

    def endless():
        worker.append(threading.current_thread())
        try:
            while True:
                started.set()
                yield None
                time.sleep(0.01)
        finally:
            cleaned.append(threading.current_thread())

    finished = []
    runner.start(endless, "endless", on_finished=lambda: finished.append(1), visible=True)
    assert runner.busy
    started.wait(5)
    with qtbot.waitSignal(runner.jobs_idle, timeout=5000):
        runner.cancel_visible()
    assert cleaned == worker and cleaned[0] is not threading.current_thread()
    assert finished == [1] and not runner.busy


def test_long_work_between_two_yields_sees_the_cancel_and_stops_early(qtbot, runner):
    """A whole-photo prediction between two yields asks ``cancel_asked`` between its tiles."""
    started, tiles = threading.Event(), []

    def predict_whole():
        yield None
        started.set()
        while not cancel_asked() and len(tiles) < 10_000:
            tiles.append(1)
            time.sleep(0.001)
        yield None  # the cancel takes effect here

    runner.start(predict_whole, "predict", visible=True)
    started.wait(5)
    with qtbot.waitSignal(runner.jobs_idle, timeout=5000):
        runner.cancel_visible()
    assert len(tiles) < 10_000 and not cancel_asked()  # stopped early; this thread runs no job


def test_an_error_without_a_handler_is_reported_once(qtbot, runner):

    def broken():
        yield
        raise ValueError("bad pixel")

    with qtbot.waitSignal(runner.job_failed, timeout=5000) as failed:
        runner.start(broken, "broken")
    assert "bad pixel" in failed.args[0]


def test_shutdown_waits_for_every_job_and_refuses_new_ones(qtbot, runner):
    ended, running = [], threading.Semaphore(0)

    def slow(n):
        running.release()
        try:
            for _ in range(1000):
                time.sleep(0.005)
                yield
        finally:
            ended.append(n)

    for n in range(3):
        runner.start(lambda n=n: slow(n), f"slow-{n}")
    for _ in range(3):
        assert running.acquire(timeout=5)
    runner.shutdown()
    assert sorted(ended) == [0, 1, 2] and runner.names() == []
    try:
        runner.start(lambda: slow(9), "late")
    except RuntimeError as exc:
        assert "quits" in str(exc)
    else:
        raise AssertionError("a job started after shutdown")
