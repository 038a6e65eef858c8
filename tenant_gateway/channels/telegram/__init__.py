"""The tenant's own Telegram bot: :class:`~tenant_gateway.channels.telegram.bot.
TelegramChannel`. Importing this package imports no aiogram."""
