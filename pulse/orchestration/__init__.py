"""Orchestration: Airflow runs Pulse's steps on a schedule (``airflow/dags/``); this package is Pulse's side of it:
``tasks`` (each DAG task's step, called in Pulse's venv, returning JSON-able results), ``probe`` (the RAW
sensor's check) and ``airflow_api`` (triggering and following runs over Airflow's REST API)."""
