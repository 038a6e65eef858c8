"""Channels: chat messages from Telegram and the like, answered by the tenant's assistant.

::

    adapter --POST /internal/v1/inbound--> Inbox.accept (inbox.sqlite3, deduplicated)
    InboxWorker --one message at a time per session--> assistant turn --> reply in the outbox
    outbox --ReplySink, at least once--> adapter sends it

:mod:`tenant_gateway.channels.contract` is the published wire shape and imports nothing else
of the gateway, so this package's ``__init__`` imports nothing either: the control plane can
import the contract without pulling in the gateway.
"""
