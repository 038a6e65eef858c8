"""Runtime backends: where tenant gateways actually run.

:mod:`.base` holds the :class:`~.base.Runtime` interface the reconciler drives; ``local``
runs each gateway as a child process (the embedded default). A Kubernetes backend
implements the same interface.
"""
