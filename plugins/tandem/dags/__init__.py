"""DAG factories: a policy becomes a backup DAG; a pair becomes its failover DAGs."""
