//! The "Examples:" block printed at the end of each subcommand's `--help`
//! (clap `after_help`). Every line that starts with `muster` works as
//! written against a fleet whose agents are named web1, web2 and db1 and
//! allow an action `uptime`; tests/help_examples.rs runs each one. A line
//! starting with `#` says what the command below it does. `ID` stands for
//! a request id that `muster run --async` printed.

/// `muster` itself; the other constants are named after their subcommand.
pub(super) const MUSTER: &str = "\
Examples:
  # Try everything on this host: a throwaway CA, 3 agents, one run
  muster demo --agents 3
  # Run the allow-listed action `uptime` on every registered agent
  muster run all -- uptime
  # Who answers, and how fast
  muster ping all";

pub(super) const DEMO: &str = "\
Examples:
  # Five local agents, one sample run across them, then everything removed
  muster demo
  # The same with three agents
  muster demo --agents 3";

pub(super) const CA: &str = "\
Examples:
  # Create the CA and this dispatcher's identity
  muster ca init --id dispatch1
  # Issue and register an agent; copy ./web3 to the host as /etc/muster
  muster ca issue-agent web3 --addr web3.example.com:7443 --tags web,eu --out ./web3";

pub(super) const CA_INIT: &str = "\
Examples:
  # Create the CA and this dispatcher's identity, named after the host
  muster ca init
  # The same, with an explicit dispatcher id
  muster ca init --id dispatch1";

pub(super) const CA_ISSUE_AGENT: &str = "\
Examples:
  # Issue and register web3; copy ./web3 to the host as /etc/muster
  muster ca issue-agent web3 --addr web3.example.com:7443 --tags web,eu --out ./web3
  # Re-issue it (new key and certificate) at a new address
  muster ca issue-agent web3 --addr 10.0.0.13:7443 --out ./web3 --force";

pub(super) const AGENT: &str = "\
Examples:
  # Check, then serve, an agent whose files are in /etc/muster
  muster agent self-check --config /etc/muster/agent.toml
  muster agent serve --config /etc/muster/agent.toml";

pub(super) const AGENT_SERVE: &str = "\
Examples:
  # Serve the agent configured in /etc/muster (stops on SIGTERM or Ctrl-C)
  muster agent serve --config /etc/muster/agent.toml
  # The same, logging every connection refused and why
  MUSTER_LOG=debug muster agent serve --config /etc/muster/agent.toml";

pub(super) const AGENT_PAIR: &str = "\
Examples:
  # Ask dispatch1 for a certificate; the operator there compares the code and approves
  muster agent pair --dispatcher dispatch1.example.com --name web4 --tags web --out /etc/muster
  # Tell the dispatcher to dial this host at another address
  muster agent pair --dispatcher dispatch1.example.com:7444 --name web4 --addr 10.0.0.14:7443 --out /etc/muster";

pub(super) const AGENT_STDIO: &str = "\
Examples:
  # What `--via ssh` starts on each host; ends when its input ends
  muster agent stdio
  # At most 4 commands at once
  muster agent stdio --max-concurrent 4";

pub(super) const AGENT_SELF_CHECK: &str = "\
Examples:
  # Check an agent's files before starting it (exit 1 if a check fails)
  muster agent self-check --config /etc/muster/agent.toml
  # The same, from the agent's directory
  cd /etc/muster && muster agent self-check --config agent.toml";

pub(super) const RUN: &str = "\
Examples:
  # Run the action `uptime` on every registered agent
  muster run all -- uptime
  # Two named hosts, 10 at a time, 30 seconds each at most
  muster run 'web[1-2]' --fanout 10 --timeout 30 -- uptime
  # Agents tagged web, one JSON event per line
  muster run all --tags web --output json -- uptime
  # Start the run and return; collect it later with `muster wait ID`
  muster run all --async -- uptime";

pub(super) const PING: &str = "\
Examples:
  # Every registered agent's round-trip time
  muster ping all
  # The agents tagged web among web1 and web2, 10 at a time
  muster ping 'web[1-2]' --tags web --fanout 10
  # Every agent on the hub channel of dispatcher.toml (those that answer are remembered)
  muster ping all --via hub";

pub(super) const AGENTS: &str = "\
Examples:
  muster agents list
  muster agents show web1
  muster agents edit web1 --tags web,eu";

pub(super) const AGENTS_LIST: &str = "\
Examples:
  # One line per agent under a header
  muster agents list
  # The entries as a JSON array
  muster agents list --output json";

pub(super) const AGENTS_SHOW: &str = "\
Examples:
  # web1's entry: address, tags, certificate serial and expiry
  muster agents show web1
  muster agents show db1";

pub(super) const AGENTS_ADD: &str = "\
Examples:
  # Register an agent whose certificate was issued elsewhere by this CA
  muster agents add web5 --addr 10.0.0.15:7443 --cert ./web5/agent.crt --tags web
  # Replace its entry (same certificate, new address)
  muster agents add web5 --addr 10.0.0.16:7443 --cert ./web5/agent.crt --force";

pub(super) const AGENTS_EDIT: &str = "\
Examples:
  # Replace web1's tags
  muster agents edit web1 --tags web,eu
  # Dial web1 at a new address
  muster agents edit web1 --addr 10.0.0.11:7443";

pub(super) const AGENTS_REMOVE: &str = "\
Examples:
  # Forget web2 (its certificate stays valid; see `muster revoke`)
  muster agents remove web2
  # Forget web5 (added with `muster agents add`)
  muster agents remove web5";

pub(super) const HUB: &str = "\
Examples:
  # Key pairs for signing and sealing hub commands
  muster hub keygen station --out ./keys
  muster hub keygen network --out ./keys";

pub(super) const HUB_KEYGEN: &str = "\
Examples:
  # ./keys/station.key (secret, 0600) and ./keys/station.pub
  muster hub keygen station --out ./keys
  # ./keys/network.key (secret, 0600) and ./keys/network.pub
  muster hub keygen network --out ./keys";

pub(super) const HUB_SWARM: &str = "\
Examples:
  # 1000 simulated agents on the hub named in agent.toml's [hub] section
  muster hub swarm --config /etc/muster/agent.toml --count 1000
  # A smaller swarm
  muster hub swarm --config /etc/muster/agent.toml --count 50";

pub(super) const NS8_AGENT: &str = "\
Examples:
  # The agent of module mail1, actions from two roots (REDIS_ADDRESS etc. from the environment)
  muster ns8-agent --agentid module/mail1 --actionsdir /usr/local/agent/actions --actionsdir /srv/mail1/actions
  # The same in ns8-core's positional form: agent id, then action roots
  muster ns8-agent module/mail1 /usr/local/agent/actions /srv/mail1/actions";

pub(super) const PAIR: &str = "\
Examples:
  # Serve pairing requests; decide them from another shell
  muster pair listen --no-prompt
  muster pair list";

pub(super) const PAIR_LISTEN: &str = "\
Examples:
  # Ask approve/deny on this terminal for each request
  muster pair listen
  # Only queue requests, on one address
  muster pair listen --bind 10.0.0.1:7444 --no-prompt";

pub(super) const PAIR_LIST: &str = "\
Examples:
  muster pair list
  muster pair list --json";

pub(super) const PAIR_APPROVE: &str = "\
Examples:
  # Approve request 3 (its id in `muster pair list`) after comparing the code
  muster pair approve 3
  # Approve an agent that pairs again under a name already registered
  muster pair approve 4 --replace";

pub(super) const PAIR_DENY: &str = "\
Examples:
  muster pair deny 3 --reason 'unknown host'
  # With the default reason, \"denied by the operator\"
  muster pair deny 4";

pub(super) const STATUS: &str = "\
Examples:
  # Where the run ID stands (ID: what `muster run --async` printed)
  muster status ID
  # The same as JSON events
  muster status ID --output json";

pub(super) const WAIT: &str = "\
Examples:
  # Wait for the run ID to end; the exit status is its bitmask
  muster wait ID
  # Give up after 60 seconds (exit status +8)
  muster wait ID --timeout 60";

pub(super) const LIST_REQUESTS: &str = "\
Examples:
  muster list-requests
  muster list-requests --json";

pub(super) const ROTATE_CERT: &str = "\
Examples:
  # New certificate; agents trust the old serial for 7 more days
  muster rotate-cert --overlap-days 7
  # Rotate again before that overlap has ended
  muster rotate-cert --force";

pub(super) const MAINTAIN: &str = "\
Examples:
  # What a daily timer runs
  muster maintain
  # Renew agent certificates that expire within 60 days, for a year
  muster maintain --renew-days 60 --days 365";

pub(super) const SERIAL_STATUS: &str = "\
Examples:
  muster serial-status
  muster serial-status --json";

pub(super) const DAEMON: &str = "\
Examples:
  # Keep agent sessions open for `muster run` and consoles on this host
  muster daemon
  # Also serve consoles of other hosts over mutual TLS
  muster daemon --listen 0.0.0.0:9007";

pub(super) const CONSOLE: &str = "\
Examples:
  # Then type e.g. `select web*`, `run uptime`, `help`
  muster console
  # On another dispatcher's state directory
  muster --state-dir /var/lib/muster-staging console";

pub(super) const PUT: &str = "\
Examples:
  # Copy ./app.conf to /srv/app/app.conf on every agent, mode 0640
  muster put all ./app.conf /srv/app/app.conf --mode 0640
  # The agents tagged web, 5 at a time
  muster put all ./app.conf /srv/app/app.conf --tags web --fanout 5";

pub(super) const GET: &str = "\
Examples:
  # Each agent's /srv/app/app.conf into ./copies/<agent>/app.conf
  muster get all /srv/app/app.conf ./copies
  # From web1 and web2 only
  muster get 'web[1-2]' /srv/app/app.conf ./copies";

pub(super) const REVOKE: &str = "\
Examples:
  # Revoke web2's certificate; every reachable agent refuses it from now on
  muster revoke web2
  # Then forget it (the revocation stays)
  muster agents remove web2";

pub(super) const COMPLETIONS: &str = "\
Examples:
  # bash: save, then source it from ~/.bashrc (or install to /usr/share/bash-completion/completions/muster)
  muster completions bash > muster.bash
  # zsh: a file named _muster in a directory of $fpath
  muster completions zsh > _muster
  # fish: ~/.config/fish/completions/muster.fish
  muster completions fish > muster.fish";

pub(super) const MAN: &str = "\
Examples:
  # muster.1 and one page per subcommand (muster-run.1, ...) into ./man
  muster man --out ./man
  # The main page on stdout
  muster man > muster.1";

pub(super) const API: &str = "\
Examples:
  # A token for the API (printed once), then serve on 127.0.0.1:7445
  muster api token add ops
  muster api --listen 127.0.0.1:7445
  # HTTPS for other hosts, with user client certificates beside tokens
  muster api --tls --tls-name dispatch1.example.com --listen 0.0.0.0:7445";

pub(super) const API_TOKEN: &str = "\
Examples:
  # A token that may run only `uptime`, on web1 and web2
  muster api token add monitor --actions uptime --targets 'web[1-2]'
  # Every token and certificate user with its limits
  muster api token list";

pub(super) const API_TOKEN_ADD: &str = "\
Examples:
  # A token with no limits (printed once: keep it)
  muster api token add deployer
  # A certificate user: writes ./alice/alice.crt, alice.key and ca.crt
  muster api token add alice --cert --out ./alice";

pub(super) const API_TOKEN_LIST: &str = "\
Examples:
  # Names, kinds and limits, one per line
  muster api token list
  # Names only
  muster api token list | cut -f1";

pub(super) const API_TOKEN_REMOVE: &str = "\
Examples:
  # Add a token, then remove it: clients using it get 401 from then on
  muster api token add short-lived
  muster api token remove short-lived";

pub(super) const AUDIT: &str = "\
Examples:
  # Every run recorded, oldest first
  muster audit
  # Runs that ended in the last hour, as stored (JSON lines)
  muster audit --since 3600 --json";

pub(super) const NODESET: &str = "\
Examples:
  # Fold a list back into ranges
  muster nodeset web1,web2,db1
  # One name per line: web01 and web03 (web02 taken out)
  muster nodeset -e 'web[01-03]!web02'
  # How many registered agents there are
  muster nodeset -c @all";
