//! Hub envelopes whose crypto succeeds, so the layers inside are fuzzed:
//! mode 0 seals arbitrary plaintext to the network key (what any holder of
//! the network key can publish; only a signature the station made, copied
//! from a real command, can make it open), mode 1 puts an arbitrary command
//! body behind a valid station signature, modes 2 and 3 seal arbitrary reply
//! plaintext and padded reply bodies with the reply key. Nothing panics, and
//! whatever opens survives a re-seal unchanged.
#![no_main]
use crypto_box::{PublicKey, SecretKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use libfuzzer_sys::fuzz_target;
use muster::protocol::envelope::{
    open_command, padded, seal_command, seal_command_plaintext, signed_plaintext, Fresh, ReplyBox,
};
use std::sync::OnceLock;

const MAX: usize = 1 << 20;
const CHALLENGE: [u8; 32] = [5; 32];

struct Keys {
    station: SigningKey,
    verifying: VerifyingKey,
    network: SecretKey,
    network_pub: PublicKey,
    ephemeral_pub: PublicKey,
    agent_box: ReplyBox,
    station_box: ReplyBox,
}

const FRESH: Fresh = Fresh { ephemeral: [3; 32], nonce: [4; 24] };

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let station = SigningKey::from_bytes(&[7; 32]);
        let network = SecretKey::from([9; 32]);
        let ephemeral = SecretKey::from(FRESH.ephemeral);
        Keys {
            verifying: station.verifying_key(),
            network_pub: network.public_key(),
            ephemeral_pub: ephemeral.public_key(),
            agent_box: ReplyBox::for_agent(&network, &ephemeral.public_key()),
            station_box: ReplyBox::for_station(&ephemeral, &network.public_key()),
            station,
            network,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, inner)) = data.split_first() else { return };
    let k = keys();
    match mode % 4 {
        0 | 1 => {
            let plain = if mode % 4 == 0 {
                inner.to_vec()
            } else {
                signed_plaintext(&k.station, &k.ephemeral_pub, inner).expect("signing never fails")
            };
            let wire = seal_command_plaintext(&k.network_pub, &plain, &FRESH).expect("sealing never fails");
            if let Ok((cmd, eph)) = open_command(&k.network, &k.verifying, &wire, MAX) {
                assert_eq!(eph, k.ephemeral_pub);
                let again = seal_command(&k.station, &k.network_pub, &cmd, &FRESH).expect("a command re-seals");
                let (back, _) = open_command(&k.network, &k.verifying, &again, MAX).expect("a re-sealed command opens");
                assert_eq!(back, cmd);
            }
        }
        m => {
            let plain = if m == 2 { inner.to_vec() } else { padded(inner) };
            let wire = k.agent_box.seal_plaintext(&plain, [6; 24]).expect("sealing never fails");
            if let Ok(reply) = k.station_box.open(&CHALLENGE, &wire, MAX) {
                let again = k.agent_box.seal(&reply, [6; 24]).expect("a reply re-seals");
                assert_eq!(k.station_box.open(&CHALLENGE, &again, MAX).expect("a re-sealed reply opens"), reply);
            }
        }
    }
});
