"""The gateway: the only public REST surface. Owns identity (projects, API keys, audit)."""
