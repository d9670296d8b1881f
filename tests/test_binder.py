"""The Binder configuration at the top of the repository, checked as far as this machine can.

repo2docker (what Binder builds with) is not reachable here. It reads ``runtime.txt`` (the
Python), ``apt.txt`` (Debian packages), ``requirements.txt`` (pip) and runs ``postBuild``; these
tests check that each parses, names only things that install (the requirements are the ones CI
installs), and that ``postBuild`` does what docs/instructors.md says, by running it here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from tests.helpers import ROOT

GUIDE = (ROOT / "docs" / "instructors.md").read_text()


def test_runtime_names_a_python_the_package_supports() -> None:
    found = re.fullmatch(r"python-(3)\.(\d+)\n?", (ROOT / "runtime.txt").read_text())
    assert found, "runtime.txt must be one line like python-3.11 (repo2docker's format)"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert SpecifierSet(requires).contains(f"{found[1]}.{found[2]}")


def test_requirements_name_only_packages_installed_here() -> None:
    # CI installs this same file with pip: a name that does not install fails CI first.
    # Here: every line parses, and what it names is installed in a version it allows.
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split(" #")[0].strip()
        if not line or line.startswith("#") or line == "-e .":
            continue
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        version = metadata.version(requirement.name)
        assert requirement.specifier.contains(version, prereleases=True), (line, version)


def test_apt_txt_names_debian_packages_the_guide_explains() -> None:
    packages = [
        line.strip()
        for line in (ROOT / "apt.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert packages == ["redis-server"]  # notebook 08's Redis
    assert "`apt.txt`" in GUIDE and "redis-server" in GUIDE
    if shutil.which("apt-cache") is None:
        pytest.skip("no apt-cache here to ask Debian's package lists")
    for package in packages:
        shown = subprocess.run(
            ["apt-cache", "show", package], capture_output=True, text=True, timeout=60
        )
        assert shown.returncode == 0 and f"Package: {package}" in shown.stdout, shown.stderr


def test_post_build_checks_the_package_and_the_machine() -> None:
    script = ROOT / "postBuild"
    assert os.access(script, os.X_OK), "repo2docker runs postBuild only if it is executable"
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in text
    assert "python -m chatbot doctor" in GUIDE  # what the guide says to run in a hub's build
    bin_dir = os.path.dirname(sys.executable)  # the Python of these tests, as Binder's would be
    env = {**os.environ, "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")])}
    env.pop("JUPYTERHUB_SERVICE_PREFIX", None)
    done = subprocess.run([str(script)], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "chatbot/ is in sync with the notebooks." in done.stdout
    assert done.stdout.rstrip().splitlines()[-1].startswith("Ready")
