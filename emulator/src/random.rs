//! Random secrets and ids.

use base64::Engine as _;
use rsa::rand_core::{OsRng, RngCore as _};

pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    OsRng.fill_bytes(&mut b);
    b
}

pub(crate) fn random_hex(n_bytes: usize) -> String {
    let mut b = vec![0u8; n_bytes];
    OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A random access key shaped like Azure's (base64 of 32 bytes) that contains `+`, `/` and `=`,
/// so that parsers of both connection string syntaxes get exercised.
pub(crate) fn random_access_key() -> String {
    loop {
        let k = base64::engine::general_purpose::STANDARD.encode(random_bytes::<32>());
        if k.contains('+') && k.contains('/') {
            return k;
        }
    }
}
