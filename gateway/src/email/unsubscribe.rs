//! Unsubscribe links (RFC 8058 one-click): `{email.public_url}/u/{token}`, one per
//! recipient of a mailing.
//!
//! The token is the recipient's address and the mailing's id sealed with
//! ChaCha20-Poly1305 (ring) under a key derived from a random secret the store keeps
//! (so every gateway sharing the store, and every restart, reads every link), with a
//! random nonce: it names no address in clear, and any token not made with the key
//! (guessed, altered, cut) fails to open. It is not stored anywhere: the link works as
//! long as the key does, however long the mailing's messages are kept.
//!
//! What a link does is the API's (`/u/{token}`): a visit shows a page with a button,
//! a POST (the button, or a mail client's one-click) puts the address on the
//! suppression list.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use ring::{
    aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN},
    rand::{SecureRandom, SystemRandom},
};
use sha2::{Digest, Sha256};

/// Bound into every token, so a token cannot be taken for anything else sealed with a
/// key derived from the same secret.
const PURPOSE: &[u8] = b"gateway unsubscribe link v1";

/// The key links are sealed and opened with.
pub struct UnsubscribeKey {
    key: LessSafeKey,
}

impl std::fmt::Debug for UnsubscribeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnsubscribeKey([redacted])")
    }
}

/// Who a link is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscriber {
    /// As the suppression list keeps it.
    pub address: String,
    /// The mailing the link came with.
    pub mailing_id: String,
}

impl UnsubscribeKey {
    /// The key derived from the store's secret (see [`new_secret`]).
    pub fn from_secret(secret: &str) -> UnsubscribeKey {
        let digest = Sha256::new()
            .chain_update(PURPOSE)
            .chain_update(b"\n")
            .chain_update(secret.as_bytes())
            .finalize();
        let key = UnboundKey::new(&CHACHA20_POLY1305, &digest).expect("a 32-byte key");
        UnsubscribeKey {
            key: LessSafeKey::new(key),
        }
    }

    /// A token for `who`.
    pub fn seal(&self, who: &Unsubscriber) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .expect("the system's random source works");
        let mut sealed = format!("{}\n{}", who.address, who.mailing_id).into_bytes();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(PURPOSE),
                &mut sealed,
            )
            .expect("a short plaintext seals");
        let mut token = nonce.to_vec();
        token.extend(sealed);
        URL_SAFE_NO_PAD.encode(token)
    }

    /// Who `token` is for, or `None` for a token this key did not make.
    pub fn open(&self, token: &str) -> Option<Unsubscriber> {
        let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
        if bytes.len() <= NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut sealed = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(PURPOSE), &mut sealed)
            .ok()?;
        let (address, mailing_id) = std::str::from_utf8(plain).ok()?.split_once('\n')?;
        Some(Unsubscriber {
            address: address.to_string(),
            mailing_id: mailing_id.to_string(),
        })
    }
}

/// A new random secret for the store to keep: 32 bytes, hex.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system's random source works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann() -> Unsubscriber {
        Unsubscriber {
            address: "ann@example.org".into(),
            mailing_id: "0197-mailing".into(),
        }
    }

    #[test]
    fn a_token_opens_to_who_it_was_made_for_and_names_no_address() {
        let key = UnsubscribeKey::from_secret(&new_secret());
        let token = key.seal(&ann());
        assert!(!token.contains("ann"), "{token}");
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(key.open(&token), Some(ann()));
        assert_ne!(key.seal(&ann()), token, "a fresh nonce each time");
    }

    #[test]
    fn an_altered_or_foreign_token_does_not_open() {
        let key = UnsubscribeKey::from_secret("one secret");
        let token = key.seal(&ann());
        let other = UnsubscribeKey::from_secret("another secret");
        assert_eq!(other.open(&token), None, "another store's key");
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        for i in [0, NONCE_LEN, bytes.len() - 1] {
            bytes[i] ^= 1;
            assert_eq!(
                key.open(&URL_SAFE_NO_PAD.encode(&bytes)),
                None,
                "byte {i} flipped"
            );
            bytes[i] ^= 1;
        }
        for forged in ["", "x", "AAAA", &token[..token.len() - 4], "not base64!"] {
            assert_eq!(key.open(forged), None, "{forged:?}");
        }
    }
}
