"""The ``tenantry`` command: run the control plane, a gateway, and talk to the admin API."""
