# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_brokerctl_global_optspecs
    string join \n socket= config= h/help V/version
end

function __fish_brokerctl_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_brokerctl_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_brokerctl_using_subcommand
    set -l cmd (__fish_brokerctl_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c brokerctl -n "__fish_brokerctl_needs_command" -l socket -d 'Socket path (else $BROKERD_SOCKET, else the config\'s daemon.socket)' -r -F
complete -c brokerctl -n "__fish_brokerctl_needs_command" -l config -d 'Config file to read the socket path from' -r -F
complete -c brokerctl -n "__fish_brokerctl_needs_command" -s h -l help -d 'Print help'
complete -c brokerctl -n "__fish_brokerctl_needs_command" -s V -l version -d 'Print version'
complete -c brokerctl -n "__fish_brokerctl_needs_command" -f -a "status" -d 'Every account: state, generation, expiry, last login, last error'
complete -c brokerctl -n "__fish_brokerctl_needs_command" -f -a "token" -d 'A valid session (JSON by default)'
complete -c brokerctl -n "__fish_brokerctl_needs_command" -f -a "invalidate" -d 'Report that the broker rejected a generation; prints the new session'
complete -c brokerctl -n "__fish_brokerctl_needs_command" -f -a "login" -d 'Force a fresh login (also clears locked_out and conflict)'
complete -c brokerctl -n "__fish_brokerctl_needs_command" -f -a "login-url" -d 'Print the browser login link (Zerodha, Breeze)'
complete -c brokerctl -n "__fish_brokerctl_needs_command" -f -a "submit" -d 'Complete a browser login: Zerodha\'s request_token or Breeze\'s API_Session, as an argument or on stdin (`-` or nothing)'
complete -c brokerctl -n "__fish_brokerctl_needs_command" -f -a "sign" -d 'Breeze: X-Checksum and the other headers for one request body'
complete -c brokerctl -n "__fish_brokerctl_needs_command" -f -a "logout" -d 'End the session at the broker and forget it'
complete -c brokerctl -n "__fish_brokerctl_needs_command" -f -a "watch" -d 'Print session events as they happen (one JSON line each)'
complete -c brokerctl -n "__fish_brokerctl_needs_command" -f -a "metrics" -d 'Prometheus metrics'
complete -c brokerctl -n "__fish_brokerctl_needs_command" -f -a "reload" -d 'Re-read the daemon\'s config file and apply it (like SIGHUP)'
complete -c brokerctl -n "__fish_brokerctl_needs_command" -f -a "history" -d 'The audit trail, newest first: logins, failures, invalidations, submissions, lock-outs, conflicts, key rotations. Never a secret'
complete -c brokerctl -n "__fish_brokerctl_needs_command" -f -a "rotate-key" -d 'Re-encrypt every stored session under a new storage key and make it the key file\'s key (no login, no downtime). Operators only'
complete -c brokerctl -n "__fish_brokerctl_needs_command" -f -a "exec" -d 'Run a program with the session in its environment (the `token --export` variables), and restart or signal it when the session is renewed. Its exit status is brokerctl\'s'
complete -c brokerctl -n "__fish_brokerctl_needs_command" -f -a "keygen" -d 'Make a new encryption key (base64 of 32 random bytes)'
complete -c brokerctl -n "__fish_brokerctl_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c brokerctl -n "__fish_brokerctl_using_subcommand status" -l socket -d 'Socket path (else $BROKERD_SOCKET, else the config\'s daemon.socket)' -r -F
complete -c brokerctl -n "__fish_brokerctl_using_subcommand status" -l config -d 'Config file to read the socket path from' -r -F
complete -c brokerctl -n "__fish_brokerctl_using_subcommand status" -l json -d 'Print the raw JSON instead of a table'
complete -c brokerctl -n "__fish_brokerctl_using_subcommand status" -s h -l help -d 'Print help'
complete -c brokerctl -n "__fish_brokerctl_using_subcommand token" -l account -d 'Account name (optional when the broker has one account)' -r
complete -c brokerctl -n "__fish_brokerctl_using_subcommand token" -l api -d 'interactive (default) or market (Jainam market data)' -r
complete -c brokerctl -n "__fish_brokerctl_using_subcommand token" -l field -d 'Print one value: token, generation, expires_at, a field name, or a header name' -r
complete -c brokerctl -n "__fish_brokerctl_using_subcommand token" -l min-valid -d 'The session must stay valid this many seconds' -r
complete -c brokerctl -n "__fish_brokerctl_using_subcommand token" -l wait -d 'Wait up to this many seconds for a login' -r
complete -c brokerctl -n "__fish_brokerctl_using_subcommand token" -l socket -d 'Socket path (else $BROKERD_SOCKET, else the config\'s daemon.socket)' -r -F
complete -c brokerctl -n "__fish_brokerctl_using_subcommand token" -l config -d 'Config file to read the socket path from' -r -F
complete -c brokerctl -n "__fish_brokerctl_using_subcommand token" -l export -d 'Print `export NAME=\'value\'` lines for a shell'
complete -c brokerctl -n "__fish_brokerctl_using_subcommand token" -s h -l help -d 'Print help'
complete -c brokerctl -n "__fish_brokerctl_using_subcommand invalidate" -l account -d 'Account name (optional when the broker has one account)' -r
complete -c brokerctl -n "__fish_brokerctl_using_subcommand invalidate" -l api -d 'interactive (default) or market (Jainam market data)' -r
complete -c brokerctl -n "__fish_brokerctl_using_subcommand invalidate" -l generation -d 'The rejected generation' -r
complete -c brokerctl -n "__fish_brokerctl_using_subcommand invalidate" -l reason -d 'What the broker answered: its JSON body or message' -r
complete -c brokerctl -n "__fish_brokerctl_using_subcommand invalidate" -l http-status -d 'The HTTP status of that answer' -r
complete -c brokerctl -n "__fish_brokerctl_using_subcommand invalidate" -l wait -d 'Wait up to this many seconds for the new login' -r
complete -c brokerctl -n "__fish_brokerctl_using_subcommand invalidate" -l socket -d 'Socket path (else $BROKERD_SOCKET, else the config\'s daemon.socket)' -r -F
complete -c brokerctl -n "__fish_brokerctl_using_subcommand invalidate" -l config -d 'Config file to read the socket path from' -r -F
complete -c brokerctl -n "__fish_brokerctl_using_subcommand invalidate" -s h -l help -d 'Print help'
complete -c brokerctl -n "__fish_brokerctl_using_subcommand login" -l account -d 'Account name (optional when the broker has one account)' -r
complete -c brokerctl -n "__fish_brokerctl_using_subcommand login" -l api -d 'interactive (default) or market (Jainam market data)' -r
complete -c brokerctl -n "__fish_brokerctl_using_subcommand login" -l wait -d 'Wait up to this many seconds for the login' -r
complete -c brokerctl -n "__fish_brokerctl_using_subcommand login" -l socket -d 'Socket path (else $BROKERD_SOCKET, else the config\'s daemon.socket)' -r -F
complete -c brokerctl -n "__fish_brokerctl_using_subcommand login" -l config -d 'Config file to read the socket path from' -r -F
complete -c brokerctl -n "__fish_brokerctl_using_subcommand login" -s h -l help -d 'Print help'
complete -c brokerctl -n "__fish_brokerctl_using_subcommand login-url" -l account -d 'Account name (optional when the broker has one account)' -r
complete -c brokerctl -n "__fish_brokerctl_using_subcommand login-url" -l api -d 'interactive (default) or market (Jainam market data)' -r
complete -c brokerctl -n "__fish_brokerctl_using_subcommand login-url" -l socket -d 'Socket path (else $BROKERD_SOCKET, else the config\'s daemon.socket)' -r -F
complete -c brokerctl -n "__fish_brokerctl_using_subcommand login-url" -l config -d 'Config file to read the socket path from' -r -F
complete -c brokerctl -n "__fish_brokerctl_using_subcommand login-url" -s h -l help -d 'Print help'
complete -c brokerctl -n "__fish_brokerctl_using_subcommand submit" -l account -d 'Account name (optional when the broker has one account)' -r
complete -c brokerctl -n "__fish_brokerctl_using_subcommand submit" -l api -d 'interactive (default) or market (Jainam market data)' -r
complete -c brokerctl -n "__fish_brokerctl_using_subcommand submit" -l state -d 'The `state` the redirect carried, if you copied it' -r
complete -c brokerctl -n "__fish_brokerctl_using_subcommand submit" -l wait -d 'Wait up to this many seconds for another login in progress' -r
complete -c brokerctl -n "__fish_brokerctl_using_subcommand submit" -l socket -d 'Socket path (else $BROKERD_SOCKET, else the config\'s daemon.socket)' -r -F
complete -c brokerctl -n "__fish_brokerctl_using_subcommand submit" -l config -d 'Config file to read the socket path from' -r -F
complete -c brokerctl -n "__fish_brokerctl_using_subcommand submit" -s h -l help -d 'Print help'
complete -c brokerctl -n "__fish_brokerctl_using_subcommand sign" -l account -d 'Account name (optional when the broker has one account)' -r
complete -c brokerctl -n "__fish_brokerctl_using_subcommand sign" -l api -d 'interactive (default) or market (Jainam market data)' -r
complete -c brokerctl -n "__fish_brokerctl_using_subcommand sign" -l body -d 'The exact JSON body you will send (`-` reads stdin; default `{}`)' -r
complete -c brokerctl -n "__fish_brokerctl_using_subcommand sign" -l socket -d 'Socket path (else $BROKERD_SOCKET, else the config\'s daemon.socket)' -r -F
complete -c brokerctl -n "__fish_brokerctl_using_subcommand sign" -l config -d 'Config file to read the socket path from' -r -F
complete -c brokerctl -n "__fish_brokerctl_using_subcommand sign" -s h -l help -d 'Print help'
complete -c brokerctl -n "__fish_brokerctl_using_subcommand logout" -l account -d 'Account name (optional when the broker has one account)' -r
complete -c brokerctl -n "__fish_brokerctl_using_subcommand logout" -l api -d 'interactive (default) or market (Jainam market data)' -r
complete -c brokerctl -n "__fish_brokerctl_using_subcommand logout" -l socket -d 'Socket path (else $BROKERD_SOCKET, else the config\'s daemon.socket)' -r -F
complete -c brokerctl -n "__fish_brokerctl_using_subcommand logout" -l config -d 'Config file to read the socket path from' -r -F
complete -c brokerctl -n "__fish_brokerctl_using_subcommand logout" -s h -l help -d 'Print help'
complete -c brokerctl -n "__fish_brokerctl_using_subcommand watch" -l broker -d 'Only these brokers' -r
complete -c brokerctl -n "__fish_brokerctl_using_subcommand watch" -l socket -d 'Socket path (else $BROKERD_SOCKET, else the config\'s daemon.socket)' -r -F
complete -c brokerctl -n "__fish_brokerctl_using_subcommand watch" -l config -d 'Config file to read the socket path from' -r -F
complete -c brokerctl -n "__fish_brokerctl_using_subcommand watch" -s h -l help -d 'Print help'
complete -c brokerctl -n "__fish_brokerctl_using_subcommand metrics" -l socket -d 'Socket path (else $BROKERD_SOCKET, else the config\'s daemon.socket)' -r -F
complete -c brokerctl -n "__fish_brokerctl_using_subcommand metrics" -l config -d 'Config file to read the socket path from' -r -F
complete -c brokerctl -n "__fish_brokerctl_using_subcommand metrics" -s h -l help -d 'Print help'
complete -c brokerctl -n "__fish_brokerctl_using_subcommand reload" -l socket -d 'Socket path (else $BROKERD_SOCKET, else the config\'s daemon.socket)' -r -F
complete -c brokerctl -n "__fish_brokerctl_using_subcommand reload" -l config -d 'Config file to read the socket path from' -r -F
complete -c brokerctl -n "__fish_brokerctl_using_subcommand reload" -l forget-removed -d 'Also forget the stored sessions of accounts no longer configured'
complete -c brokerctl -n "__fish_brokerctl_using_subcommand reload" -s h -l help -d 'Print help'
complete -c brokerctl -n "__fish_brokerctl_using_subcommand history" -l account -d 'Only this account' -r
complete -c brokerctl -n "__fish_brokerctl_using_subcommand history" -l api -d 'Only this api (interactive or market)' -r
complete -c brokerctl -n "__fish_brokerctl_using_subcommand history" -l since -d 'Only events of the last DURATION (90s, 15m, 2h, 7d)' -r
complete -c brokerctl -n "__fish_brokerctl_using_subcommand history" -l limit -d 'At most this many events (default 50, at most 1000)' -r
complete -c brokerctl -n "__fish_brokerctl_using_subcommand history" -l socket -d 'Socket path (else $BROKERD_SOCKET, else the config\'s daemon.socket)' -r -F
complete -c brokerctl -n "__fish_brokerctl_using_subcommand history" -l config -d 'Config file to read the socket path from' -r -F
complete -c brokerctl -n "__fish_brokerctl_using_subcommand history" -l json -d 'Print the raw JSON reply instead of a table'
complete -c brokerctl -n "__fish_brokerctl_using_subcommand history" -s h -l help -d 'Print help'
complete -c brokerctl -n "__fish_brokerctl_using_subcommand rotate-key" -l new -d 'The new key\'s file (as written by `keygen --out`; mode 0600 and readable by brokerd\'s user, which reads it itself). Without it, brokerd makes the new key' -r -F
complete -c brokerctl -n "__fish_brokerctl_using_subcommand rotate-key" -l socket -d 'Socket path (else $BROKERD_SOCKET, else the config\'s daemon.socket)' -r -F
complete -c brokerctl -n "__fish_brokerctl_using_subcommand rotate-key" -l config -d 'Config file to read the socket path from' -r -F
complete -c brokerctl -n "__fish_brokerctl_using_subcommand rotate-key" -s h -l help -d 'Print help'
complete -c brokerctl -n "__fish_brokerctl_using_subcommand exec" -l account -d 'Account name (optional when the broker has one account)' -r
complete -c brokerctl -n "__fish_brokerctl_using_subcommand exec" -l api -d 'interactive (default) or market (Jainam market data)' -r
complete -c brokerctl -n "__fish_brokerctl_using_subcommand exec" -l on-renew -d 'On a new session: restart (default), signal:NAME (e.g. signal:HUP; the program fetches the new session itself), or ignore' -r
complete -c brokerctl -n "__fish_brokerctl_using_subcommand exec" -l grace -d 'Seconds a restarted program gets between SIGTERM and SIGKILL' -r
complete -c brokerctl -n "__fish_brokerctl_using_subcommand exec" -l min-valid -d 'The session must stay valid this many seconds' -r
complete -c brokerctl -n "__fish_brokerctl_using_subcommand exec" -l wait -d 'Wait up to this many seconds for a login' -r
complete -c brokerctl -n "__fish_brokerctl_using_subcommand exec" -l socket -d 'Socket path (else $BROKERD_SOCKET, else the config\'s daemon.socket)' -r -F
complete -c brokerctl -n "__fish_brokerctl_using_subcommand exec" -l config -d 'Config file to read the socket path from' -r -F
complete -c brokerctl -n "__fish_brokerctl_using_subcommand exec" -s h -l help -d 'Print help'
complete -c brokerctl -n "__fish_brokerctl_using_subcommand keygen" -l out -d 'Write it to this file (mode 0600, must not exist) instead of stdout' -r -F
complete -c brokerctl -n "__fish_brokerctl_using_subcommand keygen" -l socket -d 'Socket path (else $BROKERD_SOCKET, else the config\'s daemon.socket)' -r -F
complete -c brokerctl -n "__fish_brokerctl_using_subcommand keygen" -l config -d 'Config file to read the socket path from' -r -F
complete -c brokerctl -n "__fish_brokerctl_using_subcommand keygen" -s h -l help -d 'Print help'
complete -c brokerctl -n "__fish_brokerctl_using_subcommand help; and not __fish_seen_subcommand_from status token invalidate login login-url submit sign logout watch metrics reload history rotate-key exec keygen help" -f -a "status" -d 'Every account: state, generation, expiry, last login, last error'
complete -c brokerctl -n "__fish_brokerctl_using_subcommand help; and not __fish_seen_subcommand_from status token invalidate login login-url submit sign logout watch metrics reload history rotate-key exec keygen help" -f -a "token" -d 'A valid session (JSON by default)'
complete -c brokerctl -n "__fish_brokerctl_using_subcommand help; and not __fish_seen_subcommand_from status token invalidate login login-url submit sign logout watch metrics reload history rotate-key exec keygen help" -f -a "invalidate" -d 'Report that the broker rejected a generation; prints the new session'
complete -c brokerctl -n "__fish_brokerctl_using_subcommand help; and not __fish_seen_subcommand_from status token invalidate login login-url submit sign logout watch metrics reload history rotate-key exec keygen help" -f -a "login" -d 'Force a fresh login (also clears locked_out and conflict)'
complete -c brokerctl -n "__fish_brokerctl_using_subcommand help; and not __fish_seen_subcommand_from status token invalidate login login-url submit sign logout watch metrics reload history rotate-key exec keygen help" -f -a "login-url" -d 'Print the browser login link (Zerodha, Breeze)'
complete -c brokerctl -n "__fish_brokerctl_using_subcommand help; and not __fish_seen_subcommand_from status token invalidate login login-url submit sign logout watch metrics reload history rotate-key exec keygen help" -f -a "submit" -d 'Complete a browser login: Zerodha\'s request_token or Breeze\'s API_Session, as an argument or on stdin (`-` or nothing)'
complete -c brokerctl -n "__fish_brokerctl_using_subcommand help; and not __fish_seen_subcommand_from status token invalidate login login-url submit sign logout watch metrics reload history rotate-key exec keygen help" -f -a "sign" -d 'Breeze: X-Checksum and the other headers for one request body'
complete -c brokerctl -n "__fish_brokerctl_using_subcommand help; and not __fish_seen_subcommand_from status token invalidate login login-url submit sign logout watch metrics reload history rotate-key exec keygen help" -f -a "logout" -d 'End the session at the broker and forget it'
complete -c brokerctl -n "__fish_brokerctl_using_subcommand help; and not __fish_seen_subcommand_from status token invalidate login login-url submit sign logout watch metrics reload history rotate-key exec keygen help" -f -a "watch" -d 'Print session events as they happen (one JSON line each)'
complete -c brokerctl -n "__fish_brokerctl_using_subcommand help; and not __fish_seen_subcommand_from status token invalidate login login-url submit sign logout watch metrics reload history rotate-key exec keygen help" -f -a "metrics" -d 'Prometheus metrics'
complete -c brokerctl -n "__fish_brokerctl_using_subcommand help; and not __fish_seen_subcommand_from status token invalidate login login-url submit sign logout watch metrics reload history rotate-key exec keygen help" -f -a "reload" -d 'Re-read the daemon\'s config file and apply it (like SIGHUP)'
complete -c brokerctl -n "__fish_brokerctl_using_subcommand help; and not __fish_seen_subcommand_from status token invalidate login login-url submit sign logout watch metrics reload history rotate-key exec keygen help" -f -a "history" -d 'The audit trail, newest first: logins, failures, invalidations, submissions, lock-outs, conflicts, key rotations. Never a secret'
complete -c brokerctl -n "__fish_brokerctl_using_subcommand help; and not __fish_seen_subcommand_from status token invalidate login login-url submit sign logout watch metrics reload history rotate-key exec keygen help" -f -a "rotate-key" -d 'Re-encrypt every stored session under a new storage key and make it the key file\'s key (no login, no downtime). Operators only'
complete -c brokerctl -n "__fish_brokerctl_using_subcommand help; and not __fish_seen_subcommand_from status token invalidate login login-url submit sign logout watch metrics reload history rotate-key exec keygen help" -f -a "exec" -d 'Run a program with the session in its environment (the `token --export` variables), and restart or signal it when the session is renewed. Its exit status is brokerctl\'s'
complete -c brokerctl -n "__fish_brokerctl_using_subcommand help; and not __fish_seen_subcommand_from status token invalidate login login-url submit sign logout watch metrics reload history rotate-key exec keygen help" -f -a "keygen" -d 'Make a new encryption key (base64 of 32 random bytes)'
complete -c brokerctl -n "__fish_brokerctl_using_subcommand help; and not __fish_seen_subcommand_from status token invalidate login login-url submit sign logout watch metrics reload history rotate-key exec keygen help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
