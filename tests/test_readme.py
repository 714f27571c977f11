"""The README tells a user what they need: one pasteable apt-get line, the meshes' unit."""

from __future__ import annotations

import re

from tests.conftest import ROOT


def _packages(text: str) -> set[str]:
    line = next(ln for ln in text.replace("\\\n", " ").splitlines() if "apt-get install" in ln)
    return {
        w for w in line.split("apt-get install", 1)[1].split() if not w.startswith("-") and w != ">/dev/null"
    }


def test_one_apt_get_command_installs_what_ci_installs():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    commands = [b.strip() for b in blocks if "apt-get install" in b]
    assert len(commands) == 1 and "\n" not in commands[0], "one command, on one line"
    assert _packages(commands[0]) >= _packages((ROOT / ".ci" / "run").read_text())


def test_readme_says_meshes_are_in_centimetres():
    assert "centimetres" in (ROOT / "README.md").read_text()
