# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_headroom_agent_global_optspecs
    string join \n h/help V/version
end

function __fish_headroom_agent_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_headroom_agent_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_headroom_agent_using_subcommand
    set -l cmd (__fish_headroom_agent_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c headroom-agent -n "__fish_headroom_agent_needs_command" -s h -l help -d 'Print help'
complete -c headroom-agent -n "__fish_headroom_agent_needs_command" -s V -l version -d 'Print version'
complete -c headroom-agent -n "__fish_headroom_agent_needs_command" -f -a "run" -d 'Run the service (systemd runs this)'
complete -c headroom-agent -n "__fish_headroom_agent_needs_command" -f -a "sample" -d 'Take one sample of this host and print it; no network'
complete -c headroom-agent -n "__fish_headroom_agent_needs_command" -f -a "enroll" -d 'Get this host\'s certificate from the collector with a one-time token'
complete -c headroom-agent -n "__fish_headroom_agent_needs_command" -f -a "check-config" -d 'Check a config file and print the effective configuration (defaults filled in, paths resolved)'
complete -c headroom-agent -n "__fish_headroom_agent_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c headroom-agent -n "__fish_headroom_agent_using_subcommand run" -l config -r -F
complete -c headroom-agent -n "__fish_headroom_agent_using_subcommand run" -s h -l help -d 'Print help'
complete -c headroom-agent -n "__fish_headroom_agent_using_subcommand sample" -l format -d 'table (human units), json (the raw sample with schema_version, docs/API.md) or csv (raw numbers with their unit)' -r -f -a "table\t''
json\t''
csv\t''"
complete -c headroom-agent -n "__fish_headroom_agent_using_subcommand sample" -l proc-root -d 'Read this proc root instead of /proc (for captured trees)' -r -F
complete -c headroom-agent -n "__fish_headroom_agent_using_subcommand sample" -l no-header -d 'Leave out the header row of the table or CSV'
complete -c headroom-agent -n "__fish_headroom_agent_using_subcommand sample" -s h -l help -d 'Print help'
complete -c headroom-agent -n "__fish_headroom_agent_using_subcommand enroll" -l collector -d 'The collector\'s enrollment address, HOST[:PORT]; the port is its enroll_listen (UDP, 9602 when left out), not the streaming port' -r
complete -c headroom-agent -n "__fish_headroom_agent_using_subcommand enroll" -l token -d 'The one-time token from "headroom-collector token create". A command line shows in `ps`: prefer --token-file or the HEADROOM_TOKEN environment variable' -r
complete -c headroom-agent -n "__fish_headroom_agent_using_subcommand enroll" -l token-file -d 'Read the one-time token from this file (its first line); without --token or --token-file the token comes from the HEADROOM_TOKEN environment variable' -r -F
complete -c headroom-agent -n "__fish_headroom_agent_using_subcommand enroll" -l ca-fingerprint -d 'The CA fingerprint "headroom-collector ca init" printed (SHA256:...)' -r
complete -c headroom-agent -n "__fish_headroom_agent_using_subcommand enroll" -l config -d 'Agent config whose state_dir and tls paths receive the files (used when it exists)' -r -F
complete -c headroom-agent -n "__fish_headroom_agent_using_subcommand enroll" -l state-dir -d 'State directory to write into instead of the config\'s' -r -F
complete -c headroom-agent -n "__fish_headroom_agent_using_subcommand enroll" -l host -d 'Identity to ask for (default: this machine\'s host name)' -r
complete -c headroom-agent -n "__fish_headroom_agent_using_subcommand enroll" -l server-name -d 'Name the collector\'s certificate must carry (default: the host part of --collector)' -r
complete -c headroom-agent -n "__fish_headroom_agent_using_subcommand enroll" -s h -l help -d 'Print help'
complete -c headroom-agent -n "__fish_headroom_agent_using_subcommand check-config" -l config -r -F
complete -c headroom-agent -n "__fish_headroom_agent_using_subcommand check-config" -l format -d 'toml (reads back as the same configuration) or json' -r -f -a "toml\t'The file\'s own format; it parses back to the same configuration'
json\t'The same document as pretty JSON, for scripts'"
complete -c headroom-agent -n "__fish_headroom_agent_using_subcommand check-config" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c headroom-agent -n "__fish_headroom_agent_using_subcommand help; and not __fish_seen_subcommand_from run sample enroll check-config help" -f -a "run" -d 'Run the service (systemd runs this)'
complete -c headroom-agent -n "__fish_headroom_agent_using_subcommand help; and not __fish_seen_subcommand_from run sample enroll check-config help" -f -a "sample" -d 'Take one sample of this host and print it; no network'
complete -c headroom-agent -n "__fish_headroom_agent_using_subcommand help; and not __fish_seen_subcommand_from run sample enroll check-config help" -f -a "enroll" -d 'Get this host\'s certificate from the collector with a one-time token'
complete -c headroom-agent -n "__fish_headroom_agent_using_subcommand help; and not __fish_seen_subcommand_from run sample enroll check-config help" -f -a "check-config" -d 'Check a config file and print the effective configuration (defaults filled in, paths resolved)'
complete -c headroom-agent -n "__fish_headroom_agent_using_subcommand help; and not __fish_seen_subcommand_from run sample enroll check-config help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
