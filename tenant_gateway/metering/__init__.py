"""Metering: every chat completion becomes a usage event, kept on the tenant's volume until
the control plane has acknowledged it.

::

    ChatService --CallRecord--> UsageMeter.observe --UsageEvent--> UsageOutbox (usage.sqlite3)
                                                                      |
                                 control plane  <--POST USAGE_PATH--  UsageDelivery

The guarantee, at least once: an event is committed to ``usage.sqlite3`` before the
response of its request ends (the app awaits :meth:`UsageMeter.persisted` before sending a
complete answer, and before the last byte of a streamed one), so a gateway killed at any
moment after that keeps it; it leaves the outbox only once the control plane has answered
that it stored it, so a gateway killed mid-delivery sends it again after its restart, and
the control plane counts each event id once. What a kill can lose is the event of a request
whose response had not ended (the client saw no complete answer). SQLite runs in WAL mode
with ``synchronous=NORMAL``: a commit survives the process being killed, while a power loss
may take back the last commits before a checkpoint.
"""

from tenant_gateway.metering.delivery import UsageDelivery
from tenant_gateway.metering.events import new_event_id, usage_event
from tenant_gateway.metering.meter import UsageMeter
from tenant_gateway.metering.outbox import USAGE_FILE, OutboxError, UsageOutbox

__all__ = [
    "USAGE_FILE",
    "OutboxError",
    "UsageDelivery",
    "UsageMeter",
    "UsageOutbox",
    "new_event_id",
    "usage_event",
]
