"""Tandem: per-business disaster recovery for Hadoop, orchestrated by Apache Airflow."""

__version__ = "0.1.0"
