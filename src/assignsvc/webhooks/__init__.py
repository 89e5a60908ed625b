"""Webhooks: definitions (manager), delivery (dispatcher, http) and the SRM warning (srm)."""

from assignsvc.webhooks.dispatcher import DeliverySettings, WebhookDispatcher
from assignsvc.webhooks.manager import WebhookManager
from assignsvc.webhooks.srm import SrmWatcher

__all__ = ["DeliverySettings", "SrmWatcher", "WebhookDispatcher", "WebhookManager"]
