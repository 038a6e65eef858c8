"""HTTP transport of the control plane: thin controllers, one place that maps errors to
RFC 9457 problems, and the admin-token guard. Rules live in the services below."""
