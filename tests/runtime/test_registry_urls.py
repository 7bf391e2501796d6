"""The one URL parser (registry/urls.py): where a request goes is where the credential may go (issue 9, class 3).

Each attack is served by a real loopback server (the registry, which needs Basic auth) and aimed at a
second loopback server on another port that records every header it receives: the credential must
never reach it. Both servers are named insecure, so plain http is not what stops the attack.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from urllib3.util import parse_url

from image_verifier.deadline import Deadline
from image_verifier.errors import HostileArtifactError, RegistryUnavailableError
from image_verifier.oci import OCI_INDEX
from image_verifier.reference import ImageReference
from image_verifier.registry import BasicCredentials, RegistryClient, StaticCredentials, UnsafeUrlError
from image_verifier.registry.urls import insecure_origins, parse_registry_url
from tests.support.fake_registry import FakeRegistry, Reply
from tests.support.images import sha256_digest

CREDENTIALS = BasicCredentials(username="AWS", password="registry-secret")
BLOB = b"blob bytes"
DIGEST = sha256_digest(BLOB)
INSECURE = insecure_origins(["127.0.0.1:5000", "localhost:5000"])


@pytest.fixture
def hosts(fake_registry_factory):
    """(registry that needs Basic auth, another host that records what it receives)."""
    registry, other = fake_registry_factory(), fake_registry_factory()
    registry.require_basic(CREDENTIALS.header)
    other.route("GET", "/x", Reply(body=BLOB))
    other.route("GET", f"/v2/app/blobs/{DIGEST}", Reply(body=BLOB))
    return registry, other


def client_for(*servers: FakeRegistry) -> RegistryClient:
    return RegistryClient(insecure_registries={s.host for s in servers},
                          credentials=[StaticCredentials(by_host={servers[0].host: CREDENTIALS})])


def fetch_blob(client: RegistryClient, registry: FakeRegistry) -> bytes:
    descriptor_ref = ImageReference.parse(f"{registry.host}/app@{DIGEST}")
    from image_verifier.oci import Descriptor

    descriptor = Descriptor(media_type="application/octet-stream", digest=DIGEST, size=len(BLOB))
    return client.bound(Deadline.after(10)).get_blob(descriptor_ref, descriptor, max_bytes=1024)


def redirect(registry: FakeRegistry, location: str) -> None:
    registry.route("GET", f"/v2/app/blobs/{DIGEST}", Reply(status=307, headers={"Location": location}))


def credentials_seen_by(server: FakeRegistry) -> list[str | None]:
    return [r.header("Authorization") for r in server.requests]


# -- redirects: the attacks of class 3, through real servers --------------------------------------------


def test_rejects_a_redirect_when_a_backslash_makes_parsers_disagree_on_the_host(hosts):
    # Given: urllib.parse reads host REGISTRY; urllib3 would connect to OTHER (the reported attack)
    registry, other = hosts
    redirect(registry, f"http://{other.host}\\@{registry.host}/v2/app/blobs/{DIGEST}")
    # When / Then
    with pytest.raises(UnsafeUrlError, match="backslash"):
        fetch_blob(client_for(registry, other), registry)
    assert other.requests == []


def test_rejects_a_redirect_when_it_carries_user_info(hosts):
    # Given: https://REGISTRY@OTHER/ : a reader that stops at '@' sees REGISTRY
    registry, other = hosts
    redirect(registry, f"http://{registry.host}@{other.host}/x")
    # When / Then
    with pytest.raises(UnsafeUrlError, match="user info"):
        fetch_blob(client_for(registry, other), registry)
    assert other.requests == []


def test_follows_a_network_path_redirect_without_the_credential(hosts):
    # Given: //OTHER/x keeps the scheme and changes the host (and port)
    registry, other = hosts
    redirect(registry, f"//{other.host}/x")
    # When
    data = fetch_blob(client_for(registry, other), registry)
    # Then: the registry got the credential, the other host never did
    assert data == BLOB
    assert CREDENTIALS.header in credentials_seen_by(registry)
    assert credentials_seen_by(other) == [None]


def test_follows_a_redirect_to_the_same_host_on_another_port_without_the_credential(hosts):
    # Given: scheme and host equal, port differs: another origin
    registry, other = hosts
    redirect(registry, f"http://{other.host}/x")
    # When
    fetch_blob(client_for(registry, other), registry)
    # Then
    assert urlsplit(other.url).hostname == urlsplit(registry.url).hostname
    assert credentials_seen_by(other) == [None]


def test_refuses_a_plain_http_redirect_when_the_target_was_not_named_insecure(hosts):
    # Given: only the registry is insecure; the redirect downgrades to http elsewhere
    registry, other = hosts
    redirect(registry, f"http://{other.host}/x")
    client = RegistryClient(insecure_registries={registry.host},
                            credentials=[StaticCredentials(by_host={registry.host: CREDENTIALS})])
    # When / Then
    with pytest.raises(RegistryUnavailableError, match=f"refusing to send a request to http://{other.host}"):
        fetch_blob(client, registry)
    assert other.requests == []


@pytest.mark.parametrize("template", [
    "http://{other}/x\t",  # a tab inside the URL
    "http://{other}\t/x",
    "http://{other_ip}%3A{other_port}/x",  # percent-encoded ':' in the host
    "http://{other_ip}:{other_port}%40{registry}/x",  # percent-encoded '@'
    "http://{other}%5C@{registry}/x",  # percent-encoded backslash, then user info
    "http://%31%32%37.0.0.1:{other_port}/x",  # urllib3 decodes %31 to '1': the host is not what it looks like
])
def test_rejects_a_redirect_when_it_hides_the_host_in_whitespace_or_percent_encoding(hosts, template):
    # Given
    registry, other = hosts
    other_ip, other_port = other.host.split(":")
    redirect(registry, template.format(other=other.host, other_ip=other_ip, other_port=other_port, registry=registry.host))
    # When / Then
    with pytest.raises(UnsafeUrlError):
        fetch_blob(client_for(registry, other), registry)
    assert other.requests == []


def test_rejects_referrers_when_the_next_page_link_hides_another_host(hosts):
    # Given: a first referrers page whose Link would send the credential to OTHER
    registry, other = hosts
    subject = sha256_digest(b"image")
    link = f"http://{other.host}\\@{registry.host}/v2/app/referrers/{subject}?page=2"
    registry.route("GET", f"/v2/app/referrers/{subject}", Reply(
        body=b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}',
        headers={"Content-Type": OCI_INDEX, "Link": f'<{link}>; rel="next"'}))
    # When / Then
    with pytest.raises(HostileArtifactError, match="backslash"):
        client_for(registry, other).bound(Deadline.after(10)).referrers(
            ImageReference.parse(f"{registry.host}/app@{subject}"), subject)
    assert other.requests == []


def test_rejects_referrers_when_the_next_page_link_contains_a_tab(hosts):
    # Given
    registry, other = hosts
    subject = sha256_digest(b"image")
    registry.route("GET", f"/v2/app/referrers/{subject}", Reply(
        body=b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}',
        headers={"Content-Type": OCI_INDEX, "Link": f'</v2/app/referrers/{subject}?\tpage=2>; rel="next"'}))
    # When / Then
    with pytest.raises(UnsafeUrlError, match="control characters, whitespace"):
        client_for(registry, other).bound(Deadline.after(10)).referrers(
            ImageReference.parse(f"{registry.host}/app@{subject}"), subject)


# -- the parser itself ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), [
    ("https://reg.example.com/v2/", ("https", "reg.example.com", 443)),
    ("https://REG.example.com:8443/v2/?a=%20b", ("https", "reg.example.com", 8443)),
    ("http://127.0.0.1:5000/v2/", ("http", "127.0.0.1", 5000)),
    ("https://[::1]:5000/v2/", ("https", "[::1]", 5000)),
])
def test_parses_the_origin_the_http_client_connects_to(raw, expected):
    # Given / When
    url = parse_registry_url(raw, insecure=INSECURE)
    # Then
    assert url.origin == expected
    again = parse_url(url.url)
    assert ((again.host or "").lower(), again.port or (443 if again.scheme == "https" else 80)) == expected[1:]


@pytest.mark.parametrize(("raw", "message"), [
    ("https://other\\@reg.example.com/x", "backslash"),
    ("https://reg.example.com@other/", "user info"),
    ("https://user:pw@reg.example.com/", "user info"),
    ("https://reg.example.com/a\nb", "control characters"),
    ("https://reg.example.com/a b", "whitespace"),
    ("https://rég.example.com/", "non-ASCII"),
    ("https://reg%2Eexample.com/", "'%'"),
    ("https://reg.example.com:/", "empty port"),
    ("https://reg.example.com:70000/", "cannot be parsed"),
    ("https://[reg.example.com/", "cannot be parsed"),
    ("ftp://reg.example.com/", "scheme 'ftp'"),
    ("javascript:alert(1)", "scheme 'javascript'"),
    ("/v2/relative", "not an absolute URL"),
    ("https://-bad-.example.com/", "not plain host"),
    ("https://bad..example.com/", "invalid host name"),
])
def test_rejects_a_url_when_its_host_could_be_read_two_ways_or_is_malformed(raw, message):
    # Given / When / Then
    with pytest.raises(UnsafeUrlError, match=message):
        parse_registry_url(raw, insecure=INSECURE)


def test_rejects_plain_http_when_the_host_port_was_not_named_insecure():
    # Given: 127.0.0.1:5000 is insecure, port 5001 is not
    # When / Then
    with pytest.raises(RegistryUnavailableError, match="only https is allowed"):
        parse_registry_url("http://127.0.0.1:5001/v2/", insecure=INSECURE)


def test_resolves_relative_references_against_the_checked_base():
    # Given
    base = parse_registry_url("https://reg.example.com/v2/app/blobs/x", insecure=INSECURE)
    # When / Then
    assert parse_registry_url("/s3/obj?sig=1", insecure=INSECURE, base=base).url == "https://reg.example.com/s3/obj?sig=1"
    assert parse_registry_url("//s3.example.com/o", insecure=INSECURE, base=base).origin == ("https", "s3.example.com", 443)
    with pytest.raises(UnsafeUrlError, match="another host"):
        parse_registry_url("//s3.example.com/o", insecure=INSECURE, base=base, same_origin=True)


_URL_CHARS = st.sampled_from(list("aZ09.-:@/\\%?#[]_~!$&'()*+,;= \t\né") + ["reg.example.com", "other", "127.0.0.1", "http", "https", "//", "%5C", "%40"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_URL_CHARS, max_size=14).map("".join), st.sampled_from(["https://", "http://", "//", ""]))
def test_accepts_only_urls_on_whose_origin_both_parsers_agree(tail, head):
    # Given: generated URLs built from the characters that make parsers disagree
    raw = head + tail
    base = parse_registry_url("https://reg.example.com/v2/", insecure=INSECURE)
    # When
    try:
        url = parse_registry_url(raw, insecure=INSECURE, base=base)
    except (UnsafeUrlError, RegistryUnavailableError):
        return
    # Then: urllib3 (what connects) and urllib.parse read the checked URL's origin the same way
    connected, split = parse_url(url.url), urlsplit(url.url)
    default = 443 if url.scheme == "https" else 80
    assert ((connected.host or "").lower(), connected.port or default) == (url.host, url.port)
    assert (split.hostname, split.port or default, split.username) == (url.host.strip("[]"), url.port, None)
    assert url.scheme == "https" or (url.host, url.port) in INSECURE


# -- the reported attack over https: TLS loopback servers, a CA the client trusts ---------------------------


@pytest.fixture
def tls_hosts(fake_registry_factory, tmp_path):
    """Like `hosts`, but both servers speak https with a certificate for 127.0.0.1 from a test CA."""
    ca_file, context = _loopback_tls(tmp_path)
    registry, other = fake_registry_factory(), fake_registry_factory()
    for server in (registry, other):
        # FakeRegistry serves plain http; wrapping its listening socket before the first accept makes it https
        server._server.socket = context.wrap_socket(server._server.socket, server_side=True)
    registry.require_basic(CREDENTIALS.header)
    other.route("GET", "/x", Reply(body=BLOB))
    client = RegistryClient(ca_certs=str(ca_file), credentials=[StaticCredentials(by_host={registry.host: CREDENTIALS})])
    return registry, other, client


def test_rejects_an_https_redirect_when_a_backslash_would_send_the_credential_to_another_host(tls_hosts):
    # Given: the attack as reported: https://OTHER\@REGISTRY/..., judged same-origin by urllib.parse
    registry, other, client = tls_hosts
    redirect(registry, f"https://{other.host}\\@{registry.host}/v2/app/blobs/{DIGEST}")
    # When / Then
    with pytest.raises(UnsafeUrlError, match="backslash"):
        fetch_blob(client, registry)
    assert CREDENTIALS.header in credentials_seen_by(registry)  # the registry did get it: https works here
    assert other.requests == []


def test_follows_an_https_redirect_to_another_host_without_the_credential(tls_hosts):
    # Given
    registry, other, client = tls_hosts
    redirect(registry, f"https://{other.host}/x")
    # When
    data = fetch_blob(client, registry)
    # Then
    assert data == BLOB
    assert credentials_seen_by(other) == [None]


def _loopback_tls(tmp_path):
    import datetime as dt
    import ipaddress
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "loopback test registry")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "ca.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return cert_file, context
