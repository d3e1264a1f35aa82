"""Alerts to Slack (incoming webhook), Telegram (bot API) and email (SMTP), each on when Pulse's config
enables it. Uses the official providers: SlackWebhookNotifier, SmtpNotifier, TelegramHook (Telegram has
no notifier class). Channel secrets are Airflow connections (``pulse_slack``, ``pulse_telegram``,
``pulse_smtp``) that the Airflow service fills from Pulse's config; nothing is in the repo.

``on_task_failure`` / ``on_dag_failure`` are the DAGs' callbacks (failures, task timeouts and the run's
timeout); ``send`` is also what the data alert calls.
"""

from __future__ import annotations

import html
import logging
import os
import urllib.parse

log = logging.getLogger(__name__)


def channels() -> list[str]:
    return [c for c in os.environ.get("PULSE_ALERT_CHANNELS", "").split(",") if c]


def _telegram_hook():
    import telegram
    from airflow.providers.telegram.hooks.telegram import TelegramHook

    class PulseTelegramHook(TelegramHook):
        """TelegramHook with the Bot API's base URL from the connection (``extra.api_url``)."""

        def get_conn(self) -> telegram.Bot:
            extra = self.get_connection("pulse_telegram").extra_dejson
            api_url = extra.get("api_url", "https://api.telegram.org").rstrip("/")
            return telegram.Bot(self.token, base_url=f"{api_url}/bot")

    return PulseTelegramHook(telegram_conn_id="pulse_telegram")


def send(subject: str, text: str, context=None) -> dict[str, str]:
    """Send to every enabled channel; returns channel -> "sent" or the error (one channel's failure
    does not keep the others from being tried)."""
    results: dict[str, str] = {}
    for channel in channels():
        try:
            if channel == "slack":
                from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

                SlackWebhookNotifier(slack_webhook_conn_id="pulse_slack", text=f"*{subject}*\n{text}").notify(context or {})
            elif channel == "telegram":
                _telegram_hook().send_message({"text": f"<b>{html.escape(subject)}</b>\n{html.escape(text)}"})
            elif channel == "email":
                from airflow.providers.smtp.notifications.smtp import SmtpNotifier

                to = [a.strip() for a in os.environ.get("PULSE_ALERT_EMAIL_TO", "").split(",") if a.strip()]
                SmtpNotifier(
                    to=to, subject=subject, html_content=f"<pre>{html.escape(text)}</pre>", smtp_conn_id="pulse_smtp"
                ).notify(context or {})
            results[channel] = "sent"
        except Exception as exc:  # an alert channel being down must not hide the other channels
            log.exception("alert to %s failed", channel)
            results[channel] = f"failed: {type(exc).__name__}: {exc}"
    log.info("alert %r: %s", subject, results or "no channel enabled")
    return results


def log_url(context) -> str:
    ti = context.get("ti") or context.get("task_instance")
    url = getattr(ti, "log_url", None)
    if url:
        return url
    base = os.environ.get("AIRFLOW__API__BASE_URL", "http://127.0.0.1:18080").rstrip("/")
    run_id = urllib.parse.quote(context["run_id"], safe="")
    return f"{base}/dags/{ti.dag_id}/runs/{run_id}/tasks/{ti.task_id}?try_number={ti.try_number}"


def on_task_failure(context) -> None:
    ti = context.get("ti") or context.get("task_instance")
    error = context.get("exception")
    kind = "timed out" if error is not None and "Timeout" in type(error).__name__ else "failed"
    subject = f"[Pulse] {ti.dag_id}.{ti.task_id} {kind}"
    text = "\n".join(
        [
            f"DAG: {ti.dag_id}",
            f"task: {ti.task_id}",
            f"run: {context['run_id']}",
            f"try: {ti.try_number}",
            f"error: {type(error).__name__ + ': ' if error is not None else ''}{error}",
            f"log: {log_url(context)}",
        ]
    )
    send(subject, text, context)


def on_dag_failure(context) -> None:
    """The run as a whole failed (e.g. it passed its ``dagrun_timeout``): runs in the dag-processor."""
    run = context.get("dag_run")
    dag_id = getattr(run, "dag_id", None) or context.get("dag").dag_id
    subject = f"[Pulse] {dag_id} run failed"
    base = os.environ.get("AIRFLOW__API__BASE_URL", "http://127.0.0.1:18080").rstrip("/")
    run_id = getattr(run, "run_id", context.get("run_id", "?"))
    text = "\n".join(
        [
            f"DAG: {dag_id}",
            f"run: {run_id}",
            f"reason: {context.get('reason') or 'a task failed'}",
            f"log: {base}/dags/{dag_id}/runs/{urllib.parse.quote(str(run_id), safe='')}",
        ]
    )
    send(subject, text, context)
