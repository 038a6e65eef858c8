"""The local runtime: one ``tenantry gateway`` child process per tenant (embedded default).

Layout under the control plane's data dir::

    gateways/<tenant-id>/   runtime dir: bundle.json, state.json, gateway.lock, gateway.log
    volumes/<tenant-id>/    the tenant's memory volume (the gateway's data dir)
"""

from control_plane.runtime.local.runtime import LocalRuntime

__all__ = ["LocalRuntime"]
