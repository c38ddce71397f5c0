//! Arbitrary bytes as a hub command and as a reply: opening must fail
//! cleanly, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use muster::protocol::envelope::{open_command, ReplyBox};

fuzz_target!(|data: &[u8]| {
    let station = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
    let network = crypto_box::SecretKey::from([9; 32]);
    let _ = open_command(&network, &station, data, 1 << 20);
    let rbox = ReplyBox::for_station(&crypto_box::SecretKey::from([3; 32]), &network.public_key());
    let _ = rbox.open(&[0; 32], data, 1 << 20);
});
