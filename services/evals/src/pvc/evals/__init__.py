"""The evals service: evaluation results, per-prompt gate policies, harness triggers and callbacks."""
