//! `muster agent self-check --config FILE` (ctrl-exec's): the checks an
//! operator runs before starting an agent or after changing its files,
//! one line each: the config parses; the allowlist's scripts exist and are
//! executable (a warning when there are none). With `tls = true`: the key
//! matches the certificate; the certificate chains to `ca.crt`, names the
//! agent and is valid (a warning when it expires within 30 days); the
//! trusted map lists a dispatcher; the listen address can be bound. With a
//! `[hub]` section: both keys load and Redis answers PING. An agent with
//! neither has nothing to serve.

use super::config::AgentConfig;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub ok: bool,
    pub what: String,
    pub detail: String,
}

fn check(ok: bool, what: &str, detail: impl Into<String>) -> Check {
    Check { ok, what: what.into(), detail: detail.into() }
}

/// Run every check on the agent whose config is at `config`.
pub fn run(config: &std::path::Path) -> Vec<Check> {
    let cfg = match AgentConfig::load(config) {
        Ok(c) => c,
        Err(e) => return vec![check(false, "config", e.to_string())],
    };
    let mut out = vec![check(true, "config", format!("{} parses", config.display()))];
    if !cfg.tls && cfg.hub.is_none() {
        out.push(check(false, "carriers", "nothing to serve: set tls = true or add a [hub] section"));
    }
    if cfg.tls {
        out.extend(certificate(&cfg));
    }
    match crate::exec::Catalog::load(cfg.allowlist.as_deref(), &cfg.run_dirs) {
        Ok((catalog, warnings)) if warnings.is_empty() && catalog.is_empty() => out.push(check(
            true,
            "allowlist",
            "warning: no actions: every request except the built-ins (ping, info) is refused; add `name = \
             /path/to/script` lines to the allowlist or a run_dirs entry",
        )),
        Ok((catalog, warnings)) if warnings.is_empty() => out.push(check(
            true,
            "allowlist",
            format!("{}, every script exists and is executable", crate::words::plural(catalog.len(), "action")),
        )),
        Ok((_, warnings)) => {
            for w in warnings {
                out.push(check(false, "allowlist", w.to_string()));
            }
        }
        Err(e) => out.push(check(false, "allowlist", e.to_string())),
    }
    if cfg.tls {
        match super::Trust::load(&cfg.state_dir) {
            Ok((t, _)) if t.dispatcher_count() > 0 => out.push(check(
                true,
                "trusted map",
                format!("{} trusted", crate::words::plural(t.dispatcher_count(), "dispatcher serial")),
            )),
            Ok((_, w)) => out.push(check(false, "trusted map", w.first().map(|w| w.to_string()).unwrap_or_default())),
            Err(e) => out.push(check(false, "trusted map", e.to_string())),
        }
        match std::net::TcpListener::bind(&cfg.listen) {
            Ok(_) => out.push(check(true, "listen", format!("{} can be bound", cfg.listen))),
            Err(e) => out.push(check(
                false,
                "listen",
                format!("cannot bind {}: {e} (is the agent already running?)", cfg.listen),
            )),
        }
    }
    if let Some(hub) = &cfg.hub {
        out.extend(hub_checks(hub));
    }
    out
}

/// The hub keys load and Redis answers PING within 3 s.
fn hub_checks(hub: &crate::hub::config::AgentHub) -> Vec<Check> {
    let mut out = Vec::new();
    let keys = crate::hub::keys::load_station_public(&hub.station_key)
        .and_then(|_| crate::hub::keys::load_network_secret(&hub.network_key));
    out.push(match keys {
        Ok(_) => {
            check(true, "hub keys", format!("{} and {} load", hub.station_key.display(), hub.network_key.display()))
        }
        Err(e) => check(false, "hub keys", e),
    });
    let redis = match crate::hub::conn::Hub::new(&hub.redis) {
        Ok(r) => r,
        Err(e) => {
            out.push(check(false, "redis", format!("[hub] {e}")));
            return out;
        }
    };
    let ping = async {
        let mut c = redis.dedicated(Some(std::time::Duration::from_secs(3))).await?;
        redis::cmd("PING").query_async::<String>(&mut c).await.map_err(|e| e.to_string())
    };
    let answered = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| rt.block_on(ping));
    out.push(match answered {
        Ok(_) => check(true, "redis", format!("{} answers PING", redis.describe())),
        Err(e) => check(false, "redis", format!("{} does not answer: {e}", redis.describe())),
    });
    out
}

fn certificate(cfg: &AgentConfig) -> Vec<Check> {
    let read = |f: &str| {
        std::fs::read_to_string(cfg.path(f)).map_err(|e| format!("cannot read {}: {e}", cfg.path(f).display()))
    };
    let (key, cert, ca) = match (read("agent.key"), read("agent.crt"), read("ca.crt")) {
        (Ok(k), Ok(c), Ok(a)) => (k, c, a),
        (k, c, a) => {
            let why = [k.err(), c.err(), a.err()].into_iter().flatten().collect::<Vec<_>>().join("; ");
            return vec![check(false, "certificate", why)];
        }
    };
    let der = crate::pki::parse_certs_pem(&cert).ok().and_then(|v| v.into_iter().next());
    let ca_der = crate::pki::parse_certs_pem(&ca).ok().and_then(|v| v.into_iter().next());
    let (Some(der), Some(ca_der)) = (der, ca_der) else {
        return vec![check(false, "certificate", "agent.crt or ca.crt holds no certificate")];
    };
    let (Ok((_, c)), Ok((_, a))) = (X509Certificate::from_der(&der), X509Certificate::from_der(&ca_der)) else {
        return vec![check(false, "certificate", "agent.crt or ca.crt is not a valid certificate")];
    };
    let mut out = Vec::new();
    let key_ok = rcgen::KeyPair::from_pem(&key)
        .is_ok_and(|k| c.public_key().subject_public_key.data.as_ref() == k.public_key_raw());
    out.push(check(
        key_ok,
        "key",
        if key_ok { "agent.key matches agent.crt" } else { "agent.key does not match agent.crt" },
    ));
    let chains = c.verify_signature(Some(a.public_key())).is_ok();
    out.push(check(
        chains,
        "chain",
        if chains { "agent.crt is signed by ca.crt" } else { "agent.crt is not signed by ca.crt" },
    ));
    let cn = c.subject().iter_common_name().next().and_then(|x| x.as_str().ok()).unwrap_or_default();
    out.push(check(cn == cfg.name, "name", format!("agent.crt names {cn:?}; the config names {:?}", cfg.name)));
    let not_after = c.validity().not_after.timestamp();
    let when = crate::timefmt::unix_rfc3339(u64::try_from(not_after).unwrap_or(0));
    let left = not_after - time::OffsetDateTime::now_utc().unix_timestamp();
    let valid = c.validity().is_valid();
    let detail = if !valid {
        format!("agent.crt is not valid now (valid until {when})")
    } else if left < 30 * 86_400 {
        format!("agent.crt expires soon, on {when}: renew it (`muster maintain` on the dispatcher)")
    } else {
        format!("agent.crt is valid until {when}")
    };
    out.push(check(valid, "validity", detail));
    out
}
