"""The Kubernetes runtime: ``Tenant`` resources and bundle Secrets, reconciled by the operator.

``TENANTRY_RUNTIME=kubernetes``. The control plane applies, per tenant, a ``Tenant``
(``tenants.tenantry.dev/v1alpha1``) and a Secret with the sealed bundle, in one namespace for
the installation or one per tenant; the operator (``tenantry operator``) makes the pod,
volume, service and network policy and reports back in the Tenant's status.
"""

from control_plane.runtime.kubernetes.runtime import KubernetesRuntime

__all__ = ["KubernetesRuntime"]
