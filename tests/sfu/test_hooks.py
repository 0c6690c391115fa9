"""Fails loudly, naming the hook, when an aiortc upgrade moves one (see sfu/hooks.py)."""

from __future__ import annotations

import ast
import pathlib
import tomllib

import sfu
from sfu.hooks import AIORTC_VERSION, HOOKS, check_hooks

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_every_hook_still_holds_in_the_installed_aiortc() -> None:
    problems = check_hooks()
    assert not problems, "aiortc internals moved:\n" + "\n".join(problems)


def test_aiortc_is_pinned_exactly_to_the_version_the_hooks_were_written_for() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"aiortc=={AIORTC_VERSION}" in deps


def test_every_hook_is_marked_where_it_is_used() -> None:
    source = (ROOT / "sfu" / "hooks.py").read_text()
    for number, _, _ in HOOKS:
        assert f"HOOK {number}" in source.split("HOOKS: list", 1)[1], number


def test_no_other_module_touches_aiortc_internals() -> None:
    """Private names of aiortc/aioice (``_x`` attributes, mangled ``_RTC...__x``) appear
    only in sfu/hooks.py."""
    offenders = []
    for path in pathlib.Path(sfu.__file__).parent.glob("*.py"):
        if path.name == "hooks.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr.startswith(("_RTC", "_Rtc")):
                offenders.append(f"{path.name}:{node.lineno} {node.attr}")
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith(("aiortc", "aioice"))
            ):
                offenders += [
                    f"{path.name}:{node.lineno} {a.name}"
                    for a in node.names
                    if a.name.startswith("_")
                ]
            if isinstance(node, ast.Attribute) and node.attr in {
                "_handle_rtp_packet",
                "_handle_rtcp_packet",
                "_send_rtp",
                "_send_rtcp",
                "_send_rtcp_pli",
                "_send_rtcp_nack",
                "_ssrc",
                "_rtx_ssrc",
                "get_host_addresses",
            }:
                offenders.append(f"{path.name}:{node.lineno} {node.attr}")
    assert not offenders, offenders
