"""The default policy pack: PostgreSQL JSONPath conditions over the parsed data of watched files.

A policy matches a file when ``jsonb_path_query_array(parsed, jsonpath, '{}', true)`` is not
empty; the values it returns are shown as the matching values, so each rule returns what
identifies the offender: compose service names, nginx server names (or, for a snippet of
``location`` blocks, the location), systemd unit names. Paths are evaluated in lax mode.

What the parsers give these rules (``services/watcher/configtypes``): nginx servers and locations
carry the ``add_header``/``proxy_set_header`` names, ``ssl_certificate`` and ``autoindex`` in effect
as far as the file itself shows; compose services ``port_bindings`` and
``environment_literal_secrets``; units their ``sections``. Included nginx files are not read, so
rules that depend on them treat an include whose path names its purpose as providing it.
"""

from __future__ import annotations

import msgspec


class PolicySpec(msgspec.Struct, frozen=True, kw_only=True):
    """One policy of the pack."""

    name: str  # subject token, e.g. "compose-privileged"
    config_type: str  # "docker_compose" | "proxy_configs" | "systemd_units"
    jsonpath: str  # a non-empty result is a violation; the results are the matching values
    severity: str  # one of shared.policy_events.SEVERITIES
    message: str  # one line: what is wrong and what to do
    description: str  # why it matters


def _services(condition: str) -> str:
    """Compose service names whose definition (``@.value``) meets ``condition``."""
    return f"$.services.keyvalue() ? ({condition}).key"


def _nginx(server: str, location: str | None = None) -> str:
    """nginx server names meeting ``server``; with ``location``, also the top-level locations (of a
    snippet of ``location`` blocks) meeting it. ``@.value`` is the server or the location."""
    if location is None:
        return f"$.servers.keyvalue() ? ({server}).key"
    return ('$.keyvalue() ? (@.key == "servers" || @.key == "locations").value.keyvalue() '
            f"? ((exists(@.value.server_names) && ({server})) || (!exists(@.value.server_names) && ({location}))).key")


def _service_unit(condition: str) -> str:
    """The unit name of a ``.service`` unit (not a drop-in) that starts a process and meets ``condition``."""
    return f'$ ? (@.unit_type == "service" && exists(@.exec_start[*]) && {condition}).unit'


# nginx: a proxied location with no Host header in effect and no include that may set it
_NO_HOST = '@.proxy_pass != null && !(@.proxy_set_header[*] == "host") && !(@.includes[*] like_regex "proxy" flag "i")'
_TRUE = '"^(yes|true|on|1)$"'
_DB_PORTS = "^(1433|1521|3306|5432|5984|6379|7474|8086|9042|9200|9300|11211|27017)$"

PACK: tuple[PolicySpec, ...] = (
    PolicySpec(
        name="compose-privileged", config_type="docker_compose", severity="high",
        jsonpath=_services("@.value.privileged == true"),
        message="Service runs privileged: drop 'privileged: true' and grant only the capabilities or devices it needs.",
        description="A privileged container has every capability and all host devices; escaping it to the host is trivial.",
    ),
    PolicySpec(
        name="compose-docker-socket", config_type="docker_compose", severity="critical",
        jsonpath=_services(r'@.value.volumes[*] like_regex "(^|/)docker\\.sock(:|$)"'),
        message="Service mounts the Docker socket: remove the mount or put a filtering socket proxy in front of it.",
        description="Whoever reaches the Docker socket, even read-only, can start a privileged container: it is root on the host.",
    ),
    PolicySpec(
        name="compose-host-network", config_type="docker_compose", severity="medium",
        jsonpath=_services('@.value.network_mode == "host"'),
        message="Service uses the host network: publish the ports it needs instead of 'network_mode: host'.",
        description="On the host network a container binds the host's interfaces directly and bypasses Docker's port "
                    "publishing and network isolation.",
    ),
    PolicySpec(
        name="compose-unpinned-image", config_type="docker_compose", severity="low",
        jsonpath=_services(
            '@.value.build == null && (@.value.image like_regex ":latest$" '
            '|| (@.value.image like_regex "(^|/)[^/:$]+$" && !(@.value.image like_regex "@")))'),
        message="Image is ':latest' or untagged: pin a version tag (or a digest).",
        description="An unpinned image changes under you on the next pull: upgrades happen unreviewed and cannot be "
                    "rolled back to a known version. Services built locally are not checked; a ${VAR} tag counts as a tag.",
    ),
    PolicySpec(
        name="compose-database-port-public", config_type="docker_compose", severity="high",
        jsonpath=_services(
            f'exists(@.value.port_bindings[*] ? (@.container_port like_regex "{_DB_PORTS}" '
            '&& (@.host_ip == null || @.host_ip == "0.0.0.0" || @.host_ip == "::")))'),
        message="A database port is published on all interfaces: bind it to 127.0.0.1 or drop it and use the compose network.",
        description="Docker's published ports bypass the host firewall (ufw, firewalld), so a database published without a "
                    "host IP is reachable from every network the host is on. Ports checked: MSSQL, Oracle, MySQL, "
                    "PostgreSQL, CouchDB, Redis, Neo4j, InfluxDB, Cassandra, Elasticsearch, memcached, MongoDB.",
    ),
    PolicySpec(
        name="compose-plaintext-secret", config_type="docker_compose", severity="medium",
        jsonpath=_services("exists(@.value.environment_literal_secrets[*])"),
        message="A password, token or key is written in the compose file: move it to an env_file, "
                "a ${VARIABLE} or a Docker secret (*_FILE).",
        description="Compose files are copied, committed and shared; a secret written in one leaks with it and "
                    "shows in 'docker inspect'. Only the names of such variables are kept, never their values.",
    ),
    PolicySpec(
        name="nginx-tls-without-certificate", config_type="proxy_configs", severity="high",
        jsonpath=_nginx(
            r'(@.value.listen[*] like_regex "(^|[\\s:])443(\\s|$)" || @.value.listen[*] like_regex "(^|\\s)ssl(\\s|$)") '
            '&& @.value.ssl_certificate == false && !(@.value.includes[*] like_regex "ssl|tls|cert|snakeoil" flag "i")',
        ),
        message="Server listens for TLS but no certificate is configured: add ssl_certificate/ssl_certificate_key "
                "or include the TLS snippet.",
        description="Without a certificate nginx refuses to load the configuration or fails every TLS handshake. "
                    "Included files are not read: an include whose path names ssl, tls, cert or snakeoil counts as "
                    "providing the certificate.",
    ),
    PolicySpec(
        name="nginx-autoindex", config_type="proxy_configs", severity="medium",
        jsonpath=_nginx("@.value.autoindex == true", "@.value.autoindex == true"),
        message="Directory listing is on (autoindex on): turn it off unless the listing is meant to be public.",
        description="autoindex lists every file of a directory, including backups, dumps and configuration left "
                    "beside the content.",
    ),
    PolicySpec(
        name="nginx-proxy-without-host", config_type="proxy_configs", severity="low",
        jsonpath=_nginx(f'exists(@.value.locations.* ? ({_NO_HOST})) && !(@.value.includes[*] like_regex "proxy" flag "i")',
                        _NO_HOST.replace("@.", "@.value.")),
        message="A proxied location sends the upstream's own name as Host: add 'proxy_set_header Host $host;' "
                "(or include proxy_params).",
        description="Without it the application sees its internal address instead of the public name, and builds "
                    "wrong redirects and links. proxy_set_header is inherited only by blocks that set none; an "
                    "include whose path names 'proxy' counts as setting Host.",
    ),
    PolicySpec(
        name="nginx-tls-without-hsts", config_type="proxy_configs", severity="low",
        jsonpath=_nginx('@.value.ssl == true && !(@.value.add_header[*] == "strict-transport-security")'),
        message="TLS server without a Strict-Transport-Security header: add "
                "'add_header Strict-Transport-Security \"max-age=31536000\" always;'.",
        description="Without HSTS a browser's first plain-HTTP request can be intercepted and downgraded. Only "
                    "add_header in the file itself counts: included files are not read.",
    ),
    PolicySpec(
        name="systemd-root-unhardened", config_type="systemd_units", severity="low",
        jsonpath=_service_unit(
            '(@.user == null || @.user == "root" || @.user == "0") '
            f"&& !(@.sections.Service.DynamicUser[last] like_regex {_TRUE} flag \"i\") "
            f"&& !(@.sections.Service.NoNewPrivileges[last] like_regex {_TRUE} flag \"i\") "
            '&& !(@.sections.Service.ProtectSystem[last] like_regex "^(yes|true|on|1|full|strict)$" flag "i")'),
        message="Service runs as root with no sandboxing: set User= (or DynamicUser=yes), or at least "
                "NoNewPrivileges=yes and ProtectSystem=strict.",
        description="A compromised root service owns the host; NoNewPrivileges and ProtectSystem limit what it can "
                    "do. Drop-ins are separate files and are not checked.",
    ),
    PolicySpec(
        name="systemd-no-restart", config_type="systemd_units", severity="info",
        jsonpath=_service_unit('(exists(@.wanted_by[*]) || exists(@.required_by[*])) '
                               '&& !(@.service_type == "oneshot") && !exists(@.sections.Service.Restart[*])'),
        message="Long-running service without Restart=: add Restart=on-failure so that a crash does not leave it down.",
        description="systemd does not restart a service that exits unless Restart= says so; a crash leaves it down "
                    "until someone notices. Checked: enabled units ([Install] WantedBy/RequiredBy) that are not "
                    "Type=oneshot; units started on demand (by D-Bus, a socket or a timer) are left out.",
    ),
)
