"""Transports between a head-end system and the MDM: MQTT, NATS JetStream and REST.

A :class:`Link` is one end of the conversation, for one of two roles: ``hes`` publishes the
messages a head-end sends (:data:`~meter2cash.hes.protocol.FROM_HES`) and receives ``command`` and
``reply``; ``mdm`` the reverse. Every link has the same small interface: :meth:`Link.send` a kind
and its JSON (or CIM XML) bytes, :meth:`Link.fetch` what arrived (each :class:`Received` is
acknowledged with :meth:`Received.ack` once it has been dealt with, so a crash before that gets
it delivered again), :meth:`Link.receive` to do both with a handler, :meth:`Link.close`.

- :class:`MqttLink` (paho-mqtt 2): topics ``<prefix>/hes/<hes>/<kind>``, QoS 1 both ways, a
  persistent session (``clean_session`` false, a stable client id per role and head-end), so the
  broker keeps the subscriptions and queues QoS 1 messages while one side is away; a message is
  acknowledged (PUBACK) after the handler returned.
- :class:`NatsLink` (nats-py JetStream): one stream per head-end, ``M2C_HES_<hes>``, over
  ``<prefix>.hes.<hes>.>``; one durable pull consumer per role and kind; ``Nats-Msg-Id`` is the
  message id, so a message published twice is stored once; a message that cannot be read goes to
  ``<prefix>.hes.<hes>.dead`` with the reason in the ``M2C-Reason`` header (:meth:`NatsLink.dead_letter`).
- :class:`RestLink` (httpx, head-end role only): messages are POSTed to the MDM's
  ``/api/v1/hes/messages`` (the reply comes back as the response), commands are polled from
  ``/api/v1/hes/commands``.

Links hold no database code: the MDM side applies what it receives elsewhere
(:mod:`meter2cash.integration.hes_gateway`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import queue
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self, TypeVar
from urllib.parse import urlsplit

from meter2cash.core.errors import InvalidInput, M2CError
from meter2cash.hes.protocol import FROM_HES, mqtt_topic, nats_subject

Role = Literal["hes", "mdm"]
ROLES: tuple[Role, ...] = ("hes", "mdm")
#: Kinds each role receives.
INBOUND: dict[str, tuple[str, ...]] = {"hes": ("command", "reply"), "mdm": FROM_HES}
#: Kinds each role sends.
OUTBOUND: dict[str, tuple[str, ...]] = {"hes": FROM_HES, "mdm": ("command", "reply")}
DEAD = "dead"
REASON_HEADER = "M2C-Reason"
T = TypeVar("T")
log = logging.getLogger(__name__)


class LinkUnavailable(M2CError):
    code = "hes.link_unavailable"
    http_status = 503


@dataclass
class Received:
    """One message as it arrived: its kind (the last part of the topic or subject), its bytes
    and headers (NATS); :meth:`ack` once it has been dealt with."""

    kind: str
    payload: bytes
    headers: dict[str, str] = field(default_factory=dict)
    _ack: Callable[[], None] | None = field(default=None, repr=False)

    def ack(self) -> None:
        if self._ack is not None:
            self._ack()
            self._ack = None


def message_id_of(payload: bytes) -> str | None:
    """The ``message_id`` of a JSON message, or ``None`` when it has none (or is not JSON)."""
    try:
        doc = json.loads(payload)
    except ValueError:
        return None
    mid = doc.get("message_id") if isinstance(doc, dict) else None
    return mid if isinstance(mid, str) and mid else None


class Link(ABC):
    """One end of a head-end link (see the module)."""

    def __init__(self, *, role: Role, hes: str, prefix: str) -> None:
        if role not in ROLES:
            raise InvalidInput(f"role {role!r} is not one of {', '.join(ROLES)}", code="hes.bad_role")
        self.role, self.hes, self.prefix = role, hes, prefix
        self.closed = False

    def _check_outbound(self, kind: str) -> None:
        if kind not in OUTBOUND[self.role]:
            raise InvalidInput(
                f"the {self.role} side does not send {kind!r} messages", code="hes.wrong_direction"
            )

    @abstractmethod
    def send(self, kind: str, payload: bytes, *, message_id: str | None = None) -> None:
        """Publish one message of ``kind`` (acknowledged by the broker or server when this returns)."""

    def send_reply(self, payload: bytes, *, message_id: str | None = None) -> None:
        """Publish a reply; a transport may return before the broker acknowledged it (a reply
        lost with a crash is given again from the remembered one when the message comes again)."""
        self.send("reply", payload, message_id=message_id)

    @abstractmethod
    def fetch(self, timeout: float = 1.0, limit: int = 100) -> list[Received]:
        """What arrived, waiting up to ``timeout`` s for something; each to be acknowledged."""

    def receive(
        self, handler: Callable[[str, bytes], None], *, timeout: float = 1.0, limit: int = 100
    ) -> int:
        """Hand what arrived to ``handler(kind, payload)``, acknowledging each after it returned;
        how many. A handler that raises leaves its message (and the rest) unacknowledged."""
        done = 0
        for item in self.fetch(timeout, limit):
            handler(item.kind, item.payload)
            item.ack()
            done += 1
        return done

    def __iter__(self) -> Iterator[Received]:
        while not self.closed:
            yield from self.fetch(1.0)

    def dead_letter(self, payload: bytes, reason: str) -> bool:
        """Keep a message that cannot be read where an operator finds it; ``False`` when this
        transport has no such place."""
        return False

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


# --- MQTT --------------------------------------------------------------------------------------


class MqttLink(Link):
    """A link over an MQTT broker (see the module); ``url`` ``mqtt://[user:password@]host:port``
    (``mqtts://`` for TLS)."""

    def __init__(
        self,
        url: str = "mqtt://127.0.0.1:1883",
        *,
        role: Role,
        hes: str,
        prefix: str = "m2c",
        client_id: str | None = None,
        connect_timeout_s: float = 10.0,
        keepalive_s: int = 30,
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        super().__init__(role=role, hes=hes, prefix=prefix)
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp"):
            raise InvalidInput(f"not an MQTT URL: {url!r}", code="hes.bad_url")
        self.timeout_s = connect_timeout_s
        self.client_id = client_id or f"m2c-{role}-{prefix}-{hes}"[:128]
        self._inbox: queue.Queue[Received] = queue.Queue()
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._pending_subs: set[int] = set()
        self._lock = threading.Lock()
        #: Replies published without waiting for the broker (see :meth:`send_reply`).
        self._unconfirmed: list[Any] = []
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        if parts.username:
            client.username_pw_set(parts.username, parts.password)
        if parts.scheme == "mqtts":
            client.tls_set()
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_disconnect = self._on_disconnect
        self._client = client
        try:
            client.connect(parts.hostname or "127.0.0.1", parts.port or 1883, keepalive=keepalive_s)
        except OSError as exc:
            raise LinkUnavailable(f"cannot reach the MQTT broker at {url}: {exc}", url=url) from exc
        client.loop_start()
        if not (self._connected.wait(connect_timeout_s) and self._subscribed.wait(connect_timeout_s)):
            self.close()
            raise LinkUnavailable(f"the MQTT broker at {url} did not accept the session", url=url)

    def topic(self, kind: str) -> str:
        return mqtt_topic(self.prefix, self.hes, kind)

    def _on_connect(self, client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            return
        self._connected.set()
        _result, mid = client.subscribe([(self.topic(kind), 1) for kind in INBOUND[self.role]])
        with self._lock:
            self._pending_subs.add(mid)

    def _on_subscribe(self, _client: Any, _userdata: Any, mid: int, _reasons: Any, _props: Any) -> None:
        with self._lock:
            self._pending_subs.discard(mid)
            if not self._pending_subs:
                self._subscribed.set()

    def _on_disconnect(self, *_: Any) -> None:
        self._connected.clear()

    def _on_message(self, client: Any, _userdata: Any, msg: Any) -> None:
        mid, qos = msg.mid, msg.qos
        self._inbox.put(
            Received(
                kind=msg.topic.rsplit("/", 1)[-1],
                payload=bytes(msg.payload),
                _ack=lambda: client.ack(mid, qos),
            )
        )

    def send_reply(self, payload: bytes, *, message_id: str | None = None) -> None:
        """Publish a reply at QoS 1 without waiting for the broker's PUBACK, which a broker
        without ``set_tcp_nodelay`` holds back tens of milliseconds per message."""
        self._check_outbound("reply")
        info = self._client.publish(self.topic("reply"), payload, qos=1)
        if info.rc != 0:
            raise LinkUnavailable(f"publishing a reply failed (paho rc {info.rc})")
        if len(self._unconfirmed) >= 1000:
            self._unconfirmed = [i for i in self._unconfirmed if not i.is_published()]
        self._unconfirmed.append(info)

    def send(self, kind: str, payload: bytes, *, message_id: str | None = None) -> None:
        self._check_outbound(kind)
        info = self._client.publish(self.topic(kind), payload, qos=1)
        try:
            info.wait_for_publish(self.timeout_s)
        except (RuntimeError, ValueError) as exc:
            raise LinkUnavailable(f"publishing {kind} failed: {exc}") from exc
        if not info.is_published():
            raise LinkUnavailable(f"the MQTT broker did not acknowledge the {kind} message in time")

    def fetch(self, timeout: float = 1.0, limit: int = 100) -> list[Received]:
        out: list[Received] = []
        try:
            out.append(self._inbox.get(timeout=timeout))
        except queue.Empty:
            return out
        while len(out) < limit:
            try:
                out.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        return out

    def close(self) -> None:
        """Wait (up to the connect timeout) for the replies still on their way, then disconnect:
        the client holds back publishes past its in-flight window, and a disconnect drops them."""
        if self.closed:
            return
        self.closed = True
        deadline = time.monotonic() + self.timeout_s
        for info in self._unconfirmed:
            with contextlib.suppress(Exception):
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
        with contextlib.suppress(Exception):
            self._client.disconnect()
        self._client.loop_stop()


# --- NATS JetStream ----------------------------------------------------------------------------


def _token(text: str) -> str:
    """``text`` usable in a stream or consumer name (letters, digits, ``_`` and ``-``)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)


def stream_name(hes: str) -> str:
    return f"M2C_HES_{_token(hes)}"


class NatsLink(Link):
    """A link over NATS JetStream (see the module). The client runs on an event loop of its own
    thread; the methods are plain blocking calls."""

    def __init__(
        self,
        url: str = "nats://127.0.0.1:4222",
        *,
        role: Role,
        hes: str,
        prefix: str = "m2c",
        ack_wait_s: float = 60.0,
        duplicate_window_s: float = 600.0,
        max_age_s: float = 7 * 86400.0,
        connect_timeout_s: float = 5.0,
        poll_s: float = 0.2,
    ) -> None:
        super().__init__(role=role, hes=hes, prefix=prefix)
        self.url, self.stream = url, stream_name(hes)
        self.poll_s = poll_s
        self.timeout_s = connect_timeout_s
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"nats-{role}-{hes}", daemon=True)
        self._thread.start()
        self._subs: list[tuple[str, Any]] = []
        self._replies: list[concurrent.futures.Future[Any]] = []
        try:
            self._run(self._open(ack_wait_s, duplicate_window_s, max_age_s), connect_timeout_s * 3)
        except BaseException:
            self._stop()
            raise

    def subject(self, kind: str) -> str:
        return nats_subject(self.prefix, self.hes, kind)

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _open(self, ack_wait_s: float, duplicate_window_s: float, max_age_s: float) -> None:
        import nats
        from nats.js.api import ConsumerConfig, StreamConfig
        from nats.js.errors import NotFoundError

        async def quiet(_: Exception) -> None:
            """Connection trouble surfaces as errors of the calls, not as log noise."""

        try:
            self._nc = await asyncio.wait_for(
                nats.connect(
                    self.url,
                    connect_timeout=self.timeout_s,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=1,
                    error_cb=quiet,
                ),
                timeout=self.timeout_s * 2,
            )
        except Exception as exc:
            raise LinkUnavailable(f"cannot reach NATS at {self.url}: {exc}", url=self.url) from exc
        self._js = self._nc.jetstream()
        wanted = f"{self.prefix}.hes.{self.hes}.>"
        try:
            info = await self._js.stream_info(self.stream)
        except NotFoundError:
            await self._js.add_stream(
                StreamConfig(
                    name=self.stream,
                    subjects=[wanted],
                    duplicate_window=duplicate_window_s,
                    max_age=max_age_s,
                )
            )
        else:
            if wanted not in (info.config.subjects or []):
                config = info.config
                config.subjects = [*(config.subjects or []), wanted]
                await self._js.update_stream(config)
        for kind in INBOUND[self.role]:
            durable = _token(f"m2c_{self.role}_{self.prefix}_{self.hes}_{kind}")
            sub = await self._js.pull_subscribe(
                self.subject(kind),
                durable=durable,
                stream=self.stream,
                config=ConsumerConfig(ack_wait=ack_wait_s),
            )
            self._subs.append((kind, sub))

    def send(self, kind: str, payload: bytes, *, message_id: str | None = None) -> None:
        self._check_outbound(kind)
        mid = message_id or message_id_of(payload)
        headers = {"Nats-Msg-Id": mid} if mid else None
        self._publish(self.subject(kind), payload, headers)

    def send_reply(self, payload: bytes, *, message_id: str | None = None) -> None:
        """Publish a reply without waiting for JetStream's acknowledgement (as on MQTT: a reply
        lost with a crash is given again when its message comes again). A reply whose publish
        failed is logged at the next send or at close."""
        self._check_outbound("reply")
        mid = message_id or message_id_of(payload)
        headers = {"Nats-Msg-Id": mid} if mid else None
        self._reap_replies()
        self._replies.append(
            asyncio.run_coroutine_threadsafe(
                self._js.publish(self.subject("reply"), payload, headers=headers), self._loop
            )
        )

    def _reap_replies(self, wait: float = 0.0) -> None:
        """Forget the reply publishes that are done (waiting up to ``wait`` s for the rest),
        logging those that failed."""
        if wait:
            concurrent.futures.wait(self._replies, timeout=wait)
        pending = []
        for fut in self._replies:
            if not fut.done():
                pending.append(fut)
            elif fut.exception() is not None:
                log.warning("publishing a reply on %s failed: %s", self.subject("reply"), fut.exception())
        self._replies = pending

    def _publish(self, subject: str, payload: bytes, headers: dict[str, str] | None) -> None:
        try:
            self._run(self._js.publish(subject, payload, headers=headers), self.timeout_s * 3)
        except M2CError:
            raise
        except Exception as exc:
            raise LinkUnavailable(f"publishing to {subject} failed: {exc}", url=self.url) from exc

    def dead_letter(self, payload: bytes, reason: str) -> bool:
        """Copy a message that cannot be read to ``<prefix>.hes.<hes>.dead`` (reason in ``M2C-Reason``)."""
        self._publish(self.subject(DEAD), payload, {REASON_HEADER: reason.replace("\n", " ")[:1000]})
        return True

    def fetch(self, timeout: float = 1.0, limit: int = 100) -> list[Received]:
        return self._run(self._fetch(timeout, limit), timeout + self.timeout_s * 3)

    async def _fetch(self, timeout: float, limit: int) -> list[Received]:
        """Ask every consumer in short rounds until one has something or ``timeout`` is over
        (one long wait per consumer would hold back the others' messages)."""

        async def one(kind: str, sub: Any, wait: float) -> list[Received]:
            try:
                msgs = await sub.fetch(limit, timeout=wait)
            except TimeoutError:
                return []
            return [Received(kind, bytes(m.data), dict(m.headers or {}), self._acker(m)) for m in msgs]

        deadline = time.monotonic() + timeout
        while True:
            wait = max(0.05, min(self.poll_s, deadline - time.monotonic()))
            batches = await asyncio.gather(*(one(kind, sub, wait) for kind, sub in self._subs))
            found = [r for batch in batches for r in batch]
            if found or time.monotonic() >= deadline:
                return found

    def _acker(self, msg: Any) -> Callable[[], None]:
        return lambda: self._run(msg.ack(), self.timeout_s * 3)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._reap_replies(wait=self.timeout_s)
        with contextlib.suppress(Exception):
            self._run(self._nc.close(), self.timeout_s * 2)
        self._stop()

    def _stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._loop.is_running():
            self._loop.close()


def dead_letters(url: str, *, hes: str, prefix: str = "m2c", timeout: float = 1.0) -> list[tuple[bytes, str]]:
    """The messages of a head-end link that could not be read, with their reasons (oldest first)."""

    async def read() -> list[tuple[bytes, str]]:
        import nats

        nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=0, allow_reconnect=False)
        try:
            js = nc.jetstream()
            sub = await js.pull_subscribe(
                nats_subject(prefix, hes, DEAD), durable=None, stream=stream_name(hes)
            )
            out: list[tuple[bytes, str]] = []
            while True:
                try:
                    msgs = await sub.fetch(100, timeout=timeout)
                except TimeoutError:
                    return out
                out += [(bytes(m.data), (m.headers or {}).get(REASON_HEADER, "")) for m in msgs]
                for m in msgs:
                    await m.ack()
        finally:
            await nc.close()

    return asyncio.run(read())


# --- REST (head-end role) ----------------------------------------------------------------------


class RestLink(Link):
    """The head-end's end of the REST interface: :meth:`send` POSTs a message to
    ``<base_url>/api/v1/hes/messages`` and keeps the reply for :meth:`fetch`; :meth:`fetch`
    also asks ``GET /api/v1/hes/commands`` for the commands due (marked sent by the MDM)."""

    def __init__(
        self,
        base_url: str,
        *,
        hes: str,
        api_key: str = "",
        prefix: str = "m2c",
        timeout_s: float = 30.0,
        poll_every_s: float = 1.0,
        client: Any = None,
    ) -> None:
        """``client``: an ``httpx.Client`` to use instead of one made here (TLS settings, tests)."""
        import httpx

        super().__init__(role="hes", hes=hes, prefix=prefix)
        headers = {"X-API-Key": api_key} if api_key else {}
        self._owned = client is None
        self._http: httpx.Client = client or httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s
        )
        self._replies: list[Received] = []
        self.poll_every_s = poll_every_s

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx
        from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

        @retry(
            stop=stop_after_attempt(3),
            wait=wait_exponential(multiplier=0.2, max=2),
            retry=retry_if_exception_type(httpx.TransportError),
            reraise=True,
        )
        def call() -> httpx.Response:
            return self._http.request(method, path, **kwargs)

        try:
            response = call()
        except httpx.TransportError as exc:
            raise LinkUnavailable(f"the MDM at {self._http.base_url} does not answer: {exc}") from exc
        if response.status_code >= 400:
            raise M2CError(
                f"the MDM answered {response.status_code} to {method} {path}: {response.text[:300]}",
                code="hes.rest_refused",
                status=response.status_code,
            )
        return response

    def send(self, kind: str, payload: bytes, *, message_id: str | None = None) -> None:
        self._check_outbound(kind)
        xml = payload.lstrip()[:1] == b"<"
        media = "application/xml" if xml else "application/json"
        response = self._call(
            "POST", "/api/v1/hes/messages", content=payload, headers={"content-type": media}
        )
        self._replies.append(Received("reply", response.content, {"content-type": media}))

    def fetch(self, timeout: float = 1.0, limit: int = 100) -> list[Received]:
        out, self._replies = self._replies[:limit], self._replies[limit:]
        if len(out) < limit:
            commands = self._call("GET", "/api/v1/hes/commands", params={"limit": limit - len(out)}).json()
            out += [Received("command", json.dumps(c).encode()) for c in commands]
        if not out and timeout > 0:
            time.sleep(min(timeout, self.poll_every_s))
        return out

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self._owned:
                self._http.close()


def open_link(transport: str, url: str | None = None, *, role: Role, hes: str, prefix: str = "m2c") -> Link:
    """A link of ``transport`` (``mqtt``, ``nats``, or ``rest`` for the head-end role)."""
    if transport == "mqtt":
        return MqttLink(url or "mqtt://127.0.0.1:1883", role=role, hes=hes, prefix=prefix)
    if transport == "nats":
        return NatsLink(url or "nats://127.0.0.1:4222", role=role, hes=hes, prefix=prefix)
    if transport == "rest" and role == "hes":
        return RestLink(url or "http://127.0.0.1:8000", hes=hes, prefix=prefix)
    raise InvalidInput(f"no {transport!r} transport for the {role} side", code="hes.bad_transport")


__all__ = [
    "INBOUND",
    "OUTBOUND",
    "Link",
    "LinkUnavailable",
    "MqttLink",
    "NatsLink",
    "Received",
    "RestLink",
    "dead_letters",
    "message_id_of",
    "open_link",
    "stream_name",
]


def forget_mqtt_sessions(url: str, *, hes: str, prefix: str = "m2c") -> None:
    """Drop the broker's persistent sessions of both ends of a link (and what they still hold),
    for a link that is not used again."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    parts = urlsplit(url)
    for role in ("hes", "mdm"):
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"m2c-{role}-{prefix}-{hes}"[:128], clean_session=True
        )
        if parts.username:
            client.username_pw_set(parts.username, parts.password)
        try:
            client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
        except OSError:
            return
        client.loop_start()
        client.disconnect()
        client.loop_stop()
