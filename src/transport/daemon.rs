//! A resident daemon as a carrier: `muster run` and `muster console` open
//! their sessions through the daemon's socket instead of dialling agents
//! themselves. One connection carries many channels; each channel is
//! handed to dispatch as an ordinary [`Session`] (an in-process byte pipe
//! whose frames are relayed as `Data` on the channel), so dispatch does
//! not know the daemon is there.

use super::carrier::{BoxFuture, BoxRead, BoxWrite, Dialer, OpenError, Reason, Session, Target};
use super::{FrameReader, FrameWriter, TransportError};
use crate::protocol::daemon::{DaemonFrame, LinkInfo, Via, DAEMON_VERSION};
use crate::protocol::{Hello, Message, DEFAULT_MAX_FRAME};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};

const MAX_FRAME: usize = DEFAULT_MAX_FRAME + 4096;
/// How long opening a channel may take (the daemon may install an agent).
const OPEN_LIMIT: Duration = Duration::from_secs(120);

enum Chan {
    Opening(oneshot::Sender<Result<Hello, OpenError>>),
    Open(mpsc::Sender<Message>),
}

/// A connection to a daemon.
pub struct DaemonClient {
    tx: mpsc::Sender<DaemonFrame>,
    chans: Arc<Mutex<HashMap<u32, Chan>>>,
    status: Arc<Mutex<Option<oneshot::Sender<Vec<LinkInfo>>>>>,
    next: AtomicU32,
    /// How the daemon should reach targets, and whether it may install agents.
    pub via: Via,
    pub install: bool,
    /// The daemon's name and pid, from its Welcome.
    pub daemon: String,
    pub pid: u32,
}

impl DaemonClient {
    /// Greet the daemon on `stream` and start relaying.
    pub async fn connect<S>(
        stream: S,
        client: &str,
        user: &str,
        via: Via,
        install: bool,
    ) -> Result<DaemonClient, TransportError>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (r, w) = tokio::io::split(stream);
        let mut reader = FrameReader::new(r, MAX_FRAME);
        let mut writer = FrameWriter::new(w, MAX_FRAME);
        writer
            .write_value(&DaemonFrame::Hello { version: DAEMON_VERSION, client: client.into(), user: user.into() })
            .await?;
        let (daemon, pid) = match tokio::time::timeout(Duration::from_secs(5), reader.read_value::<DaemonFrame>()).await
        {
            Ok(Ok(Some(DaemonFrame::Welcome { daemon, pid, .. }))) => (daemon, pid),
            Ok(Ok(Some(DaemonFrame::Error { message }))) => return Err(TransportError::PeerError(message)),
            Ok(Ok(_)) => return Err(TransportError::NoHello),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(TransportError::Timeout(Duration::from_secs(5), "waiting for the daemon's welcome")),
        };
        let (tx, mut rx) = mpsc::channel::<DaemonFrame>(1024);
        tokio::spawn(async move {
            while let Some(f) = rx.recv().await {
                if writer.write_value(&f).await.is_err() {
                    break;
                }
            }
            writer.shutdown().await;
        });
        let chans: Arc<Mutex<HashMap<u32, Chan>>> = Arc::default();
        let status: Arc<Mutex<Option<oneshot::Sender<Vec<LinkInfo>>>>> = Arc::default();
        let (c, st) = (chans.clone(), status.clone());
        tokio::spawn(async move {
            while let Ok(Some(f)) = reader.read_value::<DaemonFrame>().await {
                relay(&c, &st, f).await;
            }
            // The daemon is gone: every channel ends.
            if let Ok(mut map) = c.lock() {
                map.clear();
            }
        });
        Ok(DaemonClient { tx, chans, status, next: AtomicU32::new(1), via, install, daemon, pid })
    }

    /// The links the daemon holds.
    pub async fn status(&self) -> Option<Vec<LinkInfo>> {
        let (tx, rx) = oneshot::channel();
        *self.status.lock().ok()? = Some(tx);
        self.tx.send(DaemonFrame::Status).await.ok()?;
        tokio::time::timeout(Duration::from_secs(5), rx).await.ok()?.ok()
    }

    async fn open_chan(&self, target: &Target) -> Result<Session, OpenError> {
        let chan = self.next.fetch_add(1, Ordering::AcqRel);
        let (otx, orx) = oneshot::channel();
        if let Ok(mut c) = self.chans.lock() {
            c.insert(chan, Chan::Opening(otx));
        }
        let gone = || OpenError::Unreachable(Reason::new("daemon gone", "the daemon closed the connection"));
        let open = DaemonFrame::Open {
            chan,
            name: target.name.clone(),
            addr: target.addr.clone(),
            via: self.via,
            install: self.install,
        };
        self.tx.send(open).await.map_err(|_| gone())?;
        let hello = match tokio::time::timeout(OPEN_LIMIT, orx).await {
            Ok(Ok(r)) => r?,
            Ok(Err(_)) => return Err(gone()),
            Err(_) => {
                return Err(OpenError::Unreachable(Reason::new(
                    "no answer",
                    "the daemon did not open the channel in time",
                )))
            }
        };
        let (ours, theirs) = tokio::io::duplex(256 * 1024);
        let (sr, sw) = tokio::io::split(ours);
        let (pr, pw) = tokio::io::split(theirs);
        let (mtx, mut mrx) = mpsc::channel::<Message>(256);
        if let Ok(mut c) = self.chans.lock() {
            c.insert(chan, Chan::Open(mtx));
        }
        // Session writes -> Data frames to the daemon; its end -> Close.
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let mut from_session = FrameReader::new(pr, DEFAULT_MAX_FRAME);
            while let Ok(Some(msg)) = from_session.read().await {
                if tx.send(DaemonFrame::Data { chan, msg }).await.is_err() {
                    return;
                }
            }
            let _ = tx.send(DaemonFrame::Close { chan }).await;
        });
        // Data frames from the daemon -> the session's reader; Closed -> its EOF.
        tokio::spawn(async move {
            let mut to_session = FrameWriter::new(pw, DEFAULT_MAX_FRAME);
            while let Some(m) = mrx.recv().await {
                if to_session.write(&m).await.is_err() {
                    break;
                }
            }
            to_session.shutdown().await;
        });
        Ok(Session {
            reader: FrameReader::new(Box::new(sr) as BoxRead, DEFAULT_MAX_FRAME),
            writer: FrameWriter::new(Box::new(sw) as BoxWrite, DEFAULT_MAX_FRAME),
            peer: hello,
        })
    }
}

async fn relay(
    chans: &Mutex<HashMap<u32, Chan>>,
    status: &Mutex<Option<oneshot::Sender<Vec<LinkInfo>>>>,
    f: DaemonFrame,
) {
    match f {
        DaemonFrame::Opened { chan, hello } => {
            if let Some(Chan::Opening(tx)) = chans.lock().ok().and_then(|mut c| c.remove(&chan)) {
                let _ = tx.send(Ok(hello));
            }
        }
        DaemonFrame::OpenFailed { chan, unreachable, kind, detail } => {
            if let Some(Chan::Opening(tx)) = chans.lock().ok().and_then(|mut c| c.remove(&chan)) {
                let r = Reason::new(kind, detail);
                let _ = tx.send(Err(if unreachable { OpenError::Unreachable(r) } else { OpenError::Refused(r) }));
            }
        }
        DaemonFrame::Data { chan, msg } => {
            let tx = chans.lock().ok().and_then(|c| match c.get(&chan) {
                Some(Chan::Open(tx)) => Some(tx.clone()),
                _ => None,
            });
            if let Some(tx) = tx {
                let _ = tx.send(msg).await;
            }
        }
        DaemonFrame::Closed { chan, .. } => {
            if let Ok(mut c) = chans.lock() {
                c.remove(&chan);
            }
        }
        DaemonFrame::StatusReply { links } => {
            if let Some(tx) = status.lock().ok().and_then(|mut s| s.take()) {
                let _ = tx.send(links);
            }
        }
        _ => {}
    }
}

impl Dialer for DaemonClient {
    fn open<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, Result<Session, OpenError>> {
        Box::pin(self.open_chan(target))
    }
}
