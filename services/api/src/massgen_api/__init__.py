"""massgen_api: the HTTP face of MassGen-on-NATS."""
