"""``make image-test``: the base image and the documented function image, built once.

Not part of ``make test`` (pyproject's ``norecursedirs``): it needs a container engine and
the RIE, and builds images. Without either it stops at once, naming what is missing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, REPO, MotoServer
from tests.image.base import base_image
from tests.image.dockerfiles import (
    FUNCTION_TAG,
    base_reference,
    default_base,
    function_dockerfile,
)
from tests.image.engines import Engine, ImageConfig, MissingTool, choose_engine
from tests.image.rie import (
    FUNCTION_TIMEOUT_SECONDS,
    Function,
    find_rie,
    function_env,
    init_duration_ms,
    under_rie,
)


@dataclass
class Report:
    """What ``make image-test`` prints at the end: how the images came, their sizes, inits."""

    lines: list[str] = field(default_factory=list)
    init_ms: list[float] = field(default_factory=list)


REPORT = Report()


@dataclass(frozen=True)
class Images:
    """The images built for this session and what running them needs."""

    engine: Engine
    base: str  # the base image, tagged as the documented function Dockerfile's FROM
    function: str
    config: ImageConfig  # the function image's
    rie: Path


def timed(what: str, build: Callable[[], None]) -> None:
    print(f"{what} ...", flush=True)
    started = time.monotonic()
    build()
    REPORT.lines.append(f"{what}: {time.monotonic() - started:.1f} s")


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> Images:
    try:
        rie = find_rie()
        engine = choose_engine()
        REPORT.lines.append(f"engine: {engine.name}; RIE: {rie}")
        print(f"\n{REPORT.lines[-1]}", flush=True)
        base = base_image(engine, default_base(REPO), REPORT.lines)
    except MissingTool as missing:
        pytest.exit(f"make image-test cannot run: {missing}", returncode=3)

    dockerfile = function_dockerfile((REPO / "docs" / "lambda.md").read_text(encoding="utf-8"))
    base_tag = base_reference(dockerfile)  # the documented FROM: s3-event-bridge:<version>
    timed(
        f"build {base_tag}",
        lambda: engine.build(REPO / "Dockerfile", REPO, base_tag, {"BASE_IMAGE": base}),
    )
    documented = tmp_path_factory.mktemp("function") / "function.Dockerfile"
    documented.write_text(dockerfile, encoding="utf-8")
    timed(
        "build the function image of docs/lambda.md",
        lambda: engine.build(documented, EXAMPLES / "thumbnails", FUNCTION_TAG, {}),
    )
    REPORT.lines.append(f"size of the base image {base_tag}: {engine.size(base_tag)}")
    REPORT.lines.append(f"size of the function image: {engine.size(FUNCTION_TAG)}")
    REPORT.lines.append(f"images run by: {engine.runner(FUNCTION_TAG)}")
    return Images(engine, base_tag, FUNCTION_TAG, engine.inspect(FUNCTION_TAG), rie)


RunFunction = Callable[..., AbstractContextManager[Function]]


@pytest.fixture
def run_function(images: Images, aws: MotoServer, tmp_path: Path) -> RunFunction:
    """Run the function image under the RIE, as Lambda would run it with ``config`` set on
    the function; ``handler`` replaces the image's CMD (the handler command)."""

    @contextmanager
    def start(handler: Sequence[str] | None = None, **config: str) -> Iterator[Function]:
        command = [*images.config.entrypoint, *(images.config.cmd if handler is None else handler)]
        env = function_env(aws.endpoint, FUNCTION_TIMEOUT_SECONDS, **config)
        log = tmp_path / f"rie-{len(list(tmp_path.glob('rie-*')))}.log"
        with under_rie(images.engine, images.function, command, env, images.rie, log) as function:
            yield function
        init = init_duration_ms(log.read_text(errors="replace"))
        if init is not None:
            REPORT.init_ms.append(init)

    return start


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not REPORT.lines:
        return
    terminalreporter.section("make image-test")
    for line in REPORT.lines:
        terminalreporter.write_line(line)
    if REPORT.init_ms:
        inits = ", ".join(f"{ms:.0f}" for ms in REPORT.init_ms)
        terminalreporter.write_line(f"the RIE's init duration of each run (ms): {inits}")
