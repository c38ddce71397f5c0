//! Hub key files: 32 bytes from hex text, or an error naming the file and
//! line, never a panic (the review's input was `0é` and 61 zeros); any
//! 32 bytes become each kind of key without a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use muster::hub::keys::parse32;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let path = Path::new("/k/network.key");
    match parse32(text, path) {
        Ok(bytes) => {
            assert_eq!(parse32(&muster::hexstr::encode(&bytes), path).expect("re-encoded key"), bytes);
            let _ = ed25519_dalek::VerifyingKey::from_bytes(&bytes);
            let _ = ed25519_dalek::SigningKey::from_bytes(&bytes);
            let _ = crypto_box::SecretKey::from(bytes).public_key();
        }
        Err(e) => assert!(e.to_string().starts_with("/k/network.key:")),
    }
});
