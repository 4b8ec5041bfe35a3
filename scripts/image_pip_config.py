"""pip's configuration on this machine, for a container build: `pip config list` in, one pip.conf and the local
paths it names out, so pip inside the build reaches packages the way pip does here. Nothing host-specific is
committed: scripts/image.sh runs this at build time.

    python3 -m pip config list | python3 scripts/image_pip_config.py OUT_DIR
        writes OUT_DIR/pip.conf and prints, one a line, the host paths the build must see at the same place.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

# The options whose values name files, folders or file:// URLs.
PATH_OPTIONS = {"find-links", "index-url", "extra-index-url", "constraint", "requirement", "cert", "client-cert"}
INDEX_OPTIONS = {"index-url", "extra-index-url"}


def merged(listing: str) -> dict[str, str]:
    """`pip config list` lines (`global.key='v'`, `install.key='v'`, `:env:.key='v'`) → one value per key, the
    one pip would use: the environment over a command's section over [global]."""
    rank = {"global": 0, ":env:": 2}
    chosen: dict[str, tuple[int, str]] = {}
    for line in listing.splitlines():
        name, sep, quoted = line.partition("=")
        if not sep:
            continue
        section, _, key = name.rpartition(".")
        level = rank.get(section, 1)
        if key not in chosen or level >= chosen[key][0]:
            chosen[key] = (level, ast.literal_eval(quoted))
    return {key: value for key, (_, value) in chosen.items()}


def local_paths(options: dict[str, str]) -> list[Path]:
    """The local paths the options name. A file:// index's pages link beside it (`../../files/…`): its parent
    folder goes with it."""
    paths: list[Path] = []
    for key, value in options.items():
        if key not in PATH_OPTIONS:
            continue
        for token in value.split():
            path = Path(token.removeprefix("file://")) if token.startswith(("file://", "/")) else None
            if path is None or not path.exists():
                continue
            if key in INDEX_OPTIONS and path.parent != Path("/"):
                path = path.parent
            if path not in paths:
                paths.append(path)
    return paths


def pip_conf(options: dict[str, str]) -> str:
    return "[global]\n" + "".join(f"{key} = {value}\n" for key, value in sorted(options.items()))


def main() -> None:
    out = Path(sys.argv[1])
    options = merged(sys.stdin.read())
    (out / "pip.conf").write_text(pip_conf(options))
    print("\n".join(str(path) for path in local_paths(options)))


if __name__ == "__main__":
    main()
