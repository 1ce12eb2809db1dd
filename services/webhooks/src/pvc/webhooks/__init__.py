"""Webhooks service: subscriptions, the event consumer and the signed-delivery worker."""
