"""Fixtures for the modelmgr Python module tests: hub emulators (the modelmgr-hub-emulator program on port 0)
and a per-test environment (HF_ENDPOINT, a temporary cache, no token from the developer's machine)."""

import os
import subprocess

import pytest


def _start_emulator(*extra):
    program = os.environ.get("MODELMGR_EMULATOR", "modelmgr-hub-emulator")
    proc = subprocess.Popen([program, "--port", "0", *extra], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # "endpoint=http://127.0.0.1:PORT cdn=http://127.0.0.1:PORT"
    fields = dict(part.split("=", 1) for part in line.split())
    if "endpoint" not in fields:
        proc.kill()
        raise RuntimeError(f"the emulator did not print its endpoint: {line!r}")
    return proc, fields["endpoint"]


@pytest.fixture(scope="session")
def emulator():
    proc, endpoint = _start_emulator()
    yield endpoint
    proc.terminate()
    proc.wait()


@pytest.fixture(scope="session")
def slow_emulator():
    """Every body response paced at 1 MB/s: downloads of a few MiB take long enough to interrupt."""
    proc, endpoint = _start_emulator("--connection-rate", "1000000", "--total-rate", "1000000")
    yield endpoint
    proc.terminate()
    proc.wait()


@pytest.fixture
def hub_env(monkeypatch, tmp_path, emulator):
    for name in list(os.environ):
        if name.startswith(("HF_", "HUGGING")) or name == "TRANSFORMERS_OFFLINE":
            monkeypatch.delenv(name)
    monkeypatch.setenv("HF_ENDPOINT", emulator)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MODELMGR_RETRY_BASE_MS", "1")
    return tmp_path / "cache"
