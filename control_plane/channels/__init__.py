"""Channels: chats of the platform's shared bots, each bound to the one tenant it talks to.

One platform Telegram bot serves every tenant. A tenant asks for a pairing code
(:meth:`~control_plane.channels.service.ChannelDirectory.issue_code`), its user sends
``/start CODE`` to the platform bot, and the bot calls
:meth:`~control_plane.channels.service.ChannelDirectory.redeem`, which binds the chat to the
code's tenant; from then on the bot finds the chat's tenant with
:meth:`~control_plane.channels.service.ChannelDirectory.tenant_for` and forwards its
messages to that tenant's gateway. Codes (:mod:`control_plane.channels.codes`) are stored
only as keyed digests, work once and expire; wrong codes are throttled per chat.
"""
