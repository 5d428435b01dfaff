"""Failover: cluster state in ZooKeeper, the arbiter, the watch trigger and the application client."""
