"""Fixtures of the differential suite: ``differ(scenario)`` runs a scenario on WarrenMQ (always) and on
the reference RabbitMQ (when ``WARRENMQ_REFERENCE_URL`` is set) and fails on any difference.
See harness.py and docs/differential-testing.md."""
from __future__ import annotations

import difflib
import json
import logging
import shutil
import warnings

import pytest

from warrenmq.testing import EmbeddedBroker

from .harness import (
    GoldenStore, MgmtReferenceTarget, ReferenceTarget, WarrenTarget, execute, new_token, normalise, recording,
    reference_url,
)
from .mgmt import PrivateNode, existing_node

_tokens: set = set()

# pika logs every channel close the scenarios provoke on purpose
logging.getLogger("pika").setLevel(logging.CRITICAL)


@pytest.fixture(scope="session")
def golden():
    store = GoldenStore()
    yield store
    store.save()


@pytest.fixture(scope="session")
def reference():
    """The reference RabbitMQ, or None.  At the end, checks that no scenario left anything on it."""
    url = reference_url()
    if url is None:
        yield None
        return
    target = ReferenceTarget(url)
    yield target
    if _tokens:
        left = target.leftovers(_tokens)
        assert not left, f"differential scenarios left these on the reference broker: {left}"


def _pretty(outcome) -> list:
    return json.dumps(outcome, indent=1, sort_keys=True, ensure_ascii=False).splitlines()


def _diff(a, b, name_a: str, name_b: str) -> str:
    return "\n".join(difflib.unified_diff(_pretty(a), _pretty(b), name_a, name_b, lineterm="", n=6))


def _differ(request, ours, golden, reference):
    module = request.module.__name__.rsplit(".", 1)[-1]
    test = request.node.name

    def run(scenario):
        token = new_token()
        _tokens.add(token)
        expected = None
        source = None
        if reference is not None:
            expected = normalise(execute(scenario, reference, token, crash_ok=False), token)
            source = "rabbitmq"
        ours_outcome = normalise(execute(scenario, WarrenTarget(ours), token, crash_ok=True), token)
        recorded = golden.get(module, test)
        if reference is not None and recording():
            golden.put(module, test, expected)
        elif reference is None:
            if recorded is None:
                pytest.fail(f"no recorded RabbitMQ outcome for {module}::{test}: run the suite once with "
                            "WARRENMQ_REFERENCE_URL set and WARRENMQ_DIFF_RECORD=1")
            expected, source = recorded, "rabbitmq (recorded)"
        if ours_outcome != expected:
            pytest.fail(f"WarrenMQ differs from RabbitMQ in {test}:\n"
                        + _diff(expected, ours_outcome, source, "warrenmq"), pytrace=False)
        if reference is not None and not recording() and recorded != expected:
            pytest.fail(f"the recording of {module}::{test} is outdated (or the scenario is not deterministic); "
                        "re-record with WARRENMQ_DIFF_RECORD=1:\n" + _diff(recorded, expected, "recorded", source),
                        pytrace=False)
        return ours_outcome

    return run


@pytest.fixture
def differ(request, broker, golden, reference):
    """``differ(scenario)``: run it differentially; returns WarrenMQ's normalised outcome."""
    return _differ(request, broker, golden, reference)


@pytest.fixture(scope="session")
def mgmt_reference():
    """The reference for management API scenarios (mgmt.py): the node ``WARRENMQ_REFERENCE_MGMT_URL`` names,
    else, when a reference RabbitMQ is configured and ``rabbitmq-server`` is installed, a private node with
    the management plugin started for this session; else None (the recordings are the reference)."""
    found = existing_node()
    if found is not None:
        api, amqp, auth = found
        target = MgmtReferenceTarget(amqp, api, auth)
        yield target
        _check_leftovers(target)
        return
    if reference_url() is None:
        yield None
        return
    if shutil.which("rabbitmq-server") is None:
        warnings.warn("WARRENMQ_REFERENCE_URL is set but rabbitmq-server is not installed here, so no private "
                      "RabbitMQ with the management plugin can be started: the management API scenarios "
                      "compare with their recordings only")
        yield None
        return
    node = PrivateNode()
    try:
        node.start()
        target = MgmtReferenceTarget(node.amqp_url, node.api_url)
        yield target
        _check_leftovers(target)
    finally:
        node.stop()


def _check_leftovers(target) -> None:
    if _tokens:
        left = target.leftovers(_tokens)
        assert not left, f"differential scenarios left these on the management reference: {left}"


@pytest.fixture
def api_differ(request, golden, mgmt_reference):
    """``api_differ(scenario)``: like ``differ``, against a WarrenMQ serving the management API and the
    management reference; scenarios use ``env.api(...)``."""
    with EmbeddedBroker(management=True) as b:
        yield _differ(request, b, golden, mgmt_reference)
