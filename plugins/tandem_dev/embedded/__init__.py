"""Embedded clusters for the demo and the tests: WebHDFS, Hive metastore and ZooKeeper servers."""
