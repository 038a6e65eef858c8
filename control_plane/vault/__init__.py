"""The credential vault: envelope encryption of tenants' credentials, KEK ring, rotation."""
