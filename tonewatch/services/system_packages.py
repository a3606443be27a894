"""Debian packages the local services need: installed with apt-get when we are root."""

from __future__ import annotations

import os
import subprocess

from tonewatch.services.exceptions import MissingDependencyError


def apt_install(package: str) -> None:
    """Install a Debian package, or explain the exact command when we may not."""
    command = f"apt-get install -y --no-install-recommends {package}"
    if os.geteuid() != 0:
        raise MissingDependencyError(f"the Debian package {package}", f"sudo {command}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    argv = command.split()
    if subprocess.run(argv, env=env, capture_output=True).returncode == 0:
        return
    # A fresh machine may have empty package lists: refresh them once and retry.
    subprocess.run(["apt-get", "update"], env=env, capture_output=True)
    result = subprocess.run(argv, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise MissingDependencyError(
            f"the Debian package {package} (apt-get failed: {result.stderr.strip()[-300:]})",
            command,
        )
