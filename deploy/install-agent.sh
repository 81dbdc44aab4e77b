#!/bin/sh
# Installs the headroom agent on this host: the binary, the systemd unit, an example configuration (kept if
# one exists) and a system user; enrolls the host with the collector when given the enrollment details; then
# enables the service. Run it as root. POSIX sh, so it works with dash, busybox and bash alike.
set -eu

PROGRAM=$(basename "$0")
SCRIPT_DIR=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
SERVICE_USER=headroom-agent
UNIT_NAME=headroom-agent.service

usage() {
    cat <<EOF
usage: $PROGRAM [options]

Installs headroom-agent, its systemd unit and /etc/headroom/agent.toml (an existing config is kept), creates
the system user $SERVICE_USER, and enables the service.

options:
  --binary PATH             agent binary to install (default: headroom-agent next to this script, or
                            target/release/headroom-agent in the source tree)
  --unit PATH               unit file to install (default: headroom-agent.service next to this script, or
                            systemd/headroom-agent.service in the source tree)
  --example-config PATH     example configuration (default: agent.toml next to this script)
  --collector HOST:PORT     the collector's streaming address (UDP, 9600 by default): enroll with this
                            collector (needs --token and --ca-fingerprint too); also written into a newly
                            installed config
  --enroll-port PORT        the collector's enrollment port (UDP, its enroll_listen; default 9602)
  --token TOKEN             one-time enrollment token from 'headroom-collector token create'
  --ca-fingerprint SHA256   SHA-256 fingerprint of the collector's CA certificate
  --root DIR                install below DIR instead of / (for packaging); skips the user, ownership and
                            systemctl steps
  --no-start                install and enroll, but do not touch systemctl
  -h, --help                show this text

examples:
  $PROGRAM
  $PROGRAM --collector collector.example.net:9600 --token 3f9c... --ca-fingerprint 5e:1a:...
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

binary=''
unit=''
example_config=''
collector=''
token=''
ca_fingerprint=''
enroll_port=9602
root=/
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
        --binary | --unit | --example-config | --collector | --enroll-port | --token | --ca-fingerprint | --root) ;;
        *) usage_error "unknown option '$option'" ;;
    esac
    [ $# -ge 2 ] || usage_error "$option needs a value"
    value=$2
    shift 2
    case $option in
        --binary) binary=$value ;;
        --unit) unit=$value ;;
        --example-config) example_config=$value ;;
        --collector) collector=$value ;;
        --enroll-port) enroll_port=$value ;;
        --token) token=$value ;;
        --ca-fingerprint) ca_fingerprint=$value ;;
        --root) root=$value ;;
    esac
done

# Enrollment is all or nothing: a partial set is almost always a typo in a fleet-wide rollout command.
enroll=no
if [ -n "$collector$token$ca_fingerprint" ]; then
    [ -n "$collector" ] || usage_error "--token and --ca-fingerprint need --collector HOST:PORT"
    [ -n "$token" ] || usage_error "--collector needs --token TOKEN (from 'headroom-collector token create')"
    [ -n "$ca_fingerprint" ] || usage_error "--collector needs --ca-fingerprint SHA256 of the collector's CA"
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

[ -n "$binary" ] || binary=$(first_existing "$SCRIPT_DIR/headroom-agent" \
    "$SCRIPT_DIR/../target/release/headroom-agent")
[ -n "$unit" ] || unit=$(first_existing "$SCRIPT_DIR/$UNIT_NAME" "$SCRIPT_DIR/../systemd/$UNIT_NAME")
[ -n "$example_config" ] || example_config=$(first_existing "$SCRIPT_DIR/agent.toml")
[ -n "$binary" ] && [ -f "$binary" ] || fail "agent binary not found (build it with 'cargo build --release' or pass --binary PATH)"
[ -n "$unit" ] && [ -f "$unit" ] || fail "unit file not found (pass --unit PATH to $UNIT_NAME)"
[ -n "$example_config" ] && [ -f "$example_config" ] || fail "example config not found (pass --example-config PATH to agent.toml)"

root=${root%/}
on_host=no
if [ -z "$root" ]; then
    on_host=yes
    [ "$(id -u)" -eq 0 ] || fail "installing into / needs root (run it with sudo, or pass --root DIR)"
fi

bin_path=$root/usr/bin/headroom-agent
unit_path=$root/etc/systemd/system/$UNIT_NAME
config_path=$root/etc/headroom/agent.toml

echo "installing $binary -> $bin_path"
install -d -m 0755 "$root/usr/bin" "$root/etc/systemd/system" "$root/etc/headroom"
install -m 0755 "$binary" "$bin_path.new"
mv -f "$bin_path.new" "$bin_path"
echo "installing $unit -> $unit_path"
install -m 0644 "$unit" "$unit_path"

if [ -e "$config_path" ]; then
    echo "keeping existing $config_path"
    if [ "$enroll" = yes ] && ! grep -q '^\[collector\]' "$config_path"; then
        echo "note: $config_path has no [collector] section; add one with address = \"$collector\"" >&2
    fi
else
    echo "installing example config -> $config_path"
    if [ "$enroll" = yes ]; then
        # Turn the commented-out collector lines of the example into live ones naming this collector. The
        # address was checked above to hold no character that is special to sed.
        sed -e 's/^#\[collector\]$/[collector]/' \
            -e "s/^#address = .*/address = \"$collector\"/" \
            "$example_config" >"$config_path.new"
        grep -qxF "address = \"$collector\"" "$config_path.new" ||
            fail "could not write the collector into $config_path (the example has no '#address =' line)"
    else
        cp "$example_config" "$config_path.new"
    fi
    chmod 0644 "$config_path.new"
    mv -f "$config_path.new" "$config_path"
fi

if [ "$on_host" = yes ] && ! id "$SERVICE_USER" >/dev/null 2>&1; then
    echo "creating system user $SERVICE_USER"
    nologin=/usr/sbin/nologin
    [ -x "$nologin" ] || nologin=/sbin/nologin
    command -v useradd >/dev/null 2>&1 ||
        fail "useradd is missing, so user $SERVICE_USER cannot be created (create it, then rerun)"
    useradd --system --user-group --no-create-home --home-dir /var/lib/headroom-agent \
        --shell "$nologin" "$SERVICE_USER"
fi

# The binary is checked before anything is run, so that an old build fails with a message instead of a usage
# screen from the argument parser.
if "$bin_path" check-config --help >/dev/null 2>&1; then
    "$bin_path" check-config --config "$config_path" ||
        fail "$config_path is not valid (the line above says what to fix), then rerun"
fi

if [ "$enroll" = yes ]; then
    "$bin_path" enroll --help >/dev/null 2>&1 ||
        fail "$bin_path has no 'enroll' command (install a newer build, or rerun without --collector/--token/--ca-fingerprint and enroll later)"
    echo "enrolling with $enroll_address"
    "$bin_path" enroll --config "$config_path" --collector "$enroll_address" --token "$token" \
        --ca-fingerprint "$ca_fingerprint" || fail "enrollment with $enroll_address failed (see the message above)"
    if [ "$on_host" = yes ]; then
        # Enrollment ran as root; the service reads its key and certificate as $SERVICE_USER. -H follows the
        # symlink systemd leaves at /var/lib/headroom-agent once the service has run.
        state_dir=/var/lib/headroom-agent
        if [ -d "$state_dir" ]; then
            chown -R -H "$SERVICE_USER:$SERVICE_USER" "$state_dir/"
        fi
    fi
fi

if [ "$on_host" = yes ] && [ "$start" = yes ]; then
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        systemctl daemon-reload
        systemctl enable "$UNIT_NAME"
        if [ "$enroll" = yes ]; then
            systemctl restart "$UNIT_NAME"
            echo "started $UNIT_NAME; follow it with: journalctl -u $UNIT_NAME -f"
        else
            # An upgrade restarts a running agent on the new binary; a fresh install waits for enrollment.
            systemctl try-restart "$UNIT_NAME"
            systemctl is-active --quiet "$UNIT_NAME" ||
                echo "next: enroll this host (rerun with --collector, --token and --ca-fingerprint), then: systemctl start $UNIT_NAME"
        fi
    else
        echo "systemd is not running here; start the agent with: $bin_path run --config $config_path"
    fi
fi
echo "done"
