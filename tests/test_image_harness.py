"""The parts of ``make image-test`` that need no container engine (tests/image has the rest).

What it builds is read from the repository's own files, and it never passes silently: with
no RIE or no engine it stops at once, non-zero, naming what is missing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, REPO
from tests.image.dockerfiles import (
    FUNCTION_TAG,
    base_reference,
    default_base,
    expand,
    function_dockerfile,
    global_args,
)
from tests.image.engines import (
    HOST_CA_BUNDLE,
    Buildah,
    Docker,
    MissingTool,
    choose_engine,
    image_config,
)
from tests.image.rie import (
    FUNCTION_TIMEOUT_SECONDS,
    INVOKE_PATH,
    RIE_MISSING,
    find_rie,
    function_env,
    init_duration_ms,
    rie_spec,
)

LAMBDA_MD = (REPO / "docs" / "lambda.md").read_text(encoding="utf-8")
EXAMPLES_CONTEXT = (EXAMPLES / "thumbnails").relative_to(REPO)


def executable(path: Path, text: str = "#!/bin/sh\nexit 1\n") -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def test_the_function_image_is_the_dockerfile_docs_lambda_shows() -> None:
    dockerfile = function_dockerfile(LAMBDA_MD)

    assert base_reference(dockerfile).startswith("s3-event-bridge:")
    assert 'CMD ["python", "thumbnail.py"]' in dockerfile
    copied = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("COPY ")]
    assert copied == ["requirements.txt", "thumbnail.py"]
    assert all((EXAMPLES / "thumbnails" / name).is_file() for name in copied)


def test_a_function_section_without_exactly_one_dockerfile_block_is_refused() -> None:
    with pytest.raises(ValueError, match="has no section"):
        function_dockerfile("# Deploying\n\nnothing here\n")
    block = "```dockerfile\nFROM a\n```\n"
    two = f"\n## 2. Your function's image\n\n{block}{block}"
    with pytest.raises(ValueError, match="2 dockerfile blocks"):
        function_dockerfile(two)
    later = f"\n## 2. Your function's image\n\n## 3. Next\n{block}"
    with pytest.raises(ValueError, match="0 dockerfile blocks"):
        function_dockerfile(later)


def test_the_dockerfile_builds_on_python_slim_by_default_and_pulls_no_frontend() -> None:
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")

    assert default_base(REPO) == "python:3.11-slim"
    assert not any(line.lower().startswith("# syntax") for line in text.splitlines())
    assert [line for line in text.splitlines() if line.startswith("FROM ")] == [
        "FROM ${BASE_IMAGE} AS build",
        "FROM ${BASE_IMAGE}",
    ]


def test_global_args_expand_in_order_and_stop_at_the_first_from() -> None:
    text = "ARG V=3.12\nARG BASE=python:${V}-slim\nARG BARE\nFROM $BASE\nARG LATER=x\n"

    assert global_args(text) == {"V": "3.12", "BASE": "python:3.12-slim", "BARE": ""}
    assert expand("${BASE}/$V/${NONE}", global_args(text)) == "python:3.12-slim/3.12/"


def test_the_init_duration_is_read_from_the_rie_log() -> None:
    log = (
        "03 Dec 2026 12:45:41,663 [INFO] (rapid) INIT RTDONE(status: success)\n"
        "03 Dec 2026 12:45:41,663 [INFO] (rapid) INIT REPORT(durationMs: 1098.461000)\n"
    )

    assert init_duration_ms(log) == pytest.approx(1098.461)
    assert init_duration_ms("START RequestId: x\n") is None


def test_the_image_configuration_is_read_from_an_oci_document() -> None:
    config = image_config(
        {
            "Env": ["PATH=/usr/bin", "MATCH_KEY=a=b"],
            "Entrypoint": ["s3-event-bridge"],
            "Cmd": ["python", "thumbnail.py"],
            "WorkingDir": "/var/task",
        }
    )

    assert config.env == {"PATH": "/usr/bin", "MATCH_KEY": "a=b"}
    assert (config.entrypoint, config.cmd, config.workdir) == (
        ["s3-event-bridge"],
        ["python", "thumbnail.py"],
        "/var/task",
    )
    assert image_config({"Env": None}).entrypoint == []


def test_the_rie_is_found_through_aws_lambda_rie_or_on_path(tmp_path: Path) -> None:
    rie = executable(tmp_path / "aws-lambda-rie")
    plain = tmp_path / "not-executable"
    plain.write_text("")

    assert find_rie({"AWS_LAMBDA_RIE": str(rie)}) == rie
    assert find_rie({"PATH": str(tmp_path)}) == rie
    with pytest.raises(MissingTool, match=f"AWS_LAMBDA_RIE={plain} is not an executable"):
        find_rie({"AWS_LAMBDA_RIE": str(plain), "PATH": str(tmp_path)})
    with pytest.raises(MissingTool) as missing:
        find_rie({"PATH": str(tmp_path / "empty")})
    assert str(missing.value) == RIE_MISSING


def test_without_an_engine_the_missing_one_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingTool, match=r"no container engine: .*buildah.*Docker"):
        choose_engine()

    executable(tmp_path / "docker")  # a client whose daemon does not answer
    with pytest.raises(MissingTool, match="its daemon does not answer"):
        choose_engine()


def image_test(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``make image-test``'s pytest run, with ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/image"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_image_test_fails_naming_a_missing_rie_or_engine(tmp_path: Path) -> None:
    base = {"HOME": os.environ.get("HOME", "/root"), "PATH": str(tmp_path)}

    no_rie = image_test(base)
    rie = executable(tmp_path / "aws-lambda-rie")
    no_engine = image_test({**base, "AWS_LAMBDA_RIE": str(rie)})

    assert no_rie.returncode == 3, no_rie.stdout + no_rie.stderr
    assert f"make image-test cannot run: {RIE_MISSING}" in no_rie.stdout + no_rie.stderr
    assert no_engine.returncode == 3, no_engine.stdout + no_engine.stderr
    assert "cannot run: no container engine" in no_engine.stdout + no_engine.stderr


def shell_lines(markdown: str) -> set[str]:
    """Every command of the ``sh`` blocks of ``markdown``, continuation lines joined."""
    blocks = re.findall(r"^```sh\n(.*?)^```", markdown, re.MULTILINE | re.DOTALL)
    joined = "\n".join(blocks).replace("\\\n", " ")
    return {" ".join(line.split()) for line in joined.splitlines()}


def test_docs_lambda_shows_the_exact_commands_image_test_runs() -> None:
    docker = Docker("docker")
    env = function_env("http://127.0.0.1:$MOTO_PORT", FUNCTION_TIMEOUT_SECONDS)
    handler = ["s3-event-bridge", "python", "thumbnail.py"]
    spec = rie_spec(FUNCTION_TAG, handler, env, Path("$AWS_LAMBDA_RIE"), "127.0.0.1:$RIE_PORT")
    base_args = {"BASE_IMAGE": default_base(REPO)}
    base_tag = base_reference(function_dockerfile(LAMBDA_MD))
    buildah = Buildah("buildah", None, HOST_CA_BUNDLE)
    commands = [
        docker.build_argv(Path("Dockerfile"), Path("."), base_tag, base_args),
        docker.build_argv(Path("function.Dockerfile"), EXAMPLES_CONTEXT, FUNCTION_TAG, {}),
        [*(f"{name}={value}" for name, value in env.items()), *docker.run_argv(spec)],
        buildah.build_argv(Path("Dockerfile"), Path("."), base_tag, base_args),
    ]

    shown = shell_lines(LAMBDA_MD)
    missing = [" ".join(argv) for argv in commands if " ".join(argv) not in shown]
    assert not missing, "docs/lambda.md does not show:\n" + "\n".join(missing)
    assert f"curl -s http://127.0.0.1:$RIE_PORT{INVOKE_PATH} -d @event.json" in shown
