"""The operator's state directory is private: never /tmp by default, never another user's, never a link."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from _e2e import SPRINTCTL, operator_env
from localcluster import LocalCluster
from sprint_orchestrator.config import load_config
from sprint_orchestrator.errors import InvalidInput
from sprint_orchestrator.settings import from_env
from sprint_orchestrator.statedir import default_state_dir, prepare

NOBODY = 65534


def test_the_default_state_directory_is_never_under_tmp() -> None:
    assert default_state_dir({}, 0) == Path("/var/lib/sprint-orchestrator")
    assert default_state_dir({"HOME": "/home/ann"}, 1000) == Path(
        "/home/ann/.local/state/sprint-orchestrator"
    )
    assert default_state_dir({"HOME": "/home/ann", "XDG_STATE_HOME": "/srv/state"}, 1000) == Path(
        "/srv/state/sprint-orchestrator"
    )
    assert default_state_dir({"HOME": "/home/ann", "XDG_STATE_HOME": "rel"}, 1000).is_relative_to("/home/ann")
    settings = from_env({"HOME": "/home/ann"})
    assert not settings.state_dir.is_relative_to("/tmp")
    assert settings.trees_dir == settings.state_dir / "trees"
    assert load_config(None, {}).git.working_trees_path is None


def test_prepare_creates_the_directory_private(tmp_path: Path) -> None:
    path = prepare(tmp_path / "a" / "state")
    assert stat.S_IMODE(path.stat().st_mode) == 0o700


def test_a_directory_of_ours_open_to_others_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "state"
    path.mkdir(mode=0o777)
    path.chmod(0o777)
    prepare(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o700


def test_a_symlinked_state_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "state").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(InvalidInput, match="is a symlink"):
        prepare(tmp_path / "state")
    with pytest.raises(InvalidInput, match="must be an absolute path"):
        prepare(Path("relative/state"))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand a directory to another user")
def test_a_state_directory_planted_by_another_user_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state"
    path.mkdir(mode=0o700)
    os.chown(path, NOBODY, NOBODY)
    with pytest.raises(InvalidInput, match=f"belongs to uid {NOBODY}, not to the operator's uid 0"):
        prepare(path)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand a directory to another user")
def test_the_operator_stops_at_start_up_naming_a_state_directory_it_must_not_use(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    planted = tmp_path / "planted"
    planted.mkdir(mode=0o777)
    os.chown(planted, NOBODY, NOBODY)
    done = subprocess.run(
        [SPRINTCTL, "operator", "--namespace=default"],
        env=operator_env(cluster, planted),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert f"belongs to uid {NOBODY}" in done.stdout + done.stderr
    assert list(planted.iterdir()) == []  # nothing was written into it
