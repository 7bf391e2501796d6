"""The one URL parser of the registry client: where a request goes, and whether a credential may follow it.

Every URL the client sends to (the registry's own, a redirect `Location`, a referrers `Link`, an upload
`Location`, a token realm) passes through `parse_registry_url`. It parses with urllib3's own
`parse_url`, which is what the connection pool connects to, and refuses every URL on which another
parser could disagree about the host (shared/reference/runtime-semantics.md §3):

- `https://OTHER\\@REGISTRY/` : urllib.parse reads the host `REGISTRY`, urllib3 connects to `OTHER`;
- user info of any kind (`https://REGISTRY@OTHER/`), `%` in the authority (urllib3 decodes `H%41` to `ha`);
- control characters, whitespace, non-ASCII (IDNA hosts are encoded differently by different tools);
- a scheme other than https, and http to a host that was not named with `--insecure-registry`.

Credentials go only where `RegistryUrl.origin` (scheme, host, port) equals the registry's own.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Iterable
from urllib.parse import urljoin, urlsplit

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from ..errors import HostileArtifactError, RegistryUnavailableError

MAX_URL_LENGTH = 8 * 1024  # S3 pre-signed URLs are ~1.5 KB; longer is junk, not a registry's redirect
DEFAULT_PORTS = {"https": 443, "http": 80}
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
# host[:port] exactly: a DNS name or an IPv4 address, or a bracketed IPv6 address. No '@', '%', '\\'.
_NETLOC_RE = re.compile(r"^(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]{1,5}))?$")
_LABEL_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


class UnsafeUrlError(HostileArtifactError):
    """A URL the registry handed us is malformed or could be read as two different hosts: refused."""


Origin = tuple[str, str, int]  # scheme, lower-case host, port (default made explicit)


@dataclass(frozen=True, kw_only=True)
class RegistryUrl:
    """A checked URL. `url` is what is handed to urllib3; `origin` decides where credentials may go."""

    scheme: str
    host: str
    port: int
    target: str  # path and query, as sent on the request line

    @property
    def origin(self) -> Origin:
        return (self.scheme, self.host, self.port)

    @property
    def netloc(self) -> str:
        return self.host if self.port == DEFAULT_PORTS[self.scheme] else f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.netloc}{self.target}"

    def __str__(self) -> str:
        return self.url


def insecure_origins(hosts: Iterable[str]) -> frozenset[tuple[str, int]]:
    """`host[:port]` values (as given to --insecure-registry) as (host, port) pairs; port 80 when absent."""
    found = set()
    for value in hosts:
        match = _NETLOC_RE.match(value.strip())
        if not match:
            raise ValueError(
                f"insecure registry {value!r} is not host[:port]; write it as in the image reference, e.g. localhost:5000"
            )
        found.add((match.group("host").lower(), int(match.group("port") or 80)))
    return frozenset(found)


def parse_registry_url(
    raw: str, *, insecure: frozenset[tuple[str, int]], base: RegistryUrl | None = None, what: str = "a URL",
    same_origin: bool = False,
) -> RegistryUrl:
    """Check `raw` (absolute, or relative to `base`) and return what urllib3 will connect to.

    Raises `UnsafeUrlError` for a URL whose host could be read two ways (or, with `same_origin`, that
    leaves `base`'s origin), and `RegistryUnavailableError` for plain http to a host that was not named
    insecure (a configuration the user can fix).
    """
    _check_characters(raw, what)
    relative = not _SCHEME_RE.match(raw)
    if relative and base is None:
        raise UnsafeUrlError(f"{what} {raw!r} is not an absolute URL")
    try:
        if relative and base is not None:
            raw = urljoin(base.url, raw)  # base is checked, and a network-path reference is re-checked below
        parsed = parse_url(raw)
        netloc = urlsplit(raw).netloc
    except (LocationParseError, ValueError) as exc:  # ValueError: urllib.parse on a stray '[' or ']'
        raise UnsafeUrlError(f"{what} {raw!r} cannot be parsed: {exc}") from exc
    scheme = (parsed.scheme or "").lower()
    if scheme not in DEFAULT_PORTS:
        raise UnsafeUrlError(
            f"{what} {raw!r} has scheme {scheme or 'none'!r}; only https (and http to insecure registries) is followed"
        )
    match = _NETLOC_RE.match(netloc)
    if parsed.auth is not None or not match:
        raise UnsafeUrlError(
            f"{what} {raw!r} has an authority that is not plain host[:port] (user info, '%', '\\\\' or an empty port); refused "
            "because different URL parsers would send the request, and the credential, to different hosts"
        )
    host = _checked_host(match.group("host").lower(), raw, what)
    port = int(match.group("port") or DEFAULT_PORTS[scheme])
    if not 0 < port < 65536:
        raise UnsafeUrlError(f"{what} {raw!r} has port {port}, outside 1-65535")
    if (parsed.host or "").lower() != host or (parsed.port or DEFAULT_PORTS[scheme]) != port:
        # Belt and braces: the pool connects to urllib3's reading; it must be the one we checked.
        raise UnsafeUrlError(f"{what} {raw!r} is read as host {parsed.host}:{parsed.port} by the HTTP client, not {host}:{port}")
    if same_origin and base is not None and (scheme, host, port) != base.origin:
        raise UnsafeUrlError(f"{what} {raw!r} points to another host ({scheme}://{host}:{port}) than {base.netloc}")
    if scheme == "http" and (host, port) not in insecure:
        raise RegistryUnavailableError(
            f"refusing to send a request to http://{match.group(0)}: only https is allowed unless the host:port is "
            f"listed in insecure registries (--insecure-registry)"
        )
    return RegistryUrl(scheme=scheme, host=host, port=port, target=parsed.request_uri)


def _check_characters(raw: str, what: str) -> None:
    if len(raw) > MAX_URL_LENGTH:
        raise UnsafeUrlError(f"{what} is {len(raw)} characters long, more than the limit of {MAX_URL_LENGTH}")
    for char in raw:
        if not "!" <= char <= "~":  # printable ASCII without space: no control, whitespace or non-ASCII
            raise UnsafeUrlError(
                f"{what} {raw!r} contains {char!r}; URLs with control characters, whitespace or non-ASCII are refused"
            )
    if "\\" in raw:
        raise UnsafeUrlError(f"{what} {raw!r} contains a backslash, which some parsers read as '/' and others as data")


def _checked_host(host: str, raw: str, what: str) -> str:
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError as exc:
            raise UnsafeUrlError(f"{what} {raw!r} has an invalid IPv6 address {host}") from exc
        return host
    labels = host.split(".")
    if not all(_LABEL_RE.match(label) for label in labels):
        raise UnsafeUrlError(f"{what} {raw!r} has an invalid host name {host!r}")
    return host
