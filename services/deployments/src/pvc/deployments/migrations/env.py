from sqlmodel import SQLModel

from pvc.core.migrations import run_env
from pvc.deployments import models  # noqa: F401  (registers the tables)

run_env(SQLModel.metadata)
