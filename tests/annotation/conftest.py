"""A real Label Studio on loopback for the annotation tests, and workspaces with known-label candidates.

The first start migrates Label Studio's database (30 s to minutes): the migrated data dir is cached
under ``$MEDGEN_TEST_CACHE`` (default ``~/.cache/medgen-tests``) and copied for every server start.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from annotation.client import TOKEN_ENV, Connection, connect
from annotation.server import load_credentials, serve, stop
from medgen.workspace import Workspace, init_workspace
from schemas import Candidate, GenerationProvenance, SourceImage
from schemas.regions import Region, region_kinds

# Known labels per slot, cycled over sources: A acceptable, B/C/D with defects in several dimensions.
DEFECTS = [
    [],
    ["floating"],
    ["shadow_missing", "visible_seam"],
    ["color_shifted"],
    [],
    ["product_cropped", "scale_wrong"],
]


def _template_dir() -> Path:
    base = Path(os.environ.get("MEDGEN_TEST_CACHE", Path.home() / ".cache" / "medgen-tests"))
    return base / f"labelstudio-{version('label-studio')}"


def seed_labelstudio(workspace: Workspace) -> None:
    """Give ``workspace`` an already-migrated Label Studio data dir (built once, then cached)."""
    if (
        importlib.util.find_spec("label_studio") is None
        or importlib.util.find_spec("label_studio_sdk") is None
    ):
        pytest.skip("label-studio is not installed (pip install 'medgen[annotation]')")
    template = _template_dir()
    if not (template / "credentials.json").is_file():
        scratch = template.parent / f".build-{uuid.uuid4().hex}"
        builder = init_workspace(scratch / "ws")
        try:
            serve(builder, timeout=600)
            stop(builder)
            staged = scratch / "labelstudio"
            shutil.copytree(builder.labelstudio_dir, staged, ignore=shutil.ignore_patterns("server.*"))
            template.parent.mkdir(parents=True, exist_ok=True)
            if not template.exists():
                staged.rename(template)
        finally:
            stop(builder)
            builder.close()
            shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(template, workspace.labelstudio_dir, dirs_exist_ok=True)
    os.chmod(workspace.labelstudio_dir / "credentials.json", 0o600)


@pytest.fixture(scope="session")
def ls_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session server's local-files document root: every test workspace lives below it."""
    return tmp_path_factory.mktemp("lsroot").resolve()


@pytest.fixture(scope="session")
def ls_host(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of the session server's own workspace: outside the document root, as a server never
    serves its own credentials."""
    return tmp_path_factory.mktemp("lshost").resolve() / "host"


@pytest.fixture(scope="session")
def ls_server(ls_root: Path, ls_host: Path) -> Iterator[tuple[str, str]]:
    """(url, token) of one Label Studio shared by the session's tests; stopped by PID at the end."""
    host = init_workspace(ls_host)
    seed_labelstudio(host)
    info = serve(host, document_root=ls_root)
    creds = load_credentials(host)
    assert creds is not None
    yield info.url, creds.token
    stop(host)
    host.close()


@pytest.fixture
def ls_workspace(ls_root: Path) -> Iterator[Workspace]:
    ws = init_workspace(ls_root / f"ws-{uuid.uuid4().hex[:8]}")
    yield ws
    ws.close()


@pytest.fixture
def connection(ls_server: tuple[str, str], ls_workspace: Workspace, ls_root: Path, monkeypatch) -> Connection:
    """Connected the way `--url` does: URL given, token from the environment."""
    url, token = ls_server
    monkeypatch.setenv(TOKEN_ENV, token)
    return connect(ls_workspace, url=url, document_root=ls_root)


@pytest.fixture
def team_workspace(ls_root) -> Iterator[Workspace]:
    """A workspace with its own running server (logins are made on the workspace's own server)."""
    ws = init_workspace(ls_root / f"team-{os.urandom(3).hex()}")
    seed_labelstudio(ws)
    serve(ws)
    yield ws
    stop(ws)
    ws.close()


def _region(tag: str) -> Region:
    point = region_kinds()[tag] == "point"
    return Region(tag=tag, box=(0.5, 0.9, 0.5, 0.9) if point else (0.2, 0.2, 0.6, 0.6))


def add_sources(
    ws: Workspace, count: int, known: bool = True, start: int = 0, regions: bool = False
) -> list[str]:
    """``count`` sources with four candidates each; ``known`` gives them injected (ground-truth) defects,
    ``regions`` each defect's region too (a box at (0.2, 0.2, 0.6, 0.6), a point at (0.5, 0.9) for a shadow)."""
    ids = []
    for i in range(start, start + count):
        rng = np.random.default_rng(i)
        image = Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8))
        key = ws.store.put_image(image)
        source_id = key.split("/")[-1].split(".")[0]
        mask_key = ws.store.put_image(Image.new("L", (24, 24), 255))
        ws.catalog.add_source(
            SourceImage(
                id=source_id,
                original_name=f"p{i}.png",
                image_key=key,
                mask_key=mask_key,
                width=24,
                height=24,
                phash="0" * 16,
                mask_from_alpha=False,
                added_at=datetime.now(timezone.utc),
            )
        )
        candidates = []
        for slot in range(4):
            ckey = ws.store.put_image(Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)))
            candidates.append(
                Candidate(
                    id=f"{source_id[:12]}-{slot}",
                    source_id=source_id,
                    slot=slot,
                    image_key=ckey,
                    provenance=GenerationProvenance(
                        backend="synthetic", model_id="synthetic", recipe="test", seed=slot
                    ),
                    injected_defects=DEFECTS[(i + slot) % len(DEFECTS)] if known else None,
                    injected_regions=[_region(tag) for tag in DEFECTS[(i + slot) % len(DEFECTS)]]
                    if regions
                    else None,
                )
            )
        ws.catalog.add_candidates(candidates)
        ids.append(source_id)
    return ids


from tests.training.evaluation.conftest import chat_server  # noqa: E402, F401 (a fixture: a local chat-completions API)
