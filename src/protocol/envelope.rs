//! Hub envelopes (first step of the Redis hub): a command is signed by the
//! station's ed25519 key and sealed with crypto_box (X25519 +
//! XSalsa20-Poly1305, libsodium-compatible) from a fresh ephemeral key to
//! the network key all agents share; a reply is sealed by an agent from the
//! network key to that ephemeral key and echoes the command's challenge.
//! Plaintexts are padded to size buckets so a reader of Redis learns only a
//! coarse size. Pure: the caller supplies all randomness ([`Fresh`]).

use super::message::{Message, Run};
use crypto_box::aead::Aead;
use crypto_box::{PublicKey, SalsaBox, SecretKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use thiserror::Error;

const SIG_DOMAIN: &[u8] = b"muster-hub-command-v1";
pub const ENVELOPE_VERSION: u8 = 2;
/// Smallest padding bucket; buckets grow by 4x.
const MIN_BUCKET: usize = 256;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("envelope of {len} bytes exceeds the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("not a muster hub envelope: {0}")]
    Malformed(String),
    #[error("envelope version {0} is not supported (this muster speaks {ENVELOPE_VERSION})")]
    Version(u8),
    #[error("cannot decrypt: sealed to another key or tampered with")]
    Decrypt,
    #[error("bad station signature: not signed by the trusted station key")]
    Signature,
    #[error("reply does not echo this request's challenge")]
    Challenge,
}

/// What a station asks of every matching agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub station: String,
    pub seq: u64,
    pub challenge: [u8; 32],
    /// Agents must carry every tag; empty = all.
    pub tags: Vec<String>,
    /// When non-empty, only these agent identities run it.
    pub agents: Vec<String>,
    /// Redis list the replies go to.
    pub reply_to: String,
    /// At most this many agents run at once across the hub; 0 = no limit.
    pub fanout: u32,
    /// How long an agent waits for a run slot before refusing busy.
    pub slot_wait_ms: u64,
    /// While it holds a `Run` (waiting for a slot or running), the agent
    /// replies `Pong { id: 0 }` this often, so the station tells a long
    /// quiet action from a dead agent; 0 = never. (Envelope version 2.)
    pub heartbeat_ms: u64,
    pub order: Order,
}

/// What a command asks the matching agents to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Order {
    /// Run an action; replies go to the command's `reply_to`.
    Run(Run),
    /// Cancel the running request with this fleet request id (Ctrl-C on
    /// the station): TERM to its process group, KILL after the grace.
    Cancel { request_id: String },
    /// Do not start the request with this id if it still waits for a run
    /// slot (the station's error budget is spent); answer refused `skipped`.
    Stop { request_id: String },
}

/// One reply from one agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub challenge: [u8; 32],
    pub agent: String,
    /// The agent's tags, so the station's discovery knows which runs it
    /// should have answered.
    pub tags: Vec<String>,
    /// Rises with every reply of one agent to one command.
    pub seq: u64,
    pub message: Message,
}

/// Randomness for one command, drawn by the caller.
pub struct Fresh {
    pub ephemeral: [u8; 32],
    pub nonce: [u8; 24],
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    version: u8,
    ephemeral: [u8; 32],
    nonce: [u8; 24],
    sealed: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Signed {
    body: Vec<u8>,
    sig: Vec<u8>,
}

fn bucket(len: usize) -> usize {
    let mut b = MIN_BUCKET;
    while b < len {
        b = b.saturating_mul(4);
    }
    b
}

/// `len (u32 BE) || data || zeros` up to the bucket size.
fn pad(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bucket(data.len() + 4));
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
    out.resize(bucket(data.len() + 4), 0);
    out
}

fn unpad(p: &[u8]) -> Result<&[u8], EnvelopeError> {
    let len = p.get(..4).map(|h| u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize);
    match len {
        Some(n) if n <= p.len() - 4 => Ok(&p[4..4 + n]),
        _ => Err(EnvelopeError::Malformed("bad padding".into())),
    }
}

fn decode<T: for<'a> Deserialize<'a>>(b: &[u8]) -> Result<T, EnvelopeError> {
    postcard::from_bytes(b).map_err(|e| EnvelopeError::Malformed(e.to_string()))
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, EnvelopeError> {
    postcard::to_allocvec(v).map_err(|e| EnvelopeError::Malformed(e.to_string()))
}

fn open_envelope(bytes: &[u8], max: usize) -> Result<Envelope, EnvelopeError> {
    if bytes.len() > max {
        return Err(EnvelopeError::TooLarge { len: bytes.len(), max });
    }
    let env: Envelope = decode(bytes)?;
    if env.version != ENVELOPE_VERSION {
        return Err(EnvelopeError::Version(env.version));
    }
    Ok(env)
}

/// Sign and seal a command for every holder of the network key.
pub fn seal_command(
    station: &SigningKey,
    network: &PublicKey,
    cmd: &Command,
    fresh: &Fresh,
) -> Result<Vec<u8>, EnvelopeError> {
    let eph_pub = SecretKey::from(fresh.ephemeral).public_key();
    let inner = signed_plaintext(station, &eph_pub, &encode(cmd)?)?;
    seal_command_plaintext(network, &inner, fresh)
}

/// The padded plaintext of a command envelope: `body` (any bytes; a real
/// command is its postcard encoding) signed by `station` over the domain
/// tag and `ephemeral` (the public half of `Fresh::ephemeral`). Exposed so
/// fuzzing can put arbitrary bodies behind a valid signature.
#[doc(hidden)]
pub fn signed_plaintext(station: &SigningKey, ephemeral: &PublicKey, body: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
    let mut signed_bytes = SIG_DOMAIN.to_vec();
    signed_bytes.extend_from_slice(ephemeral.as_bytes());
    signed_bytes.extend_from_slice(body);
    let sig = station.sign(&signed_bytes).to_bytes().to_vec();
    Ok(pad(&encode(&Signed { body: body.to_vec(), sig })?))
}

/// Seal `plaintext` exactly as given (no padding or signature added) from
/// `fresh.ephemeral` to the network key: what any holder of the network
/// public key can put on the channel. Exposed for fuzzing.
#[doc(hidden)]
pub fn seal_command_plaintext(network: &PublicKey, plaintext: &[u8], fresh: &Fresh) -> Result<Vec<u8>, EnvelopeError> {
    let eph = SecretKey::from(fresh.ephemeral);
    let sealed =
        SalsaBox::new(network, &eph).encrypt(&fresh.nonce.into(), plaintext).map_err(|_| EnvelopeError::Decrypt)?;
    encode(&Envelope { version: ENVELOPE_VERSION, ephemeral: *eph.public_key().as_bytes(), nonce: fresh.nonce, sealed })
}

/// `data` padded to its size bucket, as sealed plaintexts are. Exposed for
/// fuzzing.
#[doc(hidden)]
pub fn padded(data: &[u8]) -> Vec<u8> {
    pad(data)
}

/// Open and verify a command; returns it with the ephemeral public key
/// that replies must be sealed to.
pub fn open_command(
    network: &SecretKey,
    station: &VerifyingKey,
    bytes: &[u8],
    max: usize,
) -> Result<(Command, PublicKey), EnvelopeError> {
    let env = open_envelope(bytes, max)?;
    let eph_pub = PublicKey::from(env.ephemeral);
    let inner = SalsaBox::new(&eph_pub, network)
        .decrypt(&env.nonce.into(), env.sealed.as_slice())
        .map_err(|_| EnvelopeError::Decrypt)?;
    let signed: Signed = decode(unpad(&inner)?)?;
    let sig = Signature::from_slice(&signed.sig).map_err(|_| EnvelopeError::Signature)?;
    let mut signed_bytes = SIG_DOMAIN.to_vec();
    signed_bytes.extend_from_slice(&env.ephemeral);
    signed_bytes.extend_from_slice(&signed.body);
    station.verify(&signed_bytes, &sig).map_err(|_| EnvelopeError::Signature)?;
    Ok((decode(&signed.body)?, eph_pub))
}

/// The shared key for one command's replies: the agents' side (network
/// secret + the command's ephemeral public key) or the station's side
/// (ephemeral secret + network public key). Built once per command, so a
/// station opening thousands of replies does one key agreement.
#[derive(Clone)]
pub struct ReplyBox {
    inner: std::sync::Arc<SalsaBox>,
    sender: [u8; 32],
}

impl ReplyBox {
    pub fn for_agent(network: &SecretKey, ephemeral: &PublicKey) -> Self {
        ReplyBox {
            inner: std::sync::Arc::new(SalsaBox::new(ephemeral, network)),
            sender: *network.public_key().as_bytes(),
        }
    }

    pub fn for_station(ephemeral: &SecretKey, network: &PublicKey) -> Self {
        ReplyBox { inner: std::sync::Arc::new(SalsaBox::new(network, ephemeral)), sender: *network.as_bytes() }
    }

    /// Seal a reply (agent side).
    pub fn seal(&self, reply: &Reply, nonce: [u8; 24]) -> Result<Vec<u8>, EnvelopeError> {
        self.seal_plaintext(&pad(&encode(reply)?), nonce)
    }

    /// Seal `plaintext` exactly as given (no padding added): what any
    /// holder of the network key can push to a reply list. Exposed for
    /// fuzzing.
    #[doc(hidden)]
    pub fn seal_plaintext(&self, plaintext: &[u8], nonce: [u8; 24]) -> Result<Vec<u8>, EnvelopeError> {
        let sealed = self.inner.encrypt(&nonce.into(), plaintext).map_err(|_| EnvelopeError::Decrypt)?;
        encode(&Envelope { version: ENVELOPE_VERSION, ephemeral: self.sender, nonce, sealed })
    }

    /// Open a reply (station side); it must come from a holder of the
    /// network key and echo `challenge`.
    pub fn open(&self, challenge: &[u8; 32], bytes: &[u8], max: usize) -> Result<Reply, EnvelopeError> {
        let env = open_envelope(bytes, max)?;
        let inner = self.inner.decrypt(&env.nonce.into(), env.sealed.as_slice()).map_err(|_| EnvelopeError::Decrypt)?;
        let reply: Reply = decode(unpad(&inner)?)?;
        if &reply.challenge != challenge {
            return Err(EnvelopeError::Challenge);
        }
        Ok(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cmd() -> Command {
        Command {
            station: "st".into(),
            seq: 7,
            challenge: [9; 32],
            tags: vec!["web".into()],
            agents: vec![],
            reply_to: "muster/c/replies/x".into(),
            fanout: 0,
            slot_wait_ms: 1000,
            heartbeat_ms: 0,
            order: Order::Run(Run {
                id: 1,
                request_id: "r".into(),
                action: "secret-action".into(),
                args: vec!["secret-arg".into()],
                username: "u".into(),
                token: None,
                timeout_ms: None,
                detach: false,
            }),
        }
    }

    fn keys(seed: u8) -> (SigningKey, SecretKey) {
        (SigningKey::from_bytes(&[seed; 32]), SecretKey::from([seed.wrapping_add(1); 32]))
    }

    #[test]
    fn round_trip_and_nothing_in_clear() {
        let (st, net) = keys(1);
        let fresh = Fresh { ephemeral: [3; 32], nonce: [4; 24] };
        let wire = seal_command(&st, &net.public_key(), &cmd(), &fresh).unwrap();
        assert!(!wire.windows(13).any(|w| w == b"secret-action"));
        let mut longer = cmd();
        if let Order::Run(r) = &mut longer.order {
            r.args.push("x".repeat(40));
        }
        let wire2 = seal_command(&st, &net.public_key(), &longer, &fresh).unwrap();
        assert_eq!(wire.len(), wire2.len(), "sizes within one bucket look alike");
        let (got, eph) = open_command(&net, &st.verifying_key(), &wire, 1 << 20).unwrap();
        assert_eq!(got, cmd());
        let reply =
            Reply { challenge: [9; 32], agent: "a1".into(), tags: vec![], seq: 1, message: Message::Pong { id: 1 } };
        let r = ReplyBox::for_agent(&net, &eph).seal(&reply, [5; 24]).unwrap();
        let station = ReplyBox::for_station(&SecretKey::from(fresh.ephemeral), &net.public_key());
        assert_eq!(station.open(&[9; 32], &r, 1 << 20).unwrap(), reply);
        assert_eq!(station.open(&[8; 32], &r, 1 << 20), Err(EnvelopeError::Challenge));
        let (_, other_net) = keys(77);
        let forged = ReplyBox::for_agent(&other_net, &eph).seal(&reply, [5; 24]).unwrap();
        assert_eq!(station.open(&[9; 32], &forged, 1 << 20), Err(EnvelopeError::Decrypt));
    }

    #[test]
    fn other_station_or_network_key_is_refused() {
        let (st, net) = keys(1);
        let (other_st, other_net) = keys(50);
        let fresh = Fresh { ephemeral: [3; 32], nonce: [4; 24] };
        let wire = seal_command(&other_st, &net.public_key(), &cmd(), &fresh).unwrap();
        assert_eq!(open_command(&net, &st.verifying_key(), &wire, 1 << 20).err(), Some(EnvelopeError::Signature));
        let wire = seal_command(&st, &other_net.public_key(), &cmd(), &fresh).unwrap();
        assert_eq!(open_command(&net, &st.verifying_key(), &wire, 1 << 20).err(), Some(EnvelopeError::Decrypt));
    }

    #[test]
    fn sizes_fall_into_buckets() {
        assert_eq!(pad(b"x").len(), 256);
        assert_eq!(pad(&[0; 300]).len(), 1024);
        assert_eq!(unpad(&pad(b"abc")).unwrap(), b"abc");
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let (st, net) = keys(1);
            let _ = open_command(&net, &st.verifying_key(), &bytes, 512);
            let _ = ReplyBox::for_station(&net, &net.public_key()).open(&[0; 32], &bytes, 512);
            let _ = unpad(&bytes);
        }
    }
}
