"""Property-based fuzzing of every operation in the OpenAPI schema: no input gives a 5xx.

Bounded (``MAX_EXAMPLES`` per operation and generation mode) so it runs in the normal suite.
schemathesis 4.x: ``schemathesis.openapi.from_asgi`` loads the schema from the app in process
(running its lifespan once); each operation's ``as_strategy(mode)`` yields ``Case`` objects for
hypothesis; ``case.call_and_validate`` sends one through the app. (The lazy
``schemathesis.pytest.from_fixture`` route fails with this pytest version, hence the explicit
parametrisation over the schema's operations, read from an app that loads nothing.)
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from service.app import create_app
from service.settings import Settings

MAX_EXAMPLES = 30
SPEC = create_app(Settings(head_dir=None)).openapi()
OPERATIONS = [(method.upper(), path) for path, item in SPEC["paths"].items() for method in item]
# negative cases need something to break: operations without parameters or body get none
CASES = [
    (method, path, mode)
    for method, path in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or set(SPEC["paths"][path][method.lower()]) & {"parameters", "requestBody"}
]


@pytest.fixture(scope="module")
def api_schema(head_dir, tmp_path_factory):
    app = create_app(Settings(head_dir=head_dir, data_dir=tmp_path_factory.mktemp("fuzz"), background_load=False,
                              max_batch=64, max_k=50, snapshot_every=20))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_every_route_is_fuzzed():
    assert {path for _, path in OPERATIONS} >= {"/compress", "/search", "/documents", "/documents/{doc_id}", "/indexes"}


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=[f"{m} {p} {g.value}" for m, p, g in CASES])
def test_no_input_gives_a_server_error(api_schema, method, path, mode):
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case):
        case.call_and_validate(checks=[not_a_server_error])

    run()
