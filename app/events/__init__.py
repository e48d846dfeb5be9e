"""The event path: ingress (validation, correlation, storage), the dispatcher (claim,
lease, settle), routing (deliveries decided under the routing locks), trigger matching
and delivery (signals and starts in Temporal)."""
