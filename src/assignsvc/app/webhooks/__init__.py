"""Webhooks: definitions (manager), delivery (dispatcher, http) and the SRM warning (srm)."""

from assignsvc.app.webhooks.dispatcher import DeliverySettings, WebhookDispatcher
from assignsvc.app.webhooks.manager import WebhookManager
from assignsvc.app.webhooks.srm import SrmWatcher

__all__ = ["DeliverySettings", "SrmWatcher", "WebhookDispatcher", "WebhookManager"]
