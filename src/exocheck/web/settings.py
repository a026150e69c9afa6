"""Settings of the web service, from ``EXOCHECK_*`` environment variables (pydantic-settings).

============================  ==================================================================
variable                      meaning
============================  ==================================================================
``EXOCHECK_DATABASE_URL``     the store (as for the command line; ``--db`` of ``serve`` wins)
``EXOCHECK_DATA_DIR``         where uploaded videos and analysis results are kept
                              (default: ``exocheck-web-data`` beside a SQLite store, else the
                              per-user data folder)
``EXOCHECK_IDLE_TIMEOUT_MIN`` minutes of inactivity that end a session (15)
``EXOCHECK_LOCKOUT_AFTER``    wrong passwords in a row that lock an account (5)
``EXOCHECK_MAX_UPLOAD_MB``    largest upload accepted, MB, all its files together (500)
``EXOCHECK_MAX_UPLOAD_FILES`` most replicate videos in one upload (10)
``EXOCHECK_SECURE_COOKIES``   ``auto`` (Secure when the request came over HTTPS), ``true``, ``false``
``EXOCHECK_SCHEDULER``        Dask scheduler for analyses (default: one local worker process)
``EXOCHECK_ANALYSIS_WORKERS`` local Dask worker processes for analyses (1)
``EXOCHECK_KEYS_DIR``         the signing keys: a signed-off lot's certificate is then signed,
                              the same document as ``exocheck coa`` gives
============================  ==================================================================
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from exocheck.store.session import resolve_url, sqlite_path


class Settings(BaseSettings):
    """Everything the service is configured with."""

    model_config = SettingsConfigDict(env_prefix="EXOCHECK_", extra="ignore")

    database_url: str | None = None
    data_dir: Path | None = None
    idle_timeout_min: float = Field(15.0, gt=0)
    lockout_after: int = Field(5, ge=1)
    max_upload_mb: float = Field(500.0, gt=0)
    max_upload_files: int = Field(10, ge=1, le=100)
    secure_cookies: Literal["auto", "true", "false"] = "auto"
    scheduler: str | None = None
    analysis_workers: int = Field(1, ge=1)
    #: the organisation's signing keys (default: $EXOCHECK_KEYS_DIR, then the per-user folder)
    keys_dir: Path | None = None
    #: crash tests only: seconds a signature waits inside its transaction before committing
    fault_pause_signature_s: float = Field(0.0, ge=0)

    @property
    def url(self) -> str:
        return resolve_url(self.database_url)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def data_path(self) -> Path:
        if self.data_dir is not None:
            return Path(self.data_dir)
        path = sqlite_path(self.url)
        if path is not None:
            return path.parent / "exocheck-web-data"
        return Path(platformdirs.user_data_dir("exocheck", appauthor=False)) / "web-data"
