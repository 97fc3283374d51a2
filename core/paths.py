"""Where TransferLab keeps its working data (extracted datasets, the feature cache, app workspaces), and the
signed keys that name workspaces."""
from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

SECRET_FILE = "server-secret.key"
_WORKSPACE_KEY = re.compile(r"^([0-9a-f]{32})([0-9a-f]{32})$")


def home() -> Path:
    """$TRANSFERLAB_HOME, else ~/.cache/transferlab."""
    configured = os.environ.get("TRANSFERLAB_HOME")
    path = Path(configured) if configured else Path.home() / ".cache" / "transferlab"
    path.mkdir(parents=True, exist_ok=True)
    return path


def new_workspace_key(root: Path | None = None) -> str:
    """A random id and its signature with this server's secret: only this server can issue one."""
    identifier = secrets.token_hex(16)
    return identifier + _signature(identifier, root)


def is_workspace_key(key: str | None, root: Path | None = None) -> bool:
    """True only for keys this server issued; a key made up (or chosen in advance) fails the signature."""
    match = _WORKSPACE_KEY.match(key or "")
    return bool(match) and hmac.compare_digest(match.group(2), _signature(match.group(1), root))


def _signature(identifier: str, root: Path | None) -> str:
    digest = hmac.new(server_secret(root), b"workspace:" + identifier.encode(), hashlib.sha256)
    return digest.hexdigest()[:32]


def server_secret(root: Path | None = None) -> bytes:
    """32 random bytes kept in $TRANSFERLAB_HOME (owner-only), created once; every server process shares it."""
    path = (root or home()) / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{SECRET_FILE}.{secrets.token_hex(8)}")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(32))
        try:
            os.link(draft, path)  # appears complete or not at all; the first process to get here wins
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    secret = bytes.fromhex(path.read_text(encoding="ascii").strip())
    if len(secret) != 32:
        raise ValueError(f"the server secret in {path} is damaged; delete it (issued workspace links stop working)")
    return secret
