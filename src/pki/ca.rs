//! The dispatcher's private certificate authority. `init_ca` creates the CA
//! and the dispatcher's own client certificate under the state dir; the
//! `issue_*` functions sign fresh agent and dispatcher certificates with it,
//! taking serial numbers from a counter file guarded by an exclusive file
//! lock so that concurrent issuers never hand out the same serial.

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
    SerialNumber,
};
use time::OffsetDateTime;

use super::policy::{
    check_agent_name, check_dispatcher_id, common_name, not_after, now_utc, rfc3339, san_for, BACKDATE,
};
use super::store::{lock_serial, next_serial, read_text, write, write_identity, write_serial, Layout};
use super::{cert_not_after, certs_from_pem, key_matches_cert, PkiError};

/// Validity of issued certificates when the user does not choose one.
pub const DEFAULT_CERT_DAYS: u32 = 365;

const CA_DAYS: u32 = 3650;
const CA_SERIAL: u64 = 1;
const FIRST_LEAF_SERIAL: u64 = 0x1000;

/// The dispatcher's own identity, as written by [`init_ca`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatcherIdentity {
    pub id: String,
    /// Lowercase hex, no `0x`, no leading zeros.
    pub serial: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// A freshly issued certificate and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCert {
    pub key_pem: String,
    pub cert_pem: String,
    /// Lowercase hex, no `0x`, no leading zeros.
    pub serial: String,
    /// RFC 3339, UTC.
    pub not_after: String,
}

/// A loaded CA, ready to sign.
struct Ca {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
    not_after: OffsetDateTime,
}

/// What kind of leaf certificate to issue.
#[derive(Clone, Copy)]
enum Role {
    Agent,
    Dispatcher,
}

/// Create the CA (self-signed, CN "muster CA", valid 10 years) and the
/// dispatcher's own client certificate (CN = `dispatcher_id`, valid `days`).
/// Refuses if `state/ca/ca.crt` already exists.
pub fn init_ca(state: &Path, dispatcher_id: &str, days: u32) -> Result<DispatcherIdentity, PkiError> {
    let layout = Layout::new(state);
    check_dispatcher_id(dispatcher_id)?;
    not_after(now_utc(), days)?;
    fs::create_dir_all(state).map_err(|e| PkiError::io("create state directory", state, e))?;
    match fs::DirBuilder::new().mode(0o700).create(&layout.ca_dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            return Err(PkiError::io("create CA directory", &layout.ca_dir, e));
        }
        _ => {}
    }
    // Held for the whole initialisation, so two concurrent inits cannot both succeed.
    let _lock = lock_serial(&layout)?;
    if exists(&layout.ca_crt())? {
        return Err(PkiError::CaExists { dir: layout.ca_dir });
    }

    let now = now_utc();
    let ca_not_after = not_after(now, CA_DAYS)?;
    let ca_key = generate_key()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = common_name("muster CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.serial_number = Some(SerialNumber::from(CA_SERIAL));
    params.not_before = now - BACKDATE;
    params.not_after = ca_not_after;
    let ca_cert = params.self_signed(&ca_key).map_err(|e| PkiError::crypto("self-sign the CA certificate", e))?;
    let ca_key_pem = ca_key.serialize_pem();
    let ca = Ca { dir: layout.ca_dir.clone(), issuer: Issuer::new(params, ca_key), not_after: ca_not_after };
    let issued = sign_leaf(&ca, Role::Dispatcher, dispatcher_id, days, FIRST_LEAF_SERIAL)?;

    // ca.crt goes last: its presence means the CA is complete and usable.
    write(&layout.ca_key(), ca_key_pem.as_bytes(), true)?;
    write_serial(&layout.serial(), FIRST_LEAF_SERIAL + 1)?;
    write(&layout.dispatcher_key(), issued.key_pem.as_bytes(), true)?;
    write(&layout.dispatcher_crt(), issued.cert_pem.as_bytes(), false)?;
    write_identity(&layout, dispatcher_id, &issued.serial)?;
    write(&layout.ca_crt(), ca_cert.pem().as_bytes(), false)?;

    Ok(DispatcherIdentity {
        id: dispatcher_id.to_string(),
        serial: issued.serial,
        cert_pem: issued.cert_pem,
        key_pem: issued.key_pem,
    })
}

/// Create this dispatcher's identity from a CA that already exists in
/// `ca_dir` (another dispatcher's state dir `ca/`, shared): `state/ca`
/// becomes a link to it, so both dispatchers draw serials from the one
/// counter under its lock. Several dispatchers of one fleet then chain to
/// one CA root, as seed 002's multi-dispatcher model requires.
pub fn init_from_ca(
    state: &Path,
    ca_dir: &Path,
    dispatcher_id: &str,
    days: u32,
) -> Result<DispatcherIdentity, PkiError> {
    check_dispatcher_id(dispatcher_id)?;
    let layout = Layout::new(state);
    let ca_dir = fs::canonicalize(ca_dir).map_err(|e| PkiError::io("find the CA directory", ca_dir, e))?;
    if !exists(&ca_dir.join("ca.crt"))? {
        return Err(PkiError::NoCa { dir: ca_dir });
    }
    if exists(&layout.dispatcher_json())? || fs::symlink_metadata(&layout.ca_dir).is_ok() {
        return Err(PkiError::CaExists { dir: layout.ca_dir });
    }
    fs::create_dir_all(state).map_err(|e| PkiError::io("create state directory", state, e))?;
    std::os::unix::fs::symlink(&ca_dir, &layout.ca_dir)
        .map_err(|e| PkiError::io("link the CA into", &layout.ca_dir, e))?;
    let issued = issue(state, Role::Dispatcher, dispatcher_id, days)?;
    write(&layout.dispatcher_key(), issued.key_pem.as_bytes(), true)?;
    write(&layout.dispatcher_crt(), issued.cert_pem.as_bytes(), false)?;
    write_identity(&layout, dispatcher_id, &issued.serial)?;
    Ok(DispatcherIdentity {
        id: dispatcher_id.to_string(),
        serial: issued.serial,
        cert_pem: issued.cert_pem,
        key_pem: issued.key_pem,
    })
}

/// Make `cert` (issued for this dispatcher's id) its identity: the current
/// key and certificate are kept as `dispatcher.prev.{key,crt}` (the
/// rotation overlap still needs them), then the new ones and
/// `dispatcher.json` are written.
pub fn switch_dispatcher(state: &Path, id: &str, cert: &IssuedCert) -> Result<(), PkiError> {
    let layout = Layout::new(state);
    let _lock = super::store::lock_identity(state, true)?;
    let (key, crt) = (layout.dispatcher_key(), layout.dispatcher_crt());
    write(&state.join("dispatcher.prev.key"), read_text(&key)?.as_bytes(), true)?;
    write(&state.join("dispatcher.prev.crt"), read_text(&crt)?.as_bytes(), false)?;
    write(&key, cert.key_pem.as_bytes(), true)?;
    write(&crt, cert.cert_pem.as_bytes(), false)?;
    write_identity(&layout, id, &cert.serial)
}

/// Issue an agent server certificate (CN and SAN = `name`, server and client
/// auth) signed by the CA in `state/ca`, with a fresh key and the next serial.
pub fn issue_agent(state: &Path, name: &str, days: u32) -> Result<IssuedCert, PkiError> {
    issue(state, Role::Agent, name, days)
}

/// Issue another dispatcher client certificate from the same CA and counter.
pub fn issue_dispatcher(state: &Path, id: &str, days: u32) -> Result<IssuedCert, PkiError> {
    issue(state, Role::Dispatcher, id, days)
}

fn issue(state: &Path, role: Role, name: &str, days: u32) -> Result<IssuedCert, PkiError> {
    match role {
        Role::Agent => check_agent_name(name)?,
        Role::Dispatcher => check_dispatcher_id(name)?,
    }
    let layout = Layout::new(state);
    let ca = load_ca(&layout)?;
    // Fail on a bad request before spending a serial on it.
    check_within_ca(&ca, not_after(now_utc(), days)?, days)?;
    let serial = next_serial(&layout)?;
    sign_leaf(&ca, role, name, days, serial)
}

fn load_ca(layout: &Layout) -> Result<Ca, PkiError> {
    let crt_path = layout.ca_crt();
    if !exists(&crt_path)? {
        return Err(PkiError::NoCa { dir: layout.ca_dir.clone() });
    }
    let cert_pem = read_text(&crt_path)?;
    let key_pem = read_text(&layout.ca_key())?;
    let key =
        KeyPair::from_pem(&key_pem).map_err(|e| PkiError::crypto(format!("parse {}", layout.ca_key().display()), e))?;
    let certs = certs_from_pem(cert_pem.as_bytes(), &crt_path.display().to_string())?;
    if !key_matches_cert(&key, &certs[0])? {
        return Err(PkiError::KeyMismatch { key: layout.ca_key(), cert: crt_path });
    }
    let not_after = cert_not_after(&certs[0])?;
    let issuer = Issuer::from_ca_cert_der(&certs[0], key)
        .map_err(|e| PkiError::crypto(format!("use {} as issuer", crt_path.display()), e))?;
    Ok(Ca { dir: layout.ca_dir.clone(), issuer, not_after })
}

/// The certificate parameters of a leaf for `name`: CN, SAN, usages, serial, validity.
fn leaf_params(ca: &Ca, role: Role, name: &str, days: u32, serial: u64) -> Result<CertificateParams, PkiError> {
    let now = now_utc();
    let expires = not_after(now, days)?;
    check_within_ca(ca, expires, days)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = common_name(name);
    params.subject_alt_names = match (role, san_for(name)) {
        // A dispatcher id gets a SAN only when it is a DNS name.
        (Role::Dispatcher, Some(SanType::IpAddress(_))) | (_, None) => vec![],
        (_, Some(san)) => vec![san],
    };
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = match role {
        Role::Agent => vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth],
        Role::Dispatcher => vec![ExtendedKeyUsagePurpose::ClientAuth],
    };
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(SerialNumber::from(serial));
    params.not_before = now - BACKDATE;
    params.not_after = expires;
    Ok(params)
}

fn sign_leaf(ca: &Ca, role: Role, name: &str, days: u32, serial: u64) -> Result<IssuedCert, PkiError> {
    let params = leaf_params(ca, role, name, days, serial)?;
    let key = generate_key()?;
    let cert = params
        .signed_by(&key, &ca.issuer)
        .map_err(|e| PkiError::crypto(format!("sign a certificate for {name:?}"), e))?;
    Ok(IssuedCert {
        key_pem: key.serialize_pem(),
        cert_pem: cert.pem(),
        serial: format!("{serial:x}"),
        not_after: rfc3339(params.not_after),
    })
}

/// Issue an agent certificate for the public key of a checked CSR (from
/// pairing or renewal); the CSR's own extensions are ignored: the name,
/// usages and validity are the CA's. `key_pem` of the result is empty.
pub fn issue_agent_from_csr(
    state: &Path,
    name: &str,
    csr: &super::csr::CheckedCsr,
    days: u32,
) -> Result<IssuedCert, PkiError> {
    check_agent_name(name)?;
    let layout = Layout::new(state);
    let ca = load_ca(&layout)?;
    check_within_ca(&ca, not_after(now_utc(), days)?, days)?;
    let serial = next_serial(&layout)?;
    let params = leaf_params(&ca, Role::Agent, name, days, serial)?;
    let request = rcgen::CertificateSigningRequestParams { params, public_key: csr.request.public_key.clone() };
    let cert =
        request.signed_by(&ca.issuer).map_err(|e| PkiError::crypto(format!("sign a certificate for {name:?}"), e))?;
    Ok(IssuedCert {
        key_pem: String::new(),
        cert_pem: cert.pem(),
        serial: format!("{serial:x}"),
        not_after: rfc3339(request.params.not_after),
    })
}

fn exists(path: &Path) -> Result<bool, PkiError> {
    path.try_exists().map_err(|e| PkiError::io("check for", path, e))
}

fn generate_key() -> Result<KeyPair, PkiError> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| PkiError::crypto("generate an ECDSA P-256 key", e))
}

fn check_within_ca(ca: &Ca, expires: OffsetDateTime, days: u32) -> Result<(), PkiError> {
    if expires > ca.not_after {
        return Err(PkiError::InvalidDays {
            days,
            reason: format!(
                "it would outlive the CA in {}, which expires {}; use fewer days",
                ca.dir.display(),
                rfc3339(ca.not_after)
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{cert_serial_hex, load_dispatcher};
    use std::os::unix::fs::PermissionsExt;
    use x509_parser::extensions::GeneralName;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn parse(pem: &str) -> Vec<u8> {
        super::super::parse_certs_pem(pem).unwrap()[0].to_vec()
    }

    #[test]
    fn init_writes_every_file_with_the_right_modes() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path();
        let ident = init_ca(state, "dispatch-1", DEFAULT_CERT_DAYS).unwrap();
        let l = Layout::new(state);
        for p in [l.ca_key(), l.dispatcher_key()] {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
        for p in [l.ca_crt(), l.serial(), l.dispatcher_crt(), l.dispatcher_json()] {
            assert!(p.is_file(), "{}", p.display());
        }
        assert_eq!(mode(&l.ca_dir), 0o700);
        assert_eq!(fs::read_to_string(l.serial()).unwrap(), "1001\n");
        assert_eq!(ident.id, "dispatch-1");
        assert_eq!(ident.serial, "1000");
        let json: serde_json::Value = serde_json::from_str(&fs::read_to_string(l.dispatcher_json()).unwrap()).unwrap();
        assert_eq!(json["id"], "dispatch-1");
        assert_eq!(json["serial"], "1000");
        assert_eq!(load_dispatcher(state).unwrap(), ident);

        let ca_der = parse(&fs::read_to_string(l.ca_crt()).unwrap());
        assert_eq!(cert_serial_hex(&ca_der).unwrap(), "1");
        let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
        assert!(ca.is_ca());
        let ku = ca.key_usage().unwrap().unwrap().value;
        assert!(ku.key_cert_sign() && ku.crl_sign());
        let years = (ca.validity().not_after.timestamp() - ca.validity().not_before.timestamp()) / (365 * 86400);
        assert_eq!(years, 10);

        let d_der = parse(&ident.cert_pem);
        let (_, d) = x509_parser::parse_x509_certificate(&d_der).unwrap();
        let eku = d.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        assert_eq!(d.issuer(), ca.subject());
    }

    #[test]
    fn init_twice_refuses() {
        let dir = tempfile::tempdir().unwrap();
        init_ca(dir.path(), "d", 30).unwrap();
        let before = fs::read(dir.path().join("ca/ca.key")).unwrap();
        let err = init_ca(dir.path(), "d", 30).unwrap_err();
        assert!(matches!(err, PkiError::CaExists { .. }), "{err}");
        assert!(err.to_string().contains("refusing to overwrite"), "{err}");
        assert_eq!(fs::read(dir.path().join("ca/ca.key")).unwrap(), before);
    }

    #[test]
    fn issued_serials_increase_and_match_the_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path();
        init_ca(state, "d", 30).unwrap();
        let a = issue_agent(state, "web1", 30).unwrap();
        let b = issue_agent(state, "web1", 30).unwrap();
        assert_eq!((a.serial.as_str(), b.serial.as_str()), ("1001", "1002"));
        assert_eq!(cert_serial_hex(&parse(&a.cert_pem)).unwrap(), a.serial);
        assert_eq!(cert_serial_hex(&parse(&b.cert_pem)).unwrap(), b.serial);
        assert_ne!(a.key_pem, b.key_pem);
        let c = issue_dispatcher(state, "second dispatcher", 30).unwrap();
        assert_eq!(c.serial, "1003");
        assert_eq!(fs::read_to_string(state.join("ca/serial")).unwrap(), "1004\n");

        let der = parse(&a.cert_pem);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
        let san = cert.subject_alternative_name().unwrap().unwrap().value;
        assert_eq!(san.general_names, vec![GeneralName::DNSName("web1")]);
        assert_eq!(rfc3339(cert.validity().not_after.to_datetime()), a.not_after);
        assert!(a.not_after.ends_with('Z') && a.not_after.len() == 20, "{}", a.not_after);
    }

    #[test]
    fn errors_say_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path();
        let err = issue_agent(state, "web1", 30).unwrap_err();
        assert!(err.to_string().contains("run `muster ca init` first"), "{err}");
        let err = load_dispatcher(state).unwrap_err();
        assert!(matches!(err, PkiError::NoDispatcher { .. }), "{err}");
        assert!(matches!(init_ca(state, "", 30).unwrap_err(), PkiError::InvalidName { .. }));

        init_ca(state, "d", 30).unwrap();
        for days in [0, CA_DAYS + 1, u32::MAX] {
            let err = issue_agent(state, "web1", days).unwrap_err();
            assert!(matches!(err, PkiError::InvalidDays { .. }), "{err}");
        }
        let err = issue_agent(state, "a..b", 30).unwrap_err();
        assert!(matches!(err, PkiError::InvalidName { .. }), "{err}");
        // Rejected requests did not consume serials.
        assert_eq!(issue_agent(state, "10.0.0.7", 30).unwrap().serial, "1001");

        fs::write(state.join("ca/serial"), "zz\n").unwrap();
        let err = issue_agent(state, "web1", 30).unwrap_err();
        assert!(matches!(err, PkiError::BadSerialFile { .. }), "{err}");

        fs::copy(state.join("dispatcher.key"), state.join("ca/ca.key")).unwrap();
        let err = issue_agent(state, "web1", 30).unwrap_err();
        assert!(matches!(err, PkiError::KeyMismatch { .. }), "{err}");
    }
}
