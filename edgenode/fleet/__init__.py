"""A fleet of edgenode nodes: edge and shield tiers run as one over NATS.

Purges fan out through a JetStream stream, the fleet config and membership live in
JetStream key-value buckets, filter modules in an Object Store (or an OCI registry).
docs/fleet.md describes the subjects, the message format and how to run a fleet.
"""
