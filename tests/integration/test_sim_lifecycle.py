"""Starting and stopping the simulator: free ports, clean shutdown with held-open requests, CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import httpx
import pytest

from llm_routing.sim import FaultPlan, SimModel, SimulatedProvider
from llm_routing.sim.cli import serve_main


def test_start_and_stop_free_the_port():
    sim = SimulatedProvider([SimModel(name="m")])
    sim.start()
    port = sim.port
    assert httpx.get(f"{sim.base_url}/models").status_code == 200
    sim.stop()
    assert not sim.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2)


def test_two_simulators_get_different_ports():
    with (
        SimulatedProvider([SimModel(name="a")]) as one,
        SimulatedProvider([SimModel(name="b")]) as two,
    ):
        assert one.port != two.port


def test_starting_twice_is_an_error():
    with (
        SimulatedProvider([SimModel(name="m")]) as sim,
        pytest.raises(RuntimeError, match="already running"),
    ):
        sim.start()


def test_stop_closes_requests_that_are_held_open():
    failures = []

    def call(url):
        try:
            httpx.post(
                f"{url}/chat/completions",
                timeout=60,
                json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
            )
        except httpx.HTTPError as exc:
            failures.append(exc)

    sim = SimulatedProvider([SimModel(name="m", faults=FaultPlan.always("timeout"))])
    sim.start()
    threads = [threading.Thread(target=call, args=(sim.base_url,)) for _ in range(5)]
    for t in threads:
        t.start()
    while sim.stats()["faults"].get("timeout", 0) < 5:
        threading.Event().wait(0.01)
    sim.stop(timeout=10)
    for t in threads:
        t.join(timeout=10)
    assert not any(t.is_alive() for t in threads)
    assert len(failures) == 5


def test_hang_with_a_limit_closes_the_connection_after_it():
    plan = FaultPlan.always("timeout", hang=0.2)
    with (
        SimulatedProvider([SimModel(name="m", faults=plan)]) as sim,
        pytest.raises(httpx.HTTPError),
    ):
        httpx.post(
            f"{sim.base_url}/chat/completions",
            timeout=30,
            json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        )


def test_duplicate_model_names_are_rejected():
    with pytest.raises(ValueError, match="'m'"):
        SimulatedProvider([SimModel(name="m"), SimModel(name="n", aliases=("m",))])


def test_set_faults_on_an_unknown_model_names_the_known_ones():
    sim = SimulatedProvider([SimModel(name="m")])
    with pytest.raises(ValueError, match="known: m"):
        sim.set_faults("other", FaultPlan.always(503))


def test_serve_main_rejects_faults_for_unknown_models(capsys):
    assert serve_main(["--port", "0", "--faults", "ghost=503:0.5"]) == 2
    assert "ghost" in capsys.readouterr().err


def test_module_serve_runs_until_sigterm():
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llm_routing.sim",
            "serve",
            "--port",
            "0",
            "--faults",
            "sim-mini=503@1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        first = proc.stdout.readline()
        base_url = first.strip().rsplit(" ", 1)[-1]
        assert base_url.endswith("/v1")
        r = httpx.post(
            f"{base_url}/chat/completions",
            json={"model": "sim-mini", "messages": [{"role": "user", "content": "x"}]},
        )
        assert r.status_code == 503
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
