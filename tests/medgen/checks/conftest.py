"""Helpers of the checks' tests: workspaces whose candidates carry perturbations of the evaluation set."""

from __future__ import annotations

from benchmarks.checks_evalset import add_to_workspace
from medgen.workspace import Workspace


def add_perturbed_sources(workspace: Workspace, tags_per_source: list[list[str | None]]) -> list[str]:
    """Sources added from sample photos, their candidates (these tags) stored as a diffusers run would."""
    return add_to_workspace(workspace, tags_per_source)
