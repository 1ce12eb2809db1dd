"""`python -m pvc.webhooks` serves gRPC and delivers; `python -m pvc.webhooks migrate` upgrades the schema."""

from pvc.core.runner import main
from pvc.webhooks.servicer import SPEC

if __name__ == "__main__":
    main(SPEC)
