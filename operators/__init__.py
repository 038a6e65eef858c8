"""The Kubernetes operator (kopf) that turns ``Tenant`` custom resources into the objects a
tenant gateway needs. It never imports the control plane; the control plane may import the
CRD spec types published here."""
