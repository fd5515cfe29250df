"""Fixtures for the foundation tests: a real in-process agent on a unix socket."""
from __future__ import annotations

import shutil

import pytest

from tests.support.server import start_inprocess, temp_dir


@pytest.fixture(scope="module")
def agent():
    tmp = temp_dir()
    a = start_inprocess(tmp)
    yield a
    a.stop()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def tmp(tmp_path):
    return tmp_path
