"""One HTTP POST to a webhook target, guarded: no private targets, bounded time and answer size.

The target's host is resolved once and every address checked (private, loopback, link-local,
multicast, reserved and unspecified addresses are refused unless WEBHOOK_ALLOWED_PRIVATE_TARGETS
lists them); the connection goes to the checked address, so a second DNS answer cannot swap it
(DNS rebinding). Redirects are followed (at most WEBHOOK_MAX_REDIRECTS), each target checked again.

A ``Session`` keeps one HTTP/1.1 connection alive per checked target (scheme, host, port, address)
for a batch of deliveries. The guard still runs before every POST: the host is resolved and checked
again, and a connection is reused only when it goes to the address that check just allowed.
"""

import contextlib
import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from django.conf import settings

REDIRECTS = {301, 302, 303, 307, 308}


class TargetRefused(Exception):
    """The target may not be called (a private address, a bad URL): retrying will not help."""


@dataclass
class Answer:
    status_code: int | None
    body: bytes
    duration_ms: int
    error: str = ""
    refused: bool = False

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _allowed_networks():
    networks = []
    for entry in settings.WEBHOOK_ALLOWED_PRIVATE_TARGETS:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            continue
    return networks


def address_is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def address_allowed(address: str) -> bool:
    if address_is_public(address):
        return True
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return any(ip in network for network in _allowed_networks())


def target_check(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, address to connect to) for ``url``, or TargetRefused saying why."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetRefused("The target must be an http or https URL with a host.")
    if parts.username or parts.password:
        raise TargetRefused("The target URL may not carry a user name or password.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise TargetRefused("The target URL has an invalid port.") from exc
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise TargetRefused(f"The host “{parts.hostname}” does not resolve: {exc}.") from exc
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    refused = [a for a in addresses if not address_allowed(a)]
    if refused or not addresses:
        raise TargetRefused(
            f"The host “{parts.hostname}” resolves to a private, loopback or link-local address "
            f"({', '.join(refused)}): webhooks may only call public addresses."
        )
    return parts.scheme, parts.hostname, port, addresses[0]


def _socket_open(address: str, port: int, timeout: float) -> socket.socket:
    sock = socket.create_connection((address, port), timeout)
    # Small requests, one at a time on a kept-alive connection: no Nagle delay waiting for an ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _quick_ack(sock) -> None:
    """Acknowledge the answer's segments at once (Linux): a target that writes its answer's head and
    body separately, Nagle on (Python's http.server does), otherwise waits out our delayed ACK
    (40 ms) on a kept-alive connection before sending the body."""
    quick_ack = getattr(socket, "TCP_QUICKACK", None)
    if quick_ack is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, quick_ack, 1)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host, port, address, timeout):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self):
        self.sock = _socket_open(self._address, self.port, self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host, port, address, timeout):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self):
        sock = _socket_open(self._address, self.port, self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


class Session:
    """Kept-alive connections for a batch of POSTs, one per checked target; ``close()`` them after.

    Not shared between threads: each batch (task) has its own.
    """

    def __init__(self):
        self._connections: dict[tuple[str, str, int, str], http.client.HTTPConnection] = {}
        self.opened = 0  # connections opened so far (the tests and benchmarks read it)

    def connection(self, target: tuple[str, str, int, str], timeout: float):
        """(connection, reused) to the checked ``target`` (scheme, host, port, address)."""
        conn = self._connections.get(target)
        if conn is not None and conn.sock is not None:
            return conn, True
        scheme, host, port, address = target
        connection_class = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
        conn = connection_class(host, port, address, timeout)
        self._connections[target] = conn
        self.opened += 1
        return conn, False

    def discard(self, target) -> None:
        conn = self._connections.pop(target, None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        for target in list(self._connections):
            self.discard(target)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# A kept-alive connection the target closed meanwhile fails as the request is sent or its answer
# awaited: the request is sent again once, on a new connection.
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


def post(url: str, body: bytes, headers: dict[str, str], session: Session | None = None) -> Answer:
    """POST ``body`` to ``url``; never raises, never reads more than WEBHOOK_MAX_RESPONSE_BYTES.

    With a ``session``, the connection is kept for the next POST to the same checked target when the
    answer was read whole; without, it is closed.
    """
    started = time.monotonic()
    deadline = started + settings.WEBHOOK_TIMEOUT
    own_session = session is None
    session = session or Session()

    def answer(status=None, data=b"", error="", refused=False):
        return Answer(status, data, int((time.monotonic() - started) * 1000), error, refused)

    try:
        for _hop in range(settings.WEBHOOK_MAX_REDIRECTS + 1):
            try:
                target = target_check(url)  # on every POST, a kept-alive connection or not
            except TargetRefused as exc:
                return answer(error=str(exc), refused=True)
            path = urlsplit(url)._replace(scheme="", netloc="", fragment="").geturl() or "/"
            try:
                response = _request(session, target, path, body, headers, deadline)
                data, whole = _read_capped(response, deadline)
                if not whole or response.will_close:
                    session.discard(target)
                if response.status in REDIRECTS and response.getheader("Location"):
                    url = urljoin(url, response.getheader("Location"))
                    continue
                return answer(response.status, data)
            except TimeoutError:
                session.discard(target)
                return answer(error=f"Timed out after {settings.WEBHOOK_TIMEOUT:g} s.")
            except (OSError, http.client.HTTPException) as exc:
                session.discard(target)
                return answer(error=f"{type(exc).__name__}: {exc}")
        return answer(error=f"More than {settings.WEBHOOK_MAX_REDIRECTS} redirects.")
    finally:
        if own_session:
            session.close()


def _request(session: Session, target, path: str, body: bytes, headers: dict[str, str], deadline: float):
    """Send the POST on the session's connection to ``target`` and return the answer's head."""
    headers = {"Content-Type": "application/json", "User-Agent": "crm-webhooks/1", **headers}
    while True:
        timeout = min(settings.WEBHOOK_CONNECT_TIMEOUT, max(deadline - time.monotonic(), 0.01))
        conn, reused = session.connection(target, timeout)
        try:
            if conn.sock is not None:
                conn.sock.settimeout(max(deadline - time.monotonic(), 0.01))
            conn.request("POST", path, body=body, headers=headers)
            conn.sock.settimeout(max(deadline - time.monotonic(), 0.01))
            _quick_ack(conn.sock)
            return conn.getresponse()
        except _STALE:
            session.discard(target)
            if not reused:
                raise


def _read_capped(response, deadline: float) -> tuple[bytes, bool]:
    """The first WEBHOOK_MAX_RESPONSE_BYTES of the answer, read before the deadline (the rest is
    dropped), and whether that was the whole answer (the connection may then serve the next POST)."""
    limit, chunks, size = settings.WEBHOOK_MAX_RESPONSE_BYTES, [], 0
    while size < limit:
        if time.monotonic() >= deadline:
            raise TimeoutError
        chunk = (
            response.read1(min(65536, limit - size))
            if hasattr(response, "read1")
            else response.read(min(65536, limit - size))
        )
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if response.length == 0 and not response.isclosed():
        response.read()  # nothing left: marks the answer done, so the connection may serve the next POST
    return b"".join(chunks), response.isclosed()
