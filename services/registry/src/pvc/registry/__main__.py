"""`python -m pvc.registry` serves gRPC; `python -m pvc.registry migrate` upgrades the schema."""

from pvc.core.runner import main
from pvc.registry.servicer import SPEC

if __name__ == "__main__":
    main(SPEC)
