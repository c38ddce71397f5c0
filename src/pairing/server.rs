//! `muster pair listen`: serve pairing requests on 7444. Each connection is
//! a TLS session (bounded in number and in handshake time) carrying one
//! request; the request is checked (version, agent name, address, tags,
//! CSR signature, key strength, channel binding), queued in `pairing/`, and
//! answered with its id and code. The connection then waits for a decision
//! made by anyone on the same state dir — this process's prompt on a
//! terminal, or `muster pair approve|deny` — and delivers it. An agent that
//! hangs up withdraws its request; an undecided one expires.

use super::store::{self, Decision, NewRequest, Request};
use super::{channel, now, PairingError};
use crate::protocol::pairing::{pairing_code, PairGrant, PairMessage, PAIRING_VERSION};
use crate::transport::{FrameReader, FrameWriter};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 128;
/// TLS handshake and the request must arrive within this.
const REQUEST_LIMIT: Duration = Duration::from_secs(10);
/// Largest pairing frame.
const MAX_FRAME: usize = 64 * 1024;
/// How often a waiting connection looks for a decision.
const POLL: Duration = Duration::from_millis(200);

/// How `muster pair listen` runs.
#[derive(Debug, Clone)]
pub struct Listen {
    pub state: PathBuf,
    /// Seconds a request waits for a decision.
    pub expire_s: u64,
    /// Ask on this terminal for each request.
    pub prompt: bool,
    /// Validity of issued certificates, days.
    pub days: u32,
}

/// What every grant carries beside the certificate.
struct Issuer {
    ca_pem: String,
    dispatcher_id: String,
    dispatcher_serial: String,
}

/// The dispatcher identity and CA as they are on disk now: read for each
/// grant, so a certificate rotated while the listener runs is the one the
/// agent is told to trust.
fn issuer(state: &std::path::Path) -> Result<Issuer, PairingError> {
    let me = crate::pki::load_dispatcher(state)?;
    let ca_path = state.join("ca").join("ca.crt");
    let ca_pem = std::fs::read_to_string(&ca_path)
        .map_err(|e| PairingError::BadInput(format!("cannot read {}: {e}", ca_path.display())))?;
    Ok(Issuer { ca_pem, dispatcher_id: me.id, dispatcher_serial: me.serial })
}

/// Serve until `shutdown` resolves. The pending requests this listener
/// holds are removed when it stops: nobody else could deliver them.
pub async fn serve(
    opts: Listen,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), PairingError> {
    let me = crate::pki::load_dispatcher(&opts.state)?;
    issuer(&opts.state)?;
    let tls =
        channel::server_config(crate::pki::parse_certs_pem(&me.cert_pem)?, crate::pki::parse_key_pem(&me.key_pem)?)
            .map_err(|e| PairingError::Tls { addr: "pairing listener".into(), why: e.to_string() })?;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let prompt = opts.prompt.then(spawn_prompt(opts.clone()));
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let opts = Arc::new(opts);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => {
                store::remove_held_by(&opts.state, std::process::id());
                return Ok(());
            }
            accepted = listener.accept() => {
                let Ok((tcp, peer)) = accepted else { continue };
                let Ok(permit) = slots.clone().acquire_owned().await else { continue };
                let (acceptor, opts, prompt) = (acceptor.clone(), opts.clone(), prompt.clone());
                tokio::spawn(async move {
                    if let Err(e) = connection(acceptor, tcp, peer.to_string(), &opts, prompt).await {
                        tracing::warn!(peer = %peer, "pairing: {e}");
                    }
                    drop(permit);
                });
            }
        }
    }
}

type Prompt = Option<std::sync::mpsc::Sender<Request>>;

/// Discard what was typed before a question was shown, so a key pressed
/// earlier is never taken as its answer.
fn flush_typed_ahead() {
    // SAFETY: tcflush on fd 0 has no memory-safety preconditions; on a
    // non-terminal it fails harmlessly.
    unsafe { libc::tcflush(0, libc::TCIFLUSH) };
}

/// An operator's answer to one prompt.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Approve { replace: bool },
    Deny,
}

/// Read `line` as an answer: y/yes, n/no, and r/replace only when the
/// name is already paired; anything else is no answer (asked again).
fn answer(line: &str, replaces: bool) -> Option<Answer> {
    match line.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Some(Answer::Approve { replace: false }),
        "n" | "no" => Some(Answer::Deny),
        "r" | "replace" if replaces => Some(Answer::Approve { replace: true }),
        _ => None,
    }
}

fn spawn_prompt(opts: Listen) -> impl FnOnce() -> std::sync::mpsc::Sender<Request> {
    move || {
        let (tx, rx) = std::sync::mpsc::channel::<Request>();
        std::thread::spawn(move || {
            use std::io::Write;
            let stdin = std::io::stdin();
            let still_pending =
                |id: &str| store::load(&opts.state, id).ok().flatten().is_some_and(|x| x.decision == Decision::Pending);
            for r in rx {
                loop {
                    if !still_pending(&r.id) {
                        break;
                    }
                    let others = store::list(&opts.state, now()).map(|l| l.len().saturating_sub(1)).unwrap_or(0);
                    let more = if others > 0 { format!(" ({others} more waiting)") } else { String::new() };
                    let (choices, again) = if r.replaces.is_some() {
                        ("[y]es / [n]o / [r]eplace", " — already paired: r replaces its certificate")
                    } else {
                        ("[y]es / [n]o", "")
                    };
                    println!(
                        "pairing request {} from {}: agent {} ({}) at {} tags [{}]{again}{more}",
                        r.id,
                        r.peer,
                        r.name,
                        r.key_type,
                        r.addr,
                        r.tags.join(",")
                    );
                    flush_typed_ahead();
                    print!("approve {} with code {}? {choices}: ", r.name, r.code);
                    let _ = std::io::stdout().flush();
                    let mut line = String::new();
                    if stdin.read_line(&mut line).unwrap_or(0) == 0 {
                        println!();
                        println!(
                            "end of input: no more questions here; pending requests stay until they expire — \
                             decide them with `muster pair approve|deny ID`"
                        );
                        return;
                    }
                    let Some(a) = answer(&line, r.replaces.is_some()) else {
                        println!("answer {choices}");
                        continue;
                    };
                    if !still_pending(&r.id) {
                        println!("{} was decided elsewhere, withdrawn or expired meanwhile", r.id);
                        break;
                    }
                    let t = now();
                    let done = match a {
                        Answer::Approve { replace } => {
                            store::approve(&opts.state, &r.id, replace, t, opts.days).map(|_| "approved")
                        }
                        Answer::Deny => store::deny(&opts.state, &r.id, "denied by the operator", t).map(|_| "denied"),
                    };
                    match done {
                        Ok(what) => println!("{what} {} ({})", r.name, r.id),
                        Err(e) => println!("{}: {e}", r.id),
                    }
                    break;
                }
            }
        });
        tx
    }
}

/// Check what the agent sent before anything is stored.
fn check(req: &crate::protocol::pairing::PairRequest, ours: &[u8]) -> Result<String, String> {
    if req.version != PAIRING_VERSION {
        return Err(format!(
            "pairing version {} is not supported (this dispatcher speaks {PAIRING_VERSION})",
            req.version
        ));
    }
    crate::protocol::check_action_name(&req.name).map_err(|e| e.to_string().replace("action name", "agent name"))?;
    crate::pki::check_agent_name(&req.name).map_err(|e| e.to_string())?;
    let port_ok = req.addr.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
    if !port_ok {
        return Err(format!("address {:?} is not HOST:PORT", req.addr));
    }
    if req.tags.len() > 64 {
        return Err("more than 64 tags".into());
    }
    for t in &req.tags {
        crate::protocol::check_action_name(t).map_err(|e| e.to_string().replace("action name", "tag"))?;
    }
    let csr = crate::pki::csr::check_csr(&req.csr, &req.name).map_err(|e| e.to_string())?;
    if csr.binding != ours {
        return Err(crate::pki::csr::CsrError::BindingMismatch.to_string());
    }
    Ok(csr.key_type)
}

async fn connection(
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
    peer: String,
    opts: &Listen,
    prompt: Prompt,
) -> Result<(), PairingError> {
    let tls_err = |why: String| PairingError::Tls { addr: peer.clone(), why };
    let stream = tokio::time::timeout(REQUEST_LIMIT, acceptor.accept(tcp))
        .await
        .map_err(|_| tls_err("no TLS handshake within 10s".into()))?
        .map_err(|e| tls_err(e.to_string()))?;
    let ours = channel::binding(stream.get_ref().1).map_err(|e| tls_err(e.to_string()))?;
    let (r, w) = tokio::io::split(stream);
    let (mut reader, mut writer) = (FrameReader::new(r, MAX_FRAME), FrameWriter::new(w, MAX_FRAME));
    let req = match tokio::time::timeout(REQUEST_LIMIT, reader.read_value::<PairMessage>()).await {
        Ok(Ok(Some(PairMessage::Request(req)))) => req,
        Ok(Ok(Some(other))) => return Err(PairingError::Protocol(format!("{other:?}").chars().take(80).collect())),
        Ok(Ok(None)) => return Err(PairingError::Closed),
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => return Err(PairingError::Protocol("no request within 10s".into())),
    };
    let refuse = |why: String| PairMessage::Denied { reason: why };
    let key_type = match check(&req, &ours) {
        Ok(k) => k,
        Err(why) => {
            println!("refused a pairing request from {peer} for {:?}: {why}", req.name);
            writer.write_value(&refuse(why)).await?;
            writer.shutdown().await;
            return Ok(());
        }
    };
    let code = pairing_code(&req.csr);
    let new = NewRequest {
        name: req.name.clone(),
        addr: req.addr.clone(),
        tags: req.tags.clone(),
        peer: peer.clone(),
        key_type: key_type.clone(),
        code: code.clone(),
        csr_der: req.csr.clone(),
        listener: Some(std::process::id()),
    };
    let queued = match store::queue(&opts.state, new, now(), opts.expire_s) {
        Ok(q) => q,
        Err(e) => {
            writer.write_value(&refuse(e.to_string())).await?;
            writer.shutdown().await;
            return Ok(());
        }
    };
    let id = queued.id.clone();
    if prompt.is_none() {
        println!(
            "pairing request {id} from {peer}: agent {} ({key_type}) at {} tags [{}], code {code}{}; \
         approve with `muster pair approve {id}` or deny with `muster pair deny {id}`",
            req.name,
            req.addr,
            req.tags.join(","),
            if queued.replaces.is_some() { " (already paired: approve needs --replace)" } else { "" },
        );
    }
    writer.write_value(&PairMessage::Pending { id: id.clone(), code, expires_in_s: opts.expire_s }).await?;
    if let Some(p) = prompt {
        let _ = p.send(queued);
    }
    loop {
        let gone = tokio::select! {
            _ = tokio::time::sleep(POLL) => false,
            r = reader.read_value::<PairMessage>() => !matches!(r, Ok(Some(_))),
        };
        if gone {
            if store::load(&opts.state, &id)?.is_some_and(|r| r.decision == Decision::Pending) {
                store::remove(&opts.state, &id);
            }
            println!("pairing request {id} withdrawn: the agent hung up");
            return Ok(());
        }
        let answer = match store::load(&opts.state, &id)? {
            None => refuse("the request expired or was removed".into()),
            Some(r) if r.decision == Decision::Pending && now() >= r.expires => {
                store::remove(&opts.state, &id);
                refuse(format!("no decision within {}s", opts.expire_s))
            }
            Some(r) => match r.decision {
                Decision::Pending => continue,
                Decision::Denied { reason } => refuse(reason),
                Decision::Approved { cert_pem, .. } => {
                    let issuer = issuer(&opts.state)?;
                    PairMessage::Approved(PairGrant {
                        cert_pem,
                        ca_pem: issuer.ca_pem,
                        dispatcher_id: issuer.dispatcher_id,
                        dispatcher_serial: issuer.dispatcher_serial,
                    })
                }
            },
        };
        store::remove(&opts.state, &id);
        let what = if matches!(answer, PairMessage::Approved(_)) {
            "delivered the certificate"
        } else {
            "told the agent: denied"
        };
        writer.write_value(&answer).await?;
        writer.shutdown().await;
        println!("pairing request {id} ({}): {what}", req.name);
        return Ok(());
    }
}

/// Listen on `bind` and serve until `shutdown`.
pub async fn listen(opts: Listen, bind: &str, shutdown: impl Future<Output = ()>) -> Result<(), PairingError> {
    let listener =
        TcpListener::bind(bind).await.map_err(|source| PairingError::Listen { addr: bind.to_string(), source })?;
    let at = listener.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| bind.to_string());
    println!("listening for pairing requests on {at} (requests expire after {}s)", opts.expire_s);
    serve(opts, listener, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::{answer, Answer};

    #[test]
    fn only_a_clear_answer_decides() {
        assert_eq!(answer("y\n", false), Some(Answer::Approve { replace: false }));
        assert_eq!(answer(" YES ", false), Some(Answer::Approve { replace: false }));
        assert_eq!(answer("n", false), Some(Answer::Deny));
        assert_eq!(answer("No\n", true), Some(Answer::Deny));
        assert_eq!(answer("r", true), Some(Answer::Approve { replace: true }));
        for unclear in ["", "\n", "r", "replace", "yy", "ok", "q", "\u{1b}[A", "y n"] {
            assert_eq!(answer(unclear, false), None, "{unclear:?} asks again");
        }
        assert_eq!(answer("", true), None);
    }
}
