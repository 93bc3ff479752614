"""`mqt-llava push DIR --repo-id ORG/NAME [--dry-run]`: upload a model folder to the Hugging Face Hub.

Before anything is uploaded the command checks the folder (a model config or a PEFT adapter config, safetensors
weights, a model card), finds a token and asks the Hub who it belongs to; any failure there stops it with a message
saying that nothing was uploaded.
`--dry-run` lists the files that would be uploaded and contacts nobody.
"""

from __future__ import annotations

import argparse
import logging
import sys
from fnmatch import fnmatchcase
from pathlib import Path

from huggingface_hub import HfApi, constants, get_token
from huggingface_hub.errors import HfHubHTTPError

logger = logging.getLogger(__name__)

IGNORE_PATTERNS = (
    ".git/*", ".cache/*", "__pycache__/*", "*/__pycache__/*", "*.pyc", ".DS_Store", "*/.DS_Store", "*.lock"
)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")


class PushError(RuntimeError):
    """Raised when a folder cannot be pushed; nothing has been uploaded when it is raised."""


def files_to_upload(folder: Path) -> list[Path]:
    """Returns the files of `folder` that an upload sends, relative to it and sorted (skips caches and VCS data)."""
    files = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.is_file() and not any(fnmatchcase(relative, pattern) for pattern in IGNORE_PATTERNS):
            files.append(Path(relative))
    return files


def check_folder(folder: Path) -> list[Path]:
    """Checks that `folder` is a model or PEFT adapter folder fit for the Hub and returns its files; raises
    `PushError` if not."""
    if not folder.is_dir():
        raise PushError(f"{folder} is not a folder; nothing was uploaded")
    files = files_to_upload(folder)
    names = {file.as_posix() for file in files}
    problems = []
    if "config.json" not in names and "adapter_config.json" not in names:
        problems.append("no config.json (model) or adapter_config.json (PEFT adapter)")
    if not any(name.endswith(".safetensors") for name in names):
        problems.append("no .safetensors weights")
    pickled = sorted(name for name in names if name.endswith(PICKLE_SUFFIXES))
    if pickled:
        problems.append(f"pickled weight files {pickled} (convert them to safetensors)")
    if problems:
        raise PushError(f"{folder} is not ready to push: {'; '.join(problems)}; nothing was uploaded")
    if "README.md" not in names:
        logger.warning("%s has no README.md: the Hub page will have no model card", folder)
    return files


def _authenticated_api(token: str | None) -> HfApi:
    """Returns an `HfApi` whose token the Hub accepted; raises `PushError` without a token, network or valid login."""
    token = token or get_token()
    if not token:
        raise PushError(
            "no Hugging Face token: set HF_TOKEN, pass --token or run `hf auth login`; nothing was uploaded"
        )
    if constants.HF_HUB_OFFLINE:
        raise PushError("HF_HUB_OFFLINE is set, so the Hub cannot be reached; nothing was uploaded")
    api = HfApi(token=token)
    try:
        user = api.whoami()
    except HfHubHTTPError as error:
        raise PushError(f"the Hub refused the token ({error}); nothing was uploaded") from error
    except Exception as error:  # any transport failure means no upload can happen: report it, whatever its class
        raise PushError(
            f"cannot reach the Hub at {constants.ENDPOINT} ({type(error).__name__}: {error}); nothing was uploaded"
        ) from error
    logger.info("logged in to %s as %s", constants.ENDPOINT, user.get("name", "?"))
    return api


def push_folder(
    folder: Path,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    revision: str | None = None,
    commit_message: str = "Upload MQT-LLaVA model",
) -> str:
    """Uploads `folder` to the model repository `repo_id` (created if needed) and returns the commit URL."""
    check_folder(folder)
    api = _authenticated_api(token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    commit = api.upload_folder(
        folder_path=folder,
        repo_id=repo_id,
        repo_type="model",
        revision=revision,
        commit_message=commit_message,
        ignore_patterns=list(IGNORE_PATTERNS),
    )
    return str(commit)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", type=Path, help="the model folder to upload (config, safetensors, code, processor)")
    parser.add_argument("--repo-id", required=True, help="target model repository, ORG/NAME")
    parser.add_argument("--dry-run", action="store_true", help="list the files that would be uploaded and stop")
    parser.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or the saved `hf auth login`)")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--revision", default=None, help="branch to push to (default: main)")
    parser.add_argument("--commit-message", default="Upload MQT-LLaVA model")


def run(args: argparse.Namespace) -> int:
    if args.repo_id.count("/") != 1 or not all(args.repo_id.split("/")):
        logger.error("--repo-id must look like ORG/NAME, got %r", args.repo_id)
        return 2
    try:
        files = check_folder(args.folder)
        if args.dry_run:
            total = sum((args.folder / file).stat().st_size for file in files)
            sys.stdout.write(f"dry run: would upload {len(files)} files ({total / 1e6:.2f} MB) to {args.repo_id}\n")
            for file in files:
                sys.stdout.write(f"  {(args.folder / file).stat().st_size:>14,d}  {file.as_posix()}\n")
            return 0
        url = push_folder(
            args.folder,
            args.repo_id,
            token=args.token,
            private=args.private,
            revision=args.revision,
            commit_message=args.commit_message,
        )
    except PushError as error:
        logger.error("%s", error)
        return 1
    sys.stdout.write(f"uploaded {len(files)} files to {args.repo_id}: {url}\n")
    return 0


__all__ = ["PushError", "check_folder", "files_to_upload", "push_folder", "add_arguments", "run"]
