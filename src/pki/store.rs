//! Files under a dispatcher state dir: their layout, the dispatcher's
//! identity (`dispatcher.json` and its PEM files), and the serial counter.
//! `state/ca/serial` holds the next serial as lowercase hex; it is read,
//! advanced and rewritten only while holding an exclusive lock on
//! `state/ca/serial.lock`, so concurrent issuers (threads or processes)
//! never hand out the same serial.

use std::fs;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::KeyPair;
use serde::{Deserialize, Serialize};

use super::{cert_serial_hex, certs_from_pem, key_from_pem, key_matches_cert};
use super::{DispatcherIdentity, PkiError};
use crate::fsutil;

/// Paths of the files under a state dir.
pub(super) struct Layout {
    pub(super) state: PathBuf,
    pub(super) ca_dir: PathBuf,
}

impl Layout {
    pub(super) fn new(state: &Path) -> Self {
        Layout { state: state.to_path_buf(), ca_dir: state.join("ca") }
    }
    pub(super) fn ca_key(&self) -> PathBuf {
        self.ca_dir.join("ca.key")
    }
    pub(super) fn ca_crt(&self) -> PathBuf {
        self.ca_dir.join("ca.crt")
    }
    pub(super) fn serial(&self) -> PathBuf {
        self.ca_dir.join("serial")
    }
    pub(super) fn serial_lock(&self) -> PathBuf {
        self.ca_dir.join("serial.lock")
    }
    pub(super) fn dispatcher_key(&self) -> PathBuf {
        self.state.join("dispatcher.key")
    }
    pub(super) fn dispatcher_crt(&self) -> PathBuf {
        self.state.join("dispatcher.crt")
    }
    pub(super) fn dispatcher_json(&self) -> PathBuf {
        self.state.join("dispatcher.json")
    }
}

/// On-disk form of `state/dispatcher.json`.
#[derive(Serialize, Deserialize)]
struct IdentityFile {
    id: String,
    serial: String,
}

/// Write `state/dispatcher.json`.
pub(super) fn write_identity(layout: &Layout, id: &str, serial: &str) -> Result<(), PkiError> {
    let ident = IdentityFile { id: id.to_string(), serial: serial.to_string() };
    let mut json = serde_json::to_string_pretty(&ident)
        .map_err(|e| PkiError::BadIdentity { dir: layout.state.clone(), detail: e.to_string() })?;
    json.push('\n');
    write(&layout.dispatcher_json(), json.as_bytes(), false)
}

/// Load the dispatcher identity written by [`init_ca`](super::init_ca).
pub fn load_dispatcher(state: &Path) -> Result<DispatcherIdentity, PkiError> {
    let layout = Layout::new(state);
    let _lock = if state.join("dispatcher.json").exists() { Some(lock_identity(state, false)?) } else { None };
    let bad = |detail: String| PkiError::BadIdentity { dir: state.to_path_buf(), detail };
    let json_path = layout.dispatcher_json();
    let json = match fs::read_to_string(&json_path) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(PkiError::NoDispatcher { dir: state.to_path_buf() })
        }
        Err(e) => return Err(PkiError::io("read", &json_path, e)),
    };
    let ident: IdentityFile = serde_json::from_str(&json).map_err(|e| bad(format!("{}: {e}", json_path.display())))?;
    let (crt_path, key_path) = (layout.dispatcher_crt(), layout.dispatcher_key());
    let cert_pem = read_text(&crt_path)?;
    let key_pem = read_text(&key_path)?;
    let certs = certs_from_pem(cert_pem.as_bytes(), &crt_path.display().to_string())?;
    let serial = cert_serial_hex(&certs[0])?;
    if serial != ident.serial {
        return Err(bad(format!(
            "dispatcher.json names serial {} but dispatcher.crt has serial {serial}",
            ident.serial
        )));
    }
    key_from_pem(key_pem.as_bytes(), &key_path.display().to_string())?;
    let key = KeyPair::from_pem(&key_pem).map_err(|e| PkiError::crypto(format!("parse {}", key_path.display()), e))?;
    if !key_matches_cert(&key, &certs[0])? {
        return Err(PkiError::KeyMismatch { key: key_path, cert: crt_path });
    }
    Ok(DispatcherIdentity { id: ident.id, serial, cert_pem, key_pem })
}

/// Take the next serial from the counter, under the exclusive lock.
pub(super) fn next_serial(layout: &Layout) -> Result<u64, PkiError> {
    let _lock = lock_serial(layout)?;
    let path = layout.serial();
    let bad = |detail: String| PkiError::BadSerialFile { path: path.clone(), detail };
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(bad("it is missing".into())),
        Err(e) => return Err(PkiError::io("read", &path, e)),
    };
    let digits = text.trim();
    let serial = u64::from_str_radix(digits, 16).map_err(|e| bad(format!("{digits:?} is not a hex number: {e}")))?;
    if serial == 0 {
        return Err(bad("serial 0 is not allowed".into()));
    }
    let next = serial.checked_add(1).ok_or_else(|| bad("the counter is exhausted".into()))?;
    // Advance before signing: a crash afterwards wastes a serial but never reuses one.
    write_serial(&path, next)?;
    Ok(serial)
}

/// Open and exclusively lock `ca/serial.lock`; the lock ends when the file is dropped.
/// A lock on the dispatcher's identity files (key, certificate,
/// `dispatcher.json`): shared while one process reads them, exclusive while
/// a rotation replaces them, so no reader ever sees a half-switched set.
pub(crate) fn lock_identity(state: &Path, exclusive: bool) -> Result<fs::File, PkiError> {
    let path = state.join("identity.lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| PkiError::io("open lock file", &path, e))?;
    let locked = if exclusive { file.lock() } else { file.lock_shared() };
    locked.map_err(|e| PkiError::io("lock", &path, e))?;
    Ok(file)
}

pub(super) fn lock_serial(layout: &Layout) -> Result<fs::File, PkiError> {
    let path = layout.serial_lock();
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| PkiError::io("open lock file", &path, e))?;
    file.lock().map_err(|e| PkiError::io("lock", &path, e))?;
    Ok(file)
}

pub(super) fn write_serial(path: &Path, next: u64) -> Result<(), PkiError> {
    write(path, format!("{next:x}\n").as_bytes(), false)
}

pub(super) fn write(path: &Path, bytes: &[u8], secret: bool) -> Result<(), PkiError> {
    let result = if secret { fsutil::write_secret(path, bytes) } else { fsutil::write_public(path, bytes) };
    result.map_err(|e| PkiError::io("write", path, e))
}

pub(super) fn read_text(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|e| PkiError::io("read", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{init_ca, issue_agent};
    use std::collections::HashSet;

    #[test]
    fn concurrent_issuers_never_share_a_serial() {
        let dir = tempfile::tempdir().unwrap();
        init_ca(dir.path(), "d", 30).unwrap();
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let state = dir.path().to_path_buf();
                std::thread::spawn(move || {
                    (0..4).map(|_| issue_agent(&state, "web1", 30).unwrap().serial).collect::<Vec<_>>()
                })
            })
            .collect();
        let serials: HashSet<String> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
        assert_eq!(serials.len(), 32);
    }

    #[test]
    fn a_bad_counter_is_reported_not_reset() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        init_ca(dir.path(), "d", 30).unwrap();
        for (text, detail) in [("zz\n", "not a hex number"), ("0\n", "serial 0")] {
            fs::write(layout.serial(), text).unwrap();
            let err = next_serial(&layout).unwrap_err();
            assert!(matches!(err, PkiError::BadSerialFile { .. }), "{err}");
            assert!(err.to_string().contains(detail), "{err}");
            assert_eq!(fs::read_to_string(layout.serial()).unwrap(), text);
        }
        fs::write(layout.serial(), "ffffffffffffffff\n").unwrap();
        assert!(next_serial(&layout).unwrap_err().to_string().contains("exhausted"));
        fs::remove_file(layout.serial()).unwrap();
        assert!(next_serial(&layout).unwrap_err().to_string().contains("missing"));
        fs::write(layout.serial(), "abc\n").unwrap();
        assert_eq!(next_serial(&layout).unwrap(), 0xabc);
        assert_eq!(fs::read_to_string(layout.serial()).unwrap(), "abd\n");
    }
}
