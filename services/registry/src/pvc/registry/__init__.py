"""The registry service: prompts, immutable versions, tags and their history."""
