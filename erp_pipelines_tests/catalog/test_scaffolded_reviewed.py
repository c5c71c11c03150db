"""A scaffolded table is committed only once reviewed: no `# REVIEW:` comment of `erp-sync scaffold` is left in
any system's `scaffolded` package, so no guess of the scaffold reaches production unread."""

from __future__ import annotations

import importlib
from pathlib import Path

from erp_pipelines.scaffold import review_comments
from erp_pipelines.sources.registry import SYSTEMS


def test_no_scaffolded_module_keeps_a_review_comment() -> None:
    packages = [Path(importlib.import_module(system.scaffolded_package).__path__[0])
                for system in SYSTEMS if system.scaffolded_package]
    assert packages, "no source system declares a scaffolded package"
    left = [comment for package in packages for path in sorted(package.glob("*.py"))
            for comment in review_comments(path)]
    assert left == [], "review these guesses, fix the code and delete the comments:\n" + "\n".join(left)
