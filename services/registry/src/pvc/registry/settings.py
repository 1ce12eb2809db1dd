from __future__ import annotations

from pvc.core.settings import ServiceSettings


class RegistrySettings(ServiceSettings):
    pass
