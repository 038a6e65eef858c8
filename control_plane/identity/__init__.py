"""Who may call the admin API. For now: platform admin bearer tokens, stored as digests."""
