"""A property test over docs/openapi.yaml: whatever JSON a client sends to POST /v1/decisions (random values,
and random changes to valid requests), the answer is one of the statuses the file documents, with a body its
schema for that status admits, and nothing reaches Kafka unless the answer is a 200."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nhiguard.streams.decision_api import DecisionApi
from nhiguard.streams.server import build_app
from tests.unit.test_decision_api import BUNDLE, GATE, INSTALL, OPENAPI, SETTINGS, TOKEN, CoreWaiter, schema
from tests.unit.test_serve import Recorder

RESPONSES = OPENAPI["paths"]["/v1/decisions"]["post"]["responses"]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
VALID = [
    {"format": "verdaccio.log", "record": INSTALL},
    {
        "format": "verdaccio.notify",
        "record": {"event": "publish", "name": "a", "package": "a@1.0.0", "user": "u"},
    },
    GATE["publish-gate"]["value"],
]


@st.composite
def requests(draw: Any) -> Any:
    """Random JSON, or a valid request with one field replaced, removed or added."""
    if draw(st.booleans()):
        return draw(JSON)
    body = json.loads(json.dumps(draw(st.sampled_from(VALID))))
    target = body["record"] if "record" in body and draw(st.booleans()) else body
    key = draw(st.sampled_from(sorted(target)) | st.text(max_size=8))
    if draw(st.booleans()):
        target.pop(key, None)
    else:
        target[key] = draw(JSON)
    return body


def ask(body: Any) -> tuple[int, Any, list]:
    sender = Recorder()

    async def main() -> tuple[int, Any]:
        api = DecisionApi(SETTINGS, sender, CoreWaiter(sender), BUNDLE)  # type: ignore[arg-type]
        async with TestClient(TestServer(build_app(SETTINGS, sender, api=api))) as client:
            h = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
            async with client.post("/v1/decisions", data=json.dumps(body), headers=h) as resp:
                return resp.status, await resp.json()

    status, answer = asyncio.run(main())
    return status, answer, sender.records


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_every_answer_is_one_the_openapi_file_documents(body):
    status, answer, produced = ask(body)
    assert str(status) in RESPONSES, (status, answer)
    if status == 200:
        schema("/paths/~1v1~1decisions/post/responses/200/content/application~1json/schema").validate(answer)
        assert len(produced) == 1
    else:
        schema("Error").validate(answer)
        assert answer["status"] == status and answer["error"]
        # Only what the worker dead-lettered was produced (and it says so).
        assert produced == [] or (status == 422 and "the worker could not read it" in answer["error"])
