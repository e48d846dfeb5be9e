"""The egress policy (SSRF guard): may an action connect to these resolved addresses?

Pure and synchronous: given the URL's scheme and host, every address the host resolved to
and the tenant's allow-list, :func:`decide` answers allow or deny with the rule that
decided. The caller (``activities/egress.py``) resolves, asks, and connects only to an
address it checked, so a second DNS answer cannot swap in another address.

Refused unless an allow-list entry permits them (rule names in brackets):

- schemes other than ``http`` and ``https`` [``scheme``];
- unspecified addresses ``0.0.0.0/8``, ``::`` [``unspecified``];
- loopback ``127.0.0.0/8``, ``::1`` [``loopback``];
- private networks, RFC 1918 ``10/8``, ``172.16/12``, ``192.168/16`` [``private``] and
  unique-local ``fc00::/7`` [``unique-local``];
- link-local ``169.254.0.0/16`` (cloud metadata lives there) and ``fe80::/10``
  [``link-local``];
- shared address space (carrier-grade NAT) ``100.64.0.0/10`` [``shared-address``];
- multicast ``224.0.0.0/4``, ``ff00::/8`` [``multicast``];
- broadcast ``255.255.255.255`` [``broadcast``];
- every other address that is not globally routable: reserved ``240.0.0.0/4``,
  benchmarking, documentation, IETF protocol ranges, site-local ``fec0::/10`` …
  [``reserved``].

An IPv6 address that embeds an IPv4 one is judged by the IPv4 address: IPv4-mapped
``::ffff:a.b.c.d``, IPv4-compatible ``::a.b.c.d``, NAT64 ``64:ff9b::/96`` and 6to4
``2002::/16``.

An allow-list entry is a host name (``billing.internal``; ``*.corp.example`` matches
names below ``corp.example``), an address (``10.1.2.3``) or a network in CIDR form
(``10.1.2.0/24``, ``fd00::/8``). A host name entry permits whatever that name resolves to;
an address or network permits those addresses whatever the name.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_SCHEMES = frozenset({"http", "https"})
MAX_ALLOW_ENTRIES = 1000

_V4_RULES: tuple[tuple[str, ipaddress.IPv4Network], ...] = tuple(
    (rule, ipaddress.IPv4Network(net))
    for rule, net in (
        ("unspecified", "0.0.0.0/8"),
        ("loopback", "127.0.0.0/8"),
        ("private", "10.0.0.0/8"),
        ("private", "172.16.0.0/12"),
        ("private", "192.168.0.0/16"),
        ("link-local", "169.254.0.0/16"),
        ("shared-address", "100.64.0.0/10"),
        ("multicast", "224.0.0.0/4"),
        ("broadcast", "255.255.255.255/32"),
    )
)
_V6_RULES: tuple[tuple[str, ipaddress.IPv6Network], ...] = tuple(
    (rule, ipaddress.IPv6Network(net))
    for rule, net in (
        ("unspecified", "::/128"),
        ("loopback", "::1/128"),
        ("unique-local", "fc00::/7"),
        ("link-local", "fe80::/10"),
        ("multicast", "ff00::/8"),
        ("reserved", "fec0::/10"),  # deprecated site-local (Python calls it global)
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")

_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_HOST = re.compile(rf"^(\*\.)?{_LABEL}(\.{_LABEL})*\.?$")


@dataclass(frozen=True)
class Decision:
    """The policy's answer.

    Attributes:
        allowed: whether the connection may be made.
        rule: the rule that decided: a refusal class (``loopback``, ``private``…),
            ``public`` for a globally routable address, or ``allow-list`` when an entry
            permitted it.
        address: the address the rule is about (None for a scheme refusal).
        entry: the allow-list entry that permitted it, if one did.
    """

    allowed: bool
    rule: str
    address: str | None = None
    entry: str | None = None

    def describe(self, host: str) -> str:
        if self.rule == "scheme":
            return "only http and https URLs may be requested"
        return (
            f"{host} resolves to {self.address}, which the egress policy refuses "
            f"({self.rule}); an admin may allow it with PUT /v1/egress-rules"
        )


@dataclass(frozen=True)
class AllowList:
    """A tenant's parsed allow-list (hashable: connection pools are kept per list)."""

    hosts: frozenset[str] = frozenset()
    suffixes: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        """Parse entries checked by :func:`check_entry` (invalid ones raise ValueError)."""
        hosts, suffixes, networks = set(), set(), []
        for raw in entries:
            entry = normalize_entry(raw)
            net = _network(entry)
            if net is not None:
                networks.append(net)
            elif entry.startswith("*."):
                suffixes.add(entry[1:])
            else:
                hosts.add(entry)
        return cls(frozenset(hosts), frozenset(suffixes), tuple(sorted(set(networks), key=str)))

    def permits_host(self, host: str) -> str | None:
        name = host.lower().rstrip(".")
        if name in self.hosts:
            return name
        for suffix in self.suffixes:
            if name.endswith(suffix):
                return "*" + suffix
        return None

    def permits_address(self, address: IPAddress) -> str | None:
        for net in self.networks:
            if address.version == net.version and address in net:
                return str(net)
        return None


def normalize_entry(raw: str) -> str:
    return raw.strip().lower().rstrip(".")


def _network(entry: str) -> IPNetwork | None:
    """The entry as a network if it is written as an address or CIDR (raises ValueError
    for a malformed one), else None (a host name)."""
    if ":" in entry or re.fullmatch(r"[0-9./]+", entry):
        return ipaddress.ip_network(entry, strict=True)
    return None


def check_entry(raw: str) -> str | None:
    """Why an allow-list entry is invalid, or None when it is valid."""
    entry = normalize_entry(raw)
    if not entry:
        return "an entry is a host name, an address or a CIDR network"
    try:
        if _network(entry) is not None:
            return None
    except ValueError as err:
        return f"not a valid address or CIDR network: {err}"
    if len(entry) > 253 or not _HOST.match(entry):
        return "not a valid host name (no scheme, port or path; '*.' may prefix a domain)"
    return None


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside an IPv4-mapped, IPv4-compatible, NAT64 or 6to4 one."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def classify(address: IPAddress) -> str:
    """The refusal class of an address, or ``public`` when it is globally routable."""
    inner = embedded_ipv4(address)
    if inner is not None:
        return classify(inner)
    rules: Sequence[tuple[str, IPNetwork]] = (
        _V4_RULES if isinstance(address, ipaddress.IPv4Address) else _V6_RULES
    )
    for rule, net in rules:
        if address in net:
            return rule
    return "public" if address.is_global else "reserved"


def decide(
    scheme: str, host: str, addresses: Sequence[IPAddress], allow: AllowList | None = None
) -> Decision:
    """Allow only when the scheme is http(s) and every resolved address is public or
    permitted by the allow-list; the first refused address names the rule."""
    if scheme.lower() not in ALLOWED_SCHEMES:
        return Decision(False, "scheme")
    return decide_addresses(host, addresses, allow)


def decide_addresses(
    host: str, addresses: Sequence[IPAddress], allow: AllowList | None = None
) -> Decision:
    """Allow only when every address ``host`` resolved to is public or permitted by the
    allow-list (the scheme checked already)."""
    allow = allow or AllowList()
    if not addresses:
        return Decision(False, "unresolved")
    by_host = allow.permits_host(host)
    if by_host is not None:
        return Decision(True, "allow-list", str(addresses[0]), by_host)
    permitted: str | None = None
    for address in addresses:
        rule = classify(address)
        if rule == "public":
            continue
        entry = allow.permits_address(address)
        if entry is None:
            return Decision(False, rule, str(address))
        permitted = entry
    if permitted is not None:
        return Decision(True, "allow-list", str(addresses[0]), permitted)
    return Decision(True, "public", str(addresses[0]))
