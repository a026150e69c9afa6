"""The session tokens of ``exocheck login``, kept on the user's side, one per database.

The store keeps only a token's SHA-256; the token itself lives in a JSON file readable by its
owner only (mode 0600, in a folder of mode 0700): ``$EXOCHECK_SESSION_FILE``, else
``sessions.json`` in the per-user configuration folder. Tokens are keyed by the database URL
(password hidden), so sessions with several stores live side by side. A file that others can
read is refused rather than used.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path

import platformdirs

from exocheck.errors import AuthError

ENV_VAR = "EXOCHECK_SESSION_FILE"


def session_file() -> Path:
    """Where the tokens are kept: ``$EXOCHECK_SESSION_FILE``, else the per-user config folder."""
    named = os.environ.get(ENV_VAR, "").strip()
    if named:
        return Path(named).expanduser()
    return platformdirs.user_config_path("exocheck", appauthor=False) / "sessions.json"


def _read(path: Path) -> dict[str, str]:
    try:
        info = path.stat()
    except FileNotFoundError:
        return {}
    if os.name == "posix" and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise AuthError(
            f"{path} can be read by others, so its sessions are not used: delete it and log in "
            "again ('exocheck login')"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    sessions = data.get("sessions") if isinstance(data, dict) else None
    if not isinstance(sessions, dict):
        return {}
    return {k: v for k, v in sessions.items() if isinstance(k, str) and isinstance(v, str)}


def _write(path: Path, sessions: dict[str, str]) -> None:
    """Replace the file in one step; the new file is created with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".sessions-", suffix=".tmp")
    try:
        os.chmod(temporary, 0o600)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump({"sessions": sessions}, out, indent=1, sort_keys=True)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load_token(url: str, path: Path | None = None) -> str | None:
    """The saved token for the database ``url``, or None."""
    return _read(path or session_file()).get(url)


def save_token(url: str, token: str, path: Path | None = None) -> Path:
    """Keep ``token`` for ``url`` (replacing an earlier one); returns the file."""
    path = path or session_file()
    sessions = _read(path) if path.exists() else {}
    sessions[url] = token
    _write(path, sessions)
    return path


def forget_token(url: str, path: Path | None = None) -> str | None:
    """Remove and return the token saved for ``url`` (None when there was none)."""
    path = path or session_file()
    sessions = _read(path)
    token = sessions.pop(url, None)
    if token is not None:
        _write(path, sessions)
    return token
