#!/bin/sh
# Installs the headroom agent on this host: the .deb package where dpkg exists (it brings the binary, the
# unit, the example configuration and the man page), else the binary, the systemd unit, an example
# configuration (kept if one exists) and a system user; each after checking its SHA-256. Enrolls the host
# with the collector when given the enrollment details, then enables the service. The enrollment token is
# read from a file or the environment, never from the command line (where ps shows it). Running it again
# with the same inputs changes nothing and says so. Run it as root. POSIX sh: dash, busybox and bash alike.
set -eu

PROGRAM=$(basename "$0")
SCRIPT_DIR=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
SERVICE_USER=headroom-agent
UNIT_NAME=headroom-agent.service
PACKAGE_NAME=headroom-agent

usage() {
    cat <<EOF
usage: $PROGRAM [options]

Installs headroom-agent: the .deb package when dpkg exists (headroom-agent_*.deb next to this script, or
--package), else the binary, its systemd unit, /etc/headroom/agent.toml (an existing config is kept) and the
system user $SERVICE_USER. Checks the SHA-256 of what it installs, enrolls the host when given --collector,
and enables the service. A second run with the same inputs changes nothing.

options:
  --package PATH            .deb to install with dpkg (default: headroom-agent_*.deb next to this script,
                            when dpkg exists and neither --binary nor --root is given)
  --binary PATH             agent binary to install without dpkg (default: headroom-agent next to this
                            script, or target/release/headroom-agent in the source tree)
  --sha256 HEX              expected SHA-256 of the package or binary (default: its line in SHA256SUMS
                            next to it); a mismatch, or no checksum at all, stops the install
  --unit PATH               unit file to install with a binary (default: headroom-agent.service next to
                            this script, or systemd/headroom-agent.service in the source tree)
  --example-config PATH     example configuration with a binary (default: agent.toml next to this script)
  --collector HOST:PORT     the collector's streaming address (UDP, 9600 by default): enroll with this
                            collector (needs a token and --ca-fingerprint too); also written into a config
                            that has no [collector] section yet
  --enroll-port PORT        the collector's enrollment port (UDP, its enroll_listen; default 9602)
  --token-file FILE         file holding the one-time enrollment token from 'headroom-collector token
                            create'; without it the token is read from the HEADROOM_TOKEN environment
                            variable. Never on the command line, where ps shows it.
  --ca-fingerprint SHA256   SHA-256 fingerprint of the collector's CA certificate
  --root DIR                install the binary below DIR instead of / (for packaging); skips dpkg, the
                            user, ownership and systemctl steps
  --no-start                install and enroll, but do not touch systemctl
  -h, --help                show this text

examples:
  $PROGRAM
  $PROGRAM --collector collector.example.net:9600 --token-file /root/headroom-token --ca-fingerprint 5e:1a:...
  HEADROOM_TOKEN=3f9c... $PROGRAM --collector collector.example.net:9600 --ca-fingerprint 5e:1a:...
EOF
}

fail() {
    echo "$PROGRAM: $*" >&2
    exit 1
}

usage_error() {
    echo "$PROGRAM: $*" >&2
    echo "run '$PROGRAM --help' for usage" >&2
    exit 2
}

# Prints the first of its arguments that is an existing file, or nothing.
first_existing() {
    for candidate in "$@"; do
        if [ -f "$candidate" ]; then
            printf '%s\n' "$candidate"
            return 0
        fi
    done
}

# Prints the SHA-256 of a file as lowercase hex.
sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    elif command -v shasum >/dev/null 2>&1; then
        shasum -a 256 "$1" | cut -d' ' -f1
    else
        fail "neither sha256sum nor shasum is installed, so $1 cannot be checked"
    fi
}

# Checks a file against --sha256, else against its line in SHA256SUMS beside it; refuses on a mismatch and
# when there is no checksum to compare with.
verify_checksum() {
    file=$1
    expected=$sha256
    sums=$(dirname -- "$file")/SHA256SUMS
    if [ -z "$expected" ] && [ -f "$sums" ]; then
        expected=$(awk -v name="$(basename -- "$file")" \
            '{ n = $2; sub(/^\*/, "", n) } n == name { print $1; exit }' "$sums")
    fi
    [ -n "$expected" ] ||
        fail "no checksum for $file: pass --sha256 HEX, or put its line in $sums (sha256sum FILE >>SHA256SUMS)"
    actual=$(sha256_of "$file")
    expected=$(printf '%s' "$expected" | tr 'A-F' 'a-f')
    [ "$actual" = "$expected" ] ||
        fail "$file has SHA-256 $actual, expected $expected: refusing to install it (fetch it again)"
    echo "checked $file: SHA-256 $actual"
}

changed=no
# Says what this run changed on the host, and remembers that it changed something.
did() {
    changed=yes
    echo "$*"
}

binary=''
package=''
sha256=''
unit=''
example_config=''
collector=''
token_file=''
ca_fingerprint=''
enroll_port=9602
root=/
root_given=no
start=yes

while [ $# -gt 0 ]; do
    option=$1
    case $option in
        -h | --help)
            usage
            exit 0
            ;;
        --no-start)
            start=no
            shift
            continue
            ;;
        --token | --token=*)
            usage_error "--token is not accepted: a command line shows in ps; use --token-file FILE or HEADROOM_TOKEN"
            ;;
        --binary | --package | --sha256 | --unit | --example-config | --collector | --enroll-port | \
            --token-file | --ca-fingerprint | --root) ;;
        *) usage_error "unknown option '$option'" ;;
    esac
    [ $# -ge 2 ] || usage_error "$option needs a value"
    value=$2
    shift 2
    case $option in
        --binary) binary=$value ;;
        --package) package=$value ;;
        --sha256) sha256=$value ;;
        --unit) unit=$value ;;
        --example-config) example_config=$value ;;
        --collector) collector=$value ;;
        --enroll-port) enroll_port=$value ;;
        --token-file) token_file=$value ;;
        --ca-fingerprint) ca_fingerprint=$value ;;
        --root)
            root=$value
            root_given=yes
            ;;
    esac
done

[ -z "$binary" ] || [ -z "$package" ] || usage_error "give --binary or --package, not both"
[ -z "$package" ] || [ "$root_given" = no ] || usage_error "--package installs into / with dpkg: leave out --root"
case $sha256 in
    '') ;;
    *[!0-9A-Fa-f]*) usage_error "--sha256 '$sha256' is not hex (64 characters, as sha256sum prints them)" ;;
    *) [ ${#sha256} -eq 64 ] || usage_error "--sha256 '$sha256' is not 64 hex characters long" ;;
esac

# Enrollment is all or nothing: a partial set is almost always a typo in a fleet-wide rollout command.
enroll=no
if [ -n "$collector$ca_fingerprint$token_file" ]; then
    [ -n "$collector" ] || usage_error "--token-file and --ca-fingerprint need --collector HOST:PORT"
    [ -n "$token_file" ] || [ -n "${HEADROOM_TOKEN:-}" ] ||
        usage_error "--collector needs a token: --token-file FILE or HEADROOM_TOKEN (from 'headroom-collector token create')"
    [ -n "$ca_fingerprint" ] || usage_error "--collector needs --ca-fingerprint SHA256 of the collector's CA"
    [ -z "$token_file" ] || [ -r "$token_file" ] || usage_error "--token-file '$token_file' cannot be read"
    # The agent validates the address fully; this keeps out what would break the config file or sed below.
    collector_host=${collector%:*}
    collector_port=${collector##*:}
    case $collector in
        *:*) ;;
        *) usage_error "--collector '$collector' has no port (write it like collector.example.net:9600)" ;;
    esac
    case $collector in
        *[!]A-Za-z0-9._:[-]*)
            usage_error "--collector '$collector' has characters a host:port cannot hold" ;;
    esac
    case $collector_port in
        '' | *[!0-9]*) usage_error "--collector '$collector' needs a numeric port (like collector.example.net:9600)" ;;
    esac
    case $collector_host in
        '') usage_error "--collector '$collector' has no host (write it like collector.example.net:9600)" ;;
        \[*\]) ;;
        *:*) usage_error "--collector '$collector': put an IPv6 address in brackets, like [2001:db8::1]:9600" ;;
    esac
    case $enroll_port in
        '' | *[!0-9]*) usage_error "--enroll-port '$enroll_port' is not a port number (the collector's enroll_listen, 9602 by default)" ;;
    esac
    # Enrollment has its own listener on the collector; streaming and renewal use --collector's port.
    enroll_address=$collector_host:$enroll_port
    enroll=yes
fi

# The package where dpkg can install it, the binary elsewhere (or when one is named).
method=binary
if [ -n "$package" ]; then
    method=deb
elif [ -z "$binary" ] && [ "$root_given" = no ] && command -v dpkg >/dev/null 2>&1; then
    # The last by name next to this script when there are several.
    package=$(find "$SCRIPT_DIR" -maxdepth 1 -name "${PACKAGE_NAME}_*.deb" 2>/dev/null | sort | tail -n 1)
    [ -z "$package" ] || method=deb
fi

root=${root%/}
on_host=no
if [ -z "$root" ]; then
    on_host=yes
    [ "$(id -u)" -eq 0 ] || fail "installing into / needs root (run it with sudo, or pass --root DIR)"
fi
bin_path=$root/usr/bin/headroom-agent
unit_path=$root/etc/systemd/system/$UNIT_NAME
config_path=$root/etc/headroom/agent.toml

if [ "$method" = deb ]; then
    [ -f "$package" ] || fail "package $package not found"
    command -v dpkg >/dev/null 2>&1 || fail "dpkg is missing: install the binary instead with --binary PATH"
    verify_checksum "$package"
    version=$(dpkg-deb --field "$package" Version) || fail "$package is not a Debian package"
    installed=$(dpkg-query --show --showformat '${db:Status-Status} ${Version}' "$PACKAGE_NAME" 2>/dev/null || true)
    if [ "$installed" = "installed $version" ]; then
        echo "$PACKAGE_NAME $version is already installed"
    else
        echo "installing $package"
        dpkg --install "$package" || fail "dpkg could not install $package (see its message above)"
        did "installed $PACKAGE_NAME $version"
    fi
else
    [ -n "$binary" ] || binary=$(first_existing "$SCRIPT_DIR/headroom-agent" \
        "$SCRIPT_DIR/../target/release/headroom-agent")
    [ -n "$unit" ] || unit=$(first_existing "$SCRIPT_DIR/$UNIT_NAME" "$SCRIPT_DIR/../systemd/$UNIT_NAME")
    [ -n "$example_config" ] || example_config=$(first_existing "$SCRIPT_DIR/agent.toml")
    [ -n "$binary" ] && [ -f "$binary" ] || fail "agent binary not found (build it with 'cargo build --release' or pass --binary PATH)"
    [ -n "$unit" ] && [ -f "$unit" ] || fail "unit file not found (pass --unit PATH to $UNIT_NAME)"
    [ -n "$example_config" ] && [ -f "$example_config" ] || fail "example config not found (pass --example-config PATH to agent.toml)"
    verify_checksum "$binary"

    install -d -m 0755 "$root/usr/bin" "$root/etc/systemd/system" "$root/etc/headroom"
    if [ -f "$bin_path" ] && [ "$(sha256_of "$bin_path")" = "$(sha256_of "$binary")" ]; then
        echo "$bin_path is already this binary"
    else
        install -m 0755 "$binary" "$bin_path.new"
        mv -f "$bin_path.new" "$bin_path"
        did "installed $binary -> $bin_path"
    fi
    if [ -f "$unit_path" ] && cmp -s "$unit" "$unit_path"; then
        echo "$unit_path is already this unit"
    else
        install -m 0644 "$unit" "$unit_path"
        did "installed $unit -> $unit_path"
        unit_changed=yes
    fi
    if [ -e "$config_path" ]; then
        echo "keeping existing $config_path"
    else
        cp "$example_config" "$config_path.new"
        chmod 0644 "$config_path.new"
        mv -f "$config_path.new" "$config_path"
        did "installed example config -> $config_path"
    fi
    if [ "$on_host" = yes ] && ! id "$SERVICE_USER" >/dev/null 2>&1; then
        nologin=/usr/sbin/nologin
        [ -x "$nologin" ] || nologin=/sbin/nologin
        command -v useradd >/dev/null 2>&1 ||
            fail "useradd is missing, so user $SERVICE_USER cannot be created (create it, then rerun)"
        useradd --system --user-group --no-create-home --home-dir /var/lib/headroom-agent \
            --shell "$nologin" "$SERVICE_USER"
        did "created system user $SERVICE_USER"
    fi
fi

# A config without a [collector] section gets the collector named here, by switching on the commented-out
# lines of the example (the address was checked above to hold no character that is special to sed).
if [ "$enroll" = yes ] && ! grep -q '^\[collector\]' "$config_path"; then
    if grep -q '^#\[collector\]$' "$config_path" && grep -q '^#address = ' "$config_path"; then
        sed -e 's/^#\[collector\]$/[collector]/' \
            -e "s/^#address = .*/address = \"$collector\"/" \
            "$config_path" >"$config_path.new"
        chmod 0644 "$config_path.new"
        mv -f "$config_path.new" "$config_path"
        did "set [collector] address = \"$collector\" in $config_path"
    else
        echo "note: $config_path has no [collector] section; add one with address = \"$collector\"" >&2
    fi
fi

# The binary is checked before anything is run, so that an old build fails with a message instead of a usage
# screen from the argument parser.
if "$bin_path" check-config --help >/dev/null 2>&1; then
    "$bin_path" check-config --config "$config_path" >/dev/null ||
        fail "$config_path is not valid (the line above says what to fix), then rerun"
fi

# The certificate enrollment writes: a host that holds one is not enrolled again (the token is one-time).
state_dir=$root/var/lib/headroom-agent
if [ "$enroll" = yes ] && [ -f "$state_dir/agent.pem" ]; then
    echo "already enrolled ($state_dir/agent.pem exists); not enrolling again"
elif [ "$enroll" = yes ]; then
    "$bin_path" enroll --help 2>/dev/null | grep -q -- '--token-file' ||
        fail "$bin_path cannot read a token from a file (install a newer build, or rerun without --collector and enroll later)"
    echo "enrolling with $enroll_address"
    # The token travels in a file or in the environment the agent inherits, never as an argument.
    if [ -n "$token_file" ]; then
        set -- --token-file "$token_file"
    else
        set --
    fi
    "$bin_path" enroll --config "$config_path" --collector "$enroll_address" \
        --ca-fingerprint "$ca_fingerprint" "$@" || fail "enrollment with $enroll_address failed (see the message above)"
    did "enrolled with $enroll_address"
    if [ "$on_host" = yes ] && [ -d "$state_dir" ] && id "$SERVICE_USER" >/dev/null 2>&1; then
        # Enrollment ran as root; the service reads its key and certificate as $SERVICE_USER. -H follows the
        # symlink systemd leaves at /var/lib/headroom-agent once the service has run.
        chown -R -H "$SERVICE_USER:$SERVICE_USER" "$state_dir/"
    fi
fi

if [ "$on_host" = yes ] && [ "$start" = yes ]; then
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        [ "${unit_changed:-no}" = no ] || systemctl daemon-reload
        if ! systemctl is-enabled --quiet "$UNIT_NAME" 2>/dev/null; then
            systemctl enable --quiet "$UNIT_NAME"
            did "enabled $UNIT_NAME"
        fi
        if [ -f "$state_dir/agent.pem" ]; then
            if [ "$changed" = yes ] || ! systemctl is-active --quiet "$UNIT_NAME"; then
                systemctl restart "$UNIT_NAME"
                did "started $UNIT_NAME; follow it with: journalctl -u $UNIT_NAME -f"
            fi
        else
            echo "next: enroll this host (rerun with --collector, --token-file and --ca-fingerprint), then: systemctl start $UNIT_NAME"
        fi
    else
        echo "systemd is not running here; start the agent with: $bin_path run --config $config_path"
    fi
fi

if [ "$changed" = yes ]; then
    echo "done"
else
    echo "nothing to do: headroom-agent is already installed as asked"
fi
