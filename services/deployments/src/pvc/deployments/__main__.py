"""`python -m pvc.deployments` serves gRPC; `python -m pvc.deployments migrate` upgrades the schema."""

from pvc.core.runner import main
from pvc.deployments.servicer import SPEC

if __name__ == "__main__":
    main(SPEC)
