"""Real local receivers for the alert channels, on loopback: an SMTP server that requires a login
(aiosmtpd) and an HTTP server standing in for Slack's incoming webhooks and Telegram's Bot API."""

from __future__ import annotations

import json
import threading
import urllib.parse
from dataclasses import dataclass, field
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass
class Inbox:
    messages: list[dict] = field(default_factory=list)  # {"channel", "text", ...}
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **msg) -> None:
        with self.lock:
            self.messages.append(msg)

    def of(self, channel: str) -> list[dict]:
        with self.lock:
            return [m for m in self.messages if m["channel"] == channel]


class _Handler(BaseHTTPRequestHandler):
    inbox: Inbox

    def log_message(self, *args) -> None:  # quiet
        pass

    def _body(self) -> dict:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        kind = self.headers.get("Content-Type", "")
        if "json" in kind:
            return json.loads(raw or b"{}")
        if "multipart" in kind:
            msg = message_from_bytes(b"Content-Type: " + kind.encode() + b"\r\n\r\n" + raw)
            return {
                p.get_param("name", header="content-disposition"): p.get_payload(decode=True).decode() for p in msg.get_payload()
            }
        return {k: v[0] for k, v in urllib.parse.parse_qs(raw.decode()).items()}

    def _answer(self, payload: dict | str, status: int = 200) -> None:
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if isinstance(payload, dict) else "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = self._body()
        if self.path.startswith("/slack/"):
            self.inbox.add(channel="slack", path=self.path, text=body.get("text", ""))
            return self._answer("ok")
        if self.path.startswith("/telegram/bot"):
            token, _, method = self.path[len("/telegram/bot") :].partition("/")
            if method == "getMe":
                return self._answer(
                    {"ok": True, "result": {"id": 1, "is_bot": True, "first_name": "pulse", "username": "pulse_bot"}}
                )
            if method == "sendMessage":
                self.inbox.add(channel="telegram", token=token, chat_id=str(body.get("chat_id")), text=body.get("text", ""))
                chat = {"id": int(body.get("chat_id", 0)), "type": "private"}
                return self._answer(
                    {"ok": True, "result": {"message_id": 1, "date": 0, "chat": chat, "text": body.get("text", "")}}
                )
        return self._answer({"ok": False, "description": "Not Found"}, 404)


class _SmtpHandler:
    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def handle_DATA(self, server, session, envelope):
        msg = message_from_bytes(envelope.original_content or envelope.content)
        parts = [p.get_payload(decode=True) for p in msg.walk() if not p.is_multipart()]
        text = "\n".join(p.decode(errors="replace") for p in parts if p)
        self.inbox.add(channel="email", subject=str(msg["Subject"]), to=envelope.rcpt_tos, text=text)
        return "250 OK"


class Receivers:
    """Start with ``start()``; ``inbox`` collects what arrived; ``stop()`` closes both servers."""

    def __init__(self, http_port: int, smtp_port: int, smtp_user: str, smtp_password: str) -> None:
        self.inbox = Inbox()
        self.logins: list[tuple[str, bool]] = []  # (user, accepted) of every SMTP login attempt
        self.http_port, self.smtp_port = http_port, smtp_port
        handler = type("Handler", (_Handler,), {"inbox": self.inbox})
        self.http = ThreadingHTTPServer(("127.0.0.1", http_port), handler)

        def authenticate(server, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and (auth_data.login.decode(), auth_data.password.decode()) == (
                smtp_user,
                smtp_password,
            )
            if isinstance(auth_data, LoginPassword):
                self.logins.append((auth_data.login.decode(), ok))
            return AuthResult(success=ok, handled=False)

        self.smtp = Controller(
            _SmtpHandler(self.inbox), hostname="127.0.0.1", port=smtp_port, authenticator=authenticate,
            auth_required=True, auth_require_tls=False,
        )  # fmt: skip

    def start(self) -> Receivers:
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.smtp.start()
        return self

    def stop(self) -> None:
        self.http.shutdown()
        self.smtp.stop()
