"""Pulse's Airflow-side helpers (loaded from the plugins folder, in Airflow's venv): alert notifiers and
the deferrable RAW-partition sensor. Pulse's own steps never run here; they run in Pulse's venv."""
