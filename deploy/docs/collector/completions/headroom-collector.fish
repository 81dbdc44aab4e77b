# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_headroom_collector_global_optspecs
    string join \n h/help V/version
end

function __fish_headroom_collector_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_headroom_collector_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_headroom_collector_using_subcommand
    set -l cmd (__fish_headroom_collector_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c headroom-collector -n "__fish_headroom_collector_needs_command" -s h -l help -d 'Print help'
complete -c headroom-collector -n "__fish_headroom_collector_needs_command" -s V -l version -d 'Print version'
complete -c headroom-collector -n "__fish_headroom_collector_needs_command" -f -a "serve" -d 'Run the service (systemd runs this)'
complete -c headroom-collector -n "__fish_headroom_collector_needs_command" -f -a "demo" -d 'Quickstart: throwaway PKI and state, a collector, a real local agent and simulated hosts'
complete -c headroom-collector -n "__fish_headroom_collector_needs_command" -f -a "ca" -d 'Certificate authority'
complete -c headroom-collector -n "__fish_headroom_collector_needs_command" -f -a "cert" -d 'Agent certificates'
complete -c headroom-collector -n "__fish_headroom_collector_needs_command" -f -a "token" -d 'One-time enrollment tokens'
complete -c headroom-collector -n "__fish_headroom_collector_needs_command" -f -a "signer" -d 'The CA key\'s only reader: signs agent certificates for `serve`. Started by `serve` as a child on its stdin/stdout, or with --socket by its own unit (then set identity.signer_socket)'
complete -c headroom-collector -n "__fish_headroom_collector_needs_command" -f -a "check-config" -d 'Check a config file and print the effective configuration (defaults filled in, paths resolved)'
complete -c headroom-collector -n "__fish_headroom_collector_needs_command" -f -a "fleet" -d 'Fleet summary per group and zone, from a running collector; with --by or --window, percentiles across hosts of each host\'s mean over the window, grouped by any labels'
complete -c headroom-collector -n "__fish_headroom_collector_needs_command" -f -a "outliers" -d 'Hosts flagged as outliers among their peers, each explained'
complete -c headroom-collector -n "__fish_headroom_collector_needs_command" -f -a "alarms" -d 'Pending and firing alarms with their runbooks'
complete -c headroom-collector -n "__fish_headroom_collector_needs_command" -f -a "hosts" -d 'One row per host, from a running collector'
complete -c headroom-collector -n "__fish_headroom_collector_needs_command" -f -a "sizing" -d 'Failover sizing per service group, read from the database file (no collector needs to run)'
complete -c headroom-collector -n "__fish_headroom_collector_needs_command" -f -a "report" -d 'Write a sizing and capacity report to a file, read from the database file (a copy works)'
complete -c headroom-collector -n "__fish_headroom_collector_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand serve" -l config -r -F
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand serve" -s h -l help -d 'Print help'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand demo" -l simulated-hosts -d 'How many simulated hosts (named sim-…) to start' -r
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand demo" -l print-every -d 'Print the fleet summary this often' -r
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand demo" -l duration -d 'Stop by itself after this long instead of waiting for Ctrl-C' -r
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand demo" -s h -l help -d 'Print help'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand ca; and not __fish_seen_subcommand_from init help" -s h -l help -d 'Print help'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand ca; and not __fish_seen_subcommand_from init help" -f -a "init" -d 'Create the CA and the collector\'s server certificate in <state_dir>/pki'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand ca; and not __fish_seen_subcommand_from init help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand ca; and __fish_seen_subcommand_from init" -l config -d 'Collector config whose state_dir holds the PKI' -r -F
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand ca; and __fish_seen_subcommand_from init" -l state-dir -d 'State directory to use instead of the config\'s' -r -F
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand ca; and __fish_seen_subcommand_from init" -l server-name -d 'Names agents use to reach the collector (DNS names or IPs); repeat for several' -r
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand ca; and __fish_seen_subcommand_from init" -l force -d 'Replace an existing CA (every agent certificate must then be issued again)'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand ca; and __fish_seen_subcommand_from init" -s h -l help -d 'Print help'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand ca; and __fish_seen_subcommand_from help" -f -a "init" -d 'Create the CA and the collector\'s server certificate in <state_dir>/pki'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand ca; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand cert; and not __fish_seen_subcommand_from issue server list revoke help" -s h -l help -d 'Print help'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand cert; and not __fish_seen_subcommand_from issue server list revoke help" -f -a "issue" -d 'Issue a certificate for a host that cannot enroll; the private key then travels by hand'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand cert; and not __fish_seen_subcommand_from issue server list revoke help" -f -a "server" -d 'Replace the collector\'s own server certificate (same CA); a running collector picks it up within seconds, or at once on SIGHUP, and keeps its agent connections'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand cert; and not __fish_seen_subcommand_from issue server list revoke help" -f -a "list" -d 'List issued certificates: host, serial, labels, not-after, last seen'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand cert; and not __fish_seen_subcommand_from issue server list revoke help" -f -a "revoke" -d 'Revoke a host\'s certificates or one serial; a connected host is cut off within seconds'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand cert; and not __fish_seen_subcommand_from issue server list revoke help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand cert; and __fish_seen_subcommand_from issue" -l config -d 'Collector config whose state_dir holds the PKI' -r -F
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand cert; and __fish_seen_subcommand_from issue" -l state-dir -d 'State directory to use instead of the config\'s' -r -F
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand cert; and __fish_seen_subcommand_from issue" -l host -d 'The host\'s identity (lowercase DNS name)' -r
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand cert; and __fish_seen_subcommand_from issue" -l out -d 'Where to write agent.pem, agent.key and ca.pem (default: ./<host>)' -r -F
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand cert; and __fish_seen_subcommand_from issue" -l days -d 'Validity in days, 1 to 365 (the longest `identity.cert_validity` enrollment may use)' -r
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand cert; and __fish_seen_subcommand_from issue" -s h -l help -d 'Print help'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand cert; and __fish_seen_subcommand_from server" -l config -d 'Collector config whose state_dir holds the PKI' -r -F
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand cert; and __fish_seen_subcommand_from server" -l state-dir -d 'State directory to use instead of the config\'s' -r -F
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand cert; and __fish_seen_subcommand_from server" -l server-name -d 'Names agents use to reach the collector (DNS names or IPs); repeat for several' -r
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand cert; and __fish_seen_subcommand_from server" -l days -d 'Validity in days' -r
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand cert; and __fish_seen_subcommand_from server" -s h -l help -d 'Print help'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand cert; and __fish_seen_subcommand_from list" -l config -d 'Collector config whose state_dir holds the PKI' -r -F
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand cert; and __fish_seen_subcommand_from list" -l state-dir -d 'State directory to use instead of the config\'s' -r -F
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand cert; and __fish_seen_subcommand_from list" -l format -d 'table (human units), json (documented in docs/API.md, with schema_version) or csv (raw numbers)' -r -f -a "table\t''
json\t''
csv\t''"
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand cert; and __fish_seen_subcommand_from list" -l no-header -d 'Leave out the header row and summary lines of the table or CSV'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand cert; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand cert; and __fish_seen_subcommand_from revoke" -l config -d 'Collector config whose state_dir holds the PKI' -r -F
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand cert; and __fish_seen_subcommand_from revoke" -l state-dir -d 'State directory to use instead of the config\'s' -r -F
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand cert; and __fish_seen_subcommand_from revoke" -l host -d 'Revoke every unexpired certificate of this host' -r
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand cert; and __fish_seen_subcommand_from revoke" -l serial -d 'Revoke this serial (hex, as "cert list" shows it)' -r
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand cert; and __fish_seen_subcommand_from revoke" -s h -l help -d 'Print help'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand cert; and __fish_seen_subcommand_from help" -f -a "issue" -d 'Issue a certificate for a host that cannot enroll; the private key then travels by hand'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand cert; and __fish_seen_subcommand_from help" -f -a "server" -d 'Replace the collector\'s own server certificate (same CA); a running collector picks it up within seconds, or at once on SIGHUP, and keeps its agent connections'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand cert; and __fish_seen_subcommand_from help" -f -a "list" -d 'List issued certificates: host, serial, labels, not-after, last seen'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand cert; and __fish_seen_subcommand_from help" -f -a "revoke" -d 'Revoke a host\'s certificates or one serial; a connected host is cut off within seconds'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand cert; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand token; and not __fish_seen_subcommand_from create list help" -s h -l help -d 'Print help'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand token; and not __fish_seen_subcommand_from create list help" -f -a "create" -d 'Create a token and print it (shown only this once)'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand token; and not __fish_seen_subcommand_from create list help" -f -a "list" -d 'List tokens: id, uses left, expiry, labels (never the secret)'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand token; and not __fish_seen_subcommand_from create list help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand token; and __fish_seen_subcommand_from create" -l config -d 'Collector config whose state_dir holds the PKI' -r -F
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand token; and __fish_seen_subcommand_from create" -l state-dir -d 'State directory to use instead of the config\'s' -r -F
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand token; and __fish_seen_subcommand_from create" -l ttl -d 'How long the token stays valid' -r
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand token; and __fish_seen_subcommand_from create" -l uses -d 'How many hosts may enroll with it' -r
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand token; and __fish_seen_subcommand_from create" -l label -d 'Label written into every certificate enrolled with it, KEY=VALUE; repeat for several' -r
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand token; and __fish_seen_subcommand_from create" -l host -d 'Enroll only this host, even while it holds a valid certificate (a re-imaged host); its older certificates are revoked when it enrolls' -r
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand token; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand token; and __fish_seen_subcommand_from list" -l config -d 'Collector config whose state_dir holds the PKI' -r -F
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand token; and __fish_seen_subcommand_from list" -l state-dir -d 'State directory to use instead of the config\'s' -r -F
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand token; and __fish_seen_subcommand_from list" -l format -d 'table (human units), json (documented in docs/API.md, with schema_version) or csv (raw numbers)' -r -f -a "table\t''
json\t''
csv\t''"
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand token; and __fish_seen_subcommand_from list" -l no-header -d 'Leave out the header row and summary lines of the table or CSV'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand token; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "create" -d 'Create a token and print it (shown only this once)'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "list" -d 'List tokens: id, uses left, expiry, labels (never the secret)'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand token; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand signer" -l config -d 'Collector config whose state_dir holds the PKI' -r -F
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand signer" -l state-dir -d 'State directory to use instead of the config\'s' -r -F
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand signer" -l socket -d 'Listen on this Unix socket (made 0660) instead of stdin/stdout' -r -F
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand signer" -s h -l help -d 'Print help'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand check-config" -l config -r -F
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand check-config" -l format -d 'toml (reads back as the same configuration) or json' -r -f -a "toml\t'The file\'s own format; it parses back to the same configuration'
json\t'The same document as pretty JSON, for scripts'"
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand check-config" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand fleet" -l format -d 'table (human units), json (documented in docs/API.md, with schema_version) or csv (raw numbers)' -r -f -a "table\t''
json\t''
csv\t''"
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand fleet" -l api -d 'The collector\'s HTTP API: IP:port (plain HTTP) or an https:// URL (default: http_listen from the config, else 127.0.0.1:9601). `fleet` takes it several times and merges the collectors\' live views' -r
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand fleet" -l token-file -d 'File holding the API\'s bearer token (default: http.token_file from the config, when set)' -r -F
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand fleet" -l api-ca -d 'PEM CA certificates trusted for an https:// API besides the system\'s store (default: the config\'s tls.ca, the fleet CA, when the API is HTTPS)' -r -F
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand fleet" -l config -r -F
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand fleet" -l by -d 'Labels to group by, comma-separated, like group,zone (default group,zone with --window)' -r
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand fleet" -l window -d 'live, or a window like 5m, 1h, 1d, 7d, 30d (raw rows up to 1h, rollups beyond)' -r
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand fleet" -l stat -d 'Per-host statistic over the window: mean, p50, p90, p99, p99.9 or max, from the rollup sketches (default p99 beyond 1h, mean of raw rows up to 1h); adds a pooled row per group (every sample, merged sketches)' -r
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand fleet" -l end -d 'Where the window ends: an RFC 3339 time, or latest (the newest sample); default now' -r
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand fleet" -l no-header -d 'Leave out the header row and summary lines of the table or CSV'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand fleet" -s h -l help -d 'Print help'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand outliers" -l format -d 'table (human units), json (documented in docs/API.md, with schema_version) or csv (raw numbers)' -r -f -a "table\t''
json\t''
csv\t''"
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand outliers" -l api -d 'The collector\'s HTTP API: IP:port (plain HTTP) or an https:// URL (default: http_listen from the config, else 127.0.0.1:9601). `fleet` takes it several times and merges the collectors\' live views' -r
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand outliers" -l token-file -d 'File holding the API\'s bearer token (default: http.token_file from the config, when set)' -r -F
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand outliers" -l api-ca -d 'PEM CA certificates trusted for an https:// API besides the system\'s store (default: the config\'s tls.ca, the fleet CA, when the API is HTTPS)' -r -F
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand outliers" -l config -r -F
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand outliers" -l group -d 'Only this group' -r
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand outliers" -l no-header -d 'Leave out the header row and summary lines of the table or CSV'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand outliers" -s h -l help -d 'Print help'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand alarms" -l format -d 'table (human units), json (documented in docs/API.md, with schema_version) or csv (raw numbers)' -r -f -a "table\t''
json\t''
csv\t''"
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand alarms" -l api -d 'The collector\'s HTTP API: IP:port (plain HTTP) or an https:// URL (default: http_listen from the config, else 127.0.0.1:9601). `fleet` takes it several times and merges the collectors\' live views' -r
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand alarms" -l token-file -d 'File holding the API\'s bearer token (default: http.token_file from the config, when set)' -r -F
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand alarms" -l api-ca -d 'PEM CA certificates trusted for an https:// API besides the system\'s store (default: the config\'s tls.ca, the fleet CA, when the API is HTTPS)' -r -F
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand alarms" -l config -r -F
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand alarms" -l no-header -d 'Leave out the header row and summary lines of the table or CSV'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand alarms" -s h -l help -d 'Print help'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand hosts" -l format -d 'table (human units), json (documented in docs/API.md, with schema_version) or csv (raw numbers)' -r -f -a "table\t''
json\t''
csv\t''"
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand hosts" -l api -d 'The collector\'s HTTP API: IP:port (plain HTTP) or an https:// URL (default: http_listen from the config, else 127.0.0.1:9601). `fleet` takes it several times and merges the collectors\' live views' -r
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand hosts" -l token-file -d 'File holding the API\'s bearer token (default: http.token_file from the config, when set)' -r -F
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand hosts" -l api-ca -d 'PEM CA certificates trusted for an https:// API besides the system\'s store (default: the config\'s tls.ca, the fleet CA, when the API is HTTPS)' -r -F
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand hosts" -l config -r -F
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand hosts" -l no-header -d 'Leave out the header row and summary lines of the table or CSV'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand hosts" -s h -l help -d 'Print help'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand sizing" -l window -d 'Window ending now, like "14d" (default: sizing.window from the config)' -r
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand sizing" -l format -d 'table (human units), json (documented in docs/API.md, with schema_version) or csv (raw numbers)' -r -f -a "table\t''
json\t''
csv\t''"
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand sizing" -l db -d 'The database file, or a copy of it (default: <state_dir>/headroom.db from the config)' -r -F
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand sizing" -l source -d 'Read a Prometheus-compatible query API instead of a database, like prometheus=http://127.0.0.1:9090: the same per-minute group sums with PromQL from the series the collectors export (one report for a fleet spread over many collectors)' -r
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand sizing" -l config -d 'Collector config: its state_dir and [sizing] section (defaults apply when the file is absent)' -r -F
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand sizing" -l end -d 'Where the window ends: an RFC 3339 time, or latest (the newest sample in the database); default now' -r
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand sizing" -l growth -d 'Scenario: load grows by this much, like 20% (repeatable, one row each)' -r
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand sizing" -l target -d 'Scenario: another target, like cpu=70% (cpu, memory, connections; repeatable, one row each)' -r
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand sizing" -l lose -d 'Scenario: lose this zone, like zone=eu-1a (the only loss the row sizes; repeatable, one row each)' -r
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand sizing" -l lose-hosts -d 'Scenario: lose this many hosts at once (N+k, the only loss the row sizes; repeatable, one row each)' -r
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand sizing" -l add -d 'Scenario: add hosts to a group, like group=web,hosts=3, placed to keep zones balanced (repeatable, one row each)' -r
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand sizing" -l scenario -d 'One scenario combining several options, like "growth=20%,lose=zone=eu-1a,add=group=web,hosts=3" (OPTION=VALUE items as the options above; repeatable, one row each)' -r
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand sizing" -l no-header -d 'Leave out the header row and summary lines of the table or CSV'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand sizing" -s h -l help -d 'Print help'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand report" -l kind -d 'sizing, or review (the weekly operational review; html, md or json)' -r -f -a "sizing\t'Failover sizing and capacity per group'
review\t'The weekly operational review: alarms, time to resolve, noisy rules, outliers, gaps, headroom now and a window earlier, hosts added and removed'"
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand report" -l window -d 'Window ending now, like "30d" (default: sizing.window from the config; 7d for a review)' -r
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand report" -l format -d 'html, csv, json or md' -r
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand report" -l out -d 'The file to write' -r -F
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand report" -l db -d 'The database file, or a copy of it (default: <state_dir>/headroom.db from the config)' -r -F
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand report" -l source -d 'Read a Prometheus-compatible query API instead of a database, like prometheus=http://127.0.0.1:9090: the same per-minute group sums with PromQL from the series the collectors export (one report for a fleet spread over many collectors)' -r
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand report" -l config -d 'Collector config: its state_dir and [sizing] section (defaults apply when the file is absent)' -r -F
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand report" -l end -d 'Where the window ends: an RFC 3339 time, or latest (the newest sample in the database); default now' -r
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand report" -l growth -d 'Scenario: load grows by this much, like 20% (repeatable, one row each)' -r
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand report" -l target -d 'Scenario: another target, like cpu=70% (cpu, memory, connections; repeatable, one row each)' -r
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand report" -l lose -d 'Scenario: lose this zone, like zone=eu-1a (the only loss the row sizes; repeatable, one row each)' -r
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand report" -l lose-hosts -d 'Scenario: lose this many hosts at once (N+k, the only loss the row sizes; repeatable, one row each)' -r
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand report" -l add -d 'Scenario: add hosts to a group, like group=web,hosts=3, placed to keep zones balanced (repeatable, one row each)' -r
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand report" -l scenario -d 'One scenario combining several options, like "growth=20%,lose=zone=eu-1a,add=group=web,hosts=3" (OPTION=VALUE items as the options above; repeatable, one row each)' -r
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand report" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand help; and not __fish_seen_subcommand_from serve demo ca cert token signer check-config fleet outliers alarms hosts sizing report help" -f -a "serve" -d 'Run the service (systemd runs this)'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand help; and not __fish_seen_subcommand_from serve demo ca cert token signer check-config fleet outliers alarms hosts sizing report help" -f -a "demo" -d 'Quickstart: throwaway PKI and state, a collector, a real local agent and simulated hosts'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand help; and not __fish_seen_subcommand_from serve demo ca cert token signer check-config fleet outliers alarms hosts sizing report help" -f -a "ca" -d 'Certificate authority'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand help; and not __fish_seen_subcommand_from serve demo ca cert token signer check-config fleet outliers alarms hosts sizing report help" -f -a "cert" -d 'Agent certificates'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand help; and not __fish_seen_subcommand_from serve demo ca cert token signer check-config fleet outliers alarms hosts sizing report help" -f -a "token" -d 'One-time enrollment tokens'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand help; and not __fish_seen_subcommand_from serve demo ca cert token signer check-config fleet outliers alarms hosts sizing report help" -f -a "signer" -d 'The CA key\'s only reader: signs agent certificates for `serve`. Started by `serve` as a child on its stdin/stdout, or with --socket by its own unit (then set identity.signer_socket)'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand help; and not __fish_seen_subcommand_from serve demo ca cert token signer check-config fleet outliers alarms hosts sizing report help" -f -a "check-config" -d 'Check a config file and print the effective configuration (defaults filled in, paths resolved)'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand help; and not __fish_seen_subcommand_from serve demo ca cert token signer check-config fleet outliers alarms hosts sizing report help" -f -a "fleet" -d 'Fleet summary per group and zone, from a running collector; with --by or --window, percentiles across hosts of each host\'s mean over the window, grouped by any labels'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand help; and not __fish_seen_subcommand_from serve demo ca cert token signer check-config fleet outliers alarms hosts sizing report help" -f -a "outliers" -d 'Hosts flagged as outliers among their peers, each explained'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand help; and not __fish_seen_subcommand_from serve demo ca cert token signer check-config fleet outliers alarms hosts sizing report help" -f -a "alarms" -d 'Pending and firing alarms with their runbooks'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand help; and not __fish_seen_subcommand_from serve demo ca cert token signer check-config fleet outliers alarms hosts sizing report help" -f -a "hosts" -d 'One row per host, from a running collector'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand help; and not __fish_seen_subcommand_from serve demo ca cert token signer check-config fleet outliers alarms hosts sizing report help" -f -a "sizing" -d 'Failover sizing per service group, read from the database file (no collector needs to run)'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand help; and not __fish_seen_subcommand_from serve demo ca cert token signer check-config fleet outliers alarms hosts sizing report help" -f -a "report" -d 'Write a sizing and capacity report to a file, read from the database file (a copy works)'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand help; and not __fish_seen_subcommand_from serve demo ca cert token signer check-config fleet outliers alarms hosts sizing report help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand help; and __fish_seen_subcommand_from ca" -f -a "init" -d 'Create the CA and the collector\'s server certificate in <state_dir>/pki'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand help; and __fish_seen_subcommand_from cert" -f -a "issue" -d 'Issue a certificate for a host that cannot enroll; the private key then travels by hand'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand help; and __fish_seen_subcommand_from cert" -f -a "server" -d 'Replace the collector\'s own server certificate (same CA); a running collector picks it up within seconds, or at once on SIGHUP, and keeps its agent connections'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand help; and __fish_seen_subcommand_from cert" -f -a "list" -d 'List issued certificates: host, serial, labels, not-after, last seen'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand help; and __fish_seen_subcommand_from cert" -f -a "revoke" -d 'Revoke a host\'s certificates or one serial; a connected host is cut off within seconds'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand help; and __fish_seen_subcommand_from token" -f -a "create" -d 'Create a token and print it (shown only this once)'
complete -c headroom-collector -n "__fish_headroom_collector_using_subcommand help; and __fish_seen_subcommand_from token" -f -a "list" -d 'List tokens: id, uses left, expiry, labels (never the secret)'
