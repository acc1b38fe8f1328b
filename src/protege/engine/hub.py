"""``--push-to-hub``: upload a finished output folder to the Hugging Face hub.

The upload comes after the folder is in place, so a failed push (offline, no token, no rights)
loses nothing: it is one line saying the run is saved and how to push it later. A run that cannot
push at all (``HF_HUB_OFFLINE`` set, a malformed repository name) is refused before it starts.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from protege.errors import ProtegeError

__all__ = ["check_hub_push", "hub_offline", "push_folder"]

# the hub's repository names: NAME or OWNER/NAME, letters, digits, - _ . (at most 96 characters)
_REPO_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]*$")


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` asks for no network (the values huggingface_hub treats as true)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def check_hub_push(repo_id: str | None) -> None:
    """Refuse a push that cannot happen, before anything runs: offline mode, or a malformed ``repo_id``."""
    if repo_id is not None and (not isinstance(repo_id, str) or len(repo_id) > 96 or not _REPO_ID.match(repo_id)
                                or ".." in repo_id or "--" in repo_id):
        raise ProtegeError(f"--hub-model-id must be NAME or OWNER/NAME (letters, digits, - _ .), got {repo_id!r}")
    if hub_offline():
        raise ProtegeError("--push-to-hub cannot upload while HF_HUB_OFFLINE is set; unset it, or drop --push-to-hub "
                           "and upload the output folder later with: hf upload REPO OUT")


def push_folder(folder: str | Path, repo_id: str | None = None, *, log=None) -> str:
    """Create (if needed) the model repository ``repo_id`` (default: the folder's name) and upload ``folder``.

    Returns the repository id. Any failure is one :class:`ProtegeError` line that says the folder
    is saved and gives the command that uploads it later.
    """
    folder = Path(folder)
    repo_id = repo_id or folder.resolve().name
    try:
        from huggingface_hub import HfApi

        api = HfApi()
        repo = api.create_repo(repo_id, repo_type="model", exist_ok=True)
        api.upload_folder(repo_id=repo.repo_id, folder_path=str(folder), repo_type="model",
                          commit_message=f"protege: upload {folder.name}")
    except Exception as err:  # noqa: BLE001 - the hub's failures are many (offline, token, network, rights): one line each
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        raise ProtegeError(f"{folder} is saved, but --push-to-hub could not upload it to {repo_id} ({type(err).__name__}: "
                           f"{reason}); upload it later with: hf upload {repo_id} {folder}") from None
    if log is not None:
        log(f"pushed {folder} to {repo}")  # RepoUrl: the repository's URL
    return repo.repo_id
