"""The harness: what exists only for the demo and the tests, never imported by the product.

- ``embedded/``: clusters that speak the production protocols (a WebHDFS server, a Hive
  metastore Thrift server, a real ZooKeeper per cluster), started by ``tandem up``, and
  ``embedded.access`` to reach them by their endpoints;
- ``demo``: ``tandem demo``, the main job on the embedded clusters;
- ``drill``: ``tandem drill``, a failover rehearsed end to end;
- ``local_airflow``: a real Airflow with a SQLite metadata DB for the demo and the tests.

Its commands (``up``, ``down``, ``servers``, ``demo``, ``drill``) join the ``tandem`` command
through the ``tandem.commands`` entry point (:mod:`tandem_dev.cli`). The product reaches the
embedded clusters as any others, through Airflow connections: ``tandem up`` publishes theirs in
``<home>/environment.json`` (:mod:`tandem.environment`). ruff's banned-api rule (TID251) fails
CI if a product module imports this package.
"""
