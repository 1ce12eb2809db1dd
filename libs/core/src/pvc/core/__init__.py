"""Shared building blocks of every pvc process: settings, errors, database, gRPC, events, telemetry."""
