"""The operators' page: a "Disaster recovery" view in the Airflow UI and the same data as JSON."""
