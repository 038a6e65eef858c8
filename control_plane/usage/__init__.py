"""Usage: what every tenant's gateway reported its chat completions cost, counted once each.

Gateways deliver usage events at least once (a batch may arrive again after a gateway was
killed before it read the answer); :class:`~control_plane.usage.service.UsageLedger` stores
each event id once per tenant and adds only the events it actually inserted to the daily
rollups, in the same transaction, so the totals stay exact under redelivery. Reports
(:mod:`control_plane.usage.schemas`) are read from the rollups.
"""
