"""`python -m pvc.evals` serves gRPC; `python -m pvc.evals migrate` upgrades the schema."""

from pvc.core.runner import main
from pvc.evals.servicer import SPEC

if __name__ == "__main__":
    main(SPEC)
