"""What the CUDA image adds over the CPU one that `make image` builds, without building it: the installed size of
PyPI's Linux torch wheel and every wheel it pins for Linux (nvidia-*, triton), read from each wheel's zip directory
with HTTP range requests (nothing is downloaded whole), minus the installed size of a local CPU torch wheel.

    python3 scripts/image_cuda_size.py 2.9.1 /opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl
"""

from __future__ import annotations

import io
import json
import re
import sys
import urllib.request
import zipfile

SIMPLE_JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}
PIN = re.compile(r"([A-Za-z0-9_.-]+)\s*(?:\[.*?\])?\s*==\s*([0-9.]+)\s*(;.*)?$")


class RemoteFile(io.RawIOBase):
    """A file on an HTTP server that honours Range, read only where zipfile looks (its directory, METADATA)."""

    def __init__(self, url: str) -> None:
        self.url, self.pos = url, 0
        head = urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=60)
        self.size = int(head.headers["Content-Length"])

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = {0: offset, 1: self.pos + offset, 2: self.size + offset}[whence]
        return self.pos

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        end = min(self.size, self.pos + len(buffer))
        if end <= self.pos:
            return 0
        request = urllib.request.Request(self.url, headers={"Range": f"bytes={self.pos}-{end - 1}"})
        data = urllib.request.urlopen(request, timeout=60).read()
        buffer[: len(data)] = data
        self.pos += len(data)
        return len(data)


def wheel(name: str, version: str) -> dict:
    """The CPython 3.11 (or pure) x86_64 Linux wheel of name==version on PyPI."""
    request = urllib.request.Request(f"https://pypi.org/simple/{name}/", headers=SIMPLE_JSON)
    files = json.load(urllib.request.urlopen(request, timeout=60))["files"]
    return next(
        f
        for f in reversed(files)
        if f["filename"].endswith(".whl")
        and f"-{version}-" in f["filename"]
        and re.search(r"-(cp311-cp311|py3-none)-", f["filename"])
        and ("x86_64" in f["filename"] or f["filename"].endswith("-any.whl"))
    )


def installed(archive: zipfile.ZipFile) -> tuple[int, list[tuple[str, str]]]:
    """Bytes the wheel installs, and the name==version pins it requires on Linux."""
    metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
    pins = []
    for line in archive.read(metadata).decode().splitlines():
        match = PIN.match(line.removeprefix("Requires-Dist:").strip()) if line.startswith("Requires-Dist:") else None
        marker = match.group(3) if match else None
        if match and (not marker or ("Linux" in marker and "extra" not in marker)):
            pins.append((match.group(1), match.group(2)))
    return sum(info.file_size for info in archive.infolist()), pins


def main() -> None:
    version, cpu_wheel = sys.argv[1], sys.argv[2]
    total, seen, todo = 0, set(), [("torch", version)]
    while todo:
        name, pinned = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        found = wheel(name, pinned)
        size, pins = installed(zipfile.ZipFile(RemoteFile(found["url"])))
        total += size
        todo += pins
        print(f"{found['filename']}: wheel {found['size'] / 1e6:.0f} MB, installed {size / 1e6:.0f} MB")
    cpu, _ = installed(zipfile.ZipFile(cpu_wheel))
    print(f"CUDA torch {version} and its Linux pins install {total / 1e6:.0f} MB; the CPU wheel {cpu / 1e6:.0f} MB;")
    print(f"the CUDA image is {(total - cpu) / 1e6:.0f} MB larger than the CPU one")


if __name__ == "__main__":
    main()
