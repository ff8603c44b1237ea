"""The cluster's adapters: partition leases on NATS JetStream (docs/cluster.md)."""
