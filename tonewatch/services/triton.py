"""NVIDIA Triton Inference Server from the nvidia-pytriton wheel, running on CPU here.

The wheel carries `tritonserver`, its bundled libraries and a Python-backend stub per Python
version. We unpack just those (keeping the wheel's relative layout, which their RPATHs
expect) into the cache dir. Two environment fixes make the Python backend work:
- the stub links `libpython3.11.so.1.0`, which lives in the base interpreter's LIBDIR, not in
  a venv, so that directory goes on LD_LIBRARY_PATH;
- the embedded interpreter finds its prefix by looking up `python3` on PATH, so the running
  venv's bin directory goes first on PATH; the stub then sees our numpy and torch.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from pathlib import Path

import httpx

from tonewatch.services.base import LocalService
from tonewatch.services.exceptions import MissingDependencyError, ProbeError
from tonewatch.services.process import Launch

WHEEL_MEMBERS = ("pytriton/tritonserver/", "nvidia_pytriton.libs/")


class TritonService(LocalService):
    name = "triton"

    @property
    def port(self) -> int:
        return self.settings.triton_grpc_port

    @property
    def home(self) -> Path:
        return self.settings.cache_dir.expanduser() / f"pytriton-{self.settings.pytriton_version}"

    @property
    def server_dir(self) -> Path:
        return self.home / "pytriton" / "tritonserver"

    def install(self) -> None:
        if (self.home / ".complete").exists():
            return
        self.home.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.home.parent) as tmp:
            wheel = self._download_wheel(Path(tmp))
            staging = Path(tmp) / "unpacked"
            with zipfile.ZipFile(wheel) as archive:
                members = [m for m in archive.namelist() if m.startswith(WHEEL_MEMBERS)]
                archive.extractall(staging, members)
            server = staging / "pytriton" / "tritonserver"
            version = f"{sys.version_info.major}.{sys.version_info.minor}"
            stub = server / "python_backend_stubs" / version / "triton_python_backend_stub"
            if not stub.exists():
                raise MissingDependencyError(
                    f"a Triton Python-backend stub for Python {version}",
                    "run tonewatch with Python 3.11 (see pyproject.toml)",
                )
            shutil.copy2(stub, server / "backends" / "python" / stub.name)
            for binary in (server / "bin" / "tritonserver", server / "backends/python" / stub.name):
                binary.chmod(0o755)
            (staging / ".complete").touch()
            shutil.rmtree(self.home, ignore_errors=True)
            staging.rename(self.home)

    def _download_wheel(self, dest: Path) -> Path:
        spec = f"nvidia-pytriton=={self.settings.pytriton_version}"
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
             "--dest", str(dest), spec],
            capture_output=True, text=True,
        )  # fmt: skip
        wheels = list(dest.glob("nvidia_pytriton-*.whl"))
        if result.returncode != 0 or not wheels:
            raise MissingDependencyError(
                f"the {spec} wheel ({result.stderr.strip()[-300:]})", f"pip download {spec}"
            )
        return wheels[0]

    def prepare(self) -> None:
        self.settings.model_repository.resolve().mkdir(parents=True, exist_ok=True)

    def launch(self) -> Launch:
        s = self.settings
        host = s.triton_host
        argv = [
            str(self.server_dir / "bin" / "tritonserver"),
            f"--model-repository={s.model_repository.resolve()}",
            "--model-control-mode=explicit",
            f"--backend-directory={self.server_dir / 'backends'}",
            f"--http-address={host}", f"--http-port={s.triton_http_port}",
            f"--grpc-address={host}", f"--grpc-port={s.triton_grpc_port}",
            f"--metrics-address={host}", f"--metrics-port={s.triton_metrics_port}",
            "--allow-cpu-metrics=true",
            "--strict-readiness=false",  # ready = the server is up, even before a model loads
            "--exit-timeout-secs=10",
            "--log-verbose=0",
        ]  # fmt: skip
        libdirs = [str(self.home / "nvidia_pytriton.libs"), sysconfig.get_config_var("LIBDIR")]
        env = {
            "LD_LIBRARY_PATH": ":".join(libdirs),
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        }
        return Launch(argv=argv, env=env)

    def probe(self) -> str:
        base = self.settings.triton_http_url
        try:
            ready = httpx.get(f"{base}/v2/health/ready", timeout=self.probe_timeout_s)
            metadata = httpx.get(f"{base}/v2", timeout=self.probe_timeout_s)
        except httpx.HTTPError as exc:
            raise ProbeError(f"triton: {exc}") from exc
        if ready.status_code != 200 or metadata.status_code != 200:
            raise ProbeError(f"triton: not ready (HTTP {ready.status_code})")
        return str(metadata.json()["version"])
