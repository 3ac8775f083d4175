"""The service kit: runtime pieces every MassGen-on-NATS service shares (not the contract,
which is ``massgen_proto``)."""
