//! DKIM signing (RFC 6376, and RFC 8463 for Ed25519): every e-mail the gateway sends
//! carries a `DKIM-Signature` made with `email.dkim`'s private key, so that receivers
//! can tell it really comes from `email.dkim.domain`.
//!
//! lettre signs; this file turns the key an admin has into the one lettre reads, and
//! says which headers are signed and how. Keys come as the usual tools write them:
//!
//! - RSA (`a=rsa-sha256`), at least 1024 bits: PEM in PKCS#1 (`BEGIN RSA PRIVATE KEY`,
//!   `openssl genrsa -traditional`, opendkim-genkey) or PKCS#8 (`BEGIN PRIVATE KEY`,
//!   OpenSSL 3's `genrsa` and `genpkey`);
//! - Ed25519 (`a=ed25519-sha256`): PEM in PKCS#8 (`openssl genpkey -algorithm ed25519`),
//!   or the bare base64 of the 32-byte seed (dkimpy's `dknewkey --ktype ed25519`).
//!
//! There is no DNS lookup here: the public key a receiver will find at
//! `SELECTOR._domainkey.DOMAIN` may be given as `email.dkim.public_key` (the TXT
//! record's text), and the connection check says whether the private key matches it.

use std::{fmt, sync::Arc};

use base64::{engine::general_purpose::STANDARD, Engine};
use lettre::message::{
    dkim::{
        DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm, DkimSigningKey,
    },
    header::HeaderName,
    Message,
};
use rsa::{
    pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey, EncodeRsaPrivateKey, LineEnding},
    pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey, ObjectIdentifier, PrivateKeyInfo},
    traits::PublicKeyParts,
    RsaPrivateKey, RsaPublicKey,
};

/// The headers the signature covers. A header an e-mail lacks is still named, which
/// keeps anyone from adding it later without breaking the signature (RFC 6376 5.4).
/// RFC 8058 wants both `List-Unsubscribe` headers signed for one-click unsubscribe.
/// `Content-Type` and `Content-Transfer-Encoding` are not here: lettre writes them with
/// the body part, where its signer does not see them, so naming them would sign them
/// as absent and every receiver would fail the signature (dkimpy did).
const SIGNED_HEADERS: &[&str] = &[
    "From",
    "Reply-To",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

/// The smallest RSA key receivers accept (RFC 8301 3.2; dkimpy refuses shorter ones).
const MIN_RSA_BITS: usize = 1024;

/// The Ed25519 algorithm's identifier in PKCS#8 (RFC 8410).
const ED25519_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// A public key as DKIM publishes it (`k=` and `p=`).
#[derive(Clone, PartialEq, Eq)]
enum PublicKey {
    Rsa(RsaPublicKey),
    Ed25519([u8; 32]),
}

impl PublicKey {
    /// `k=` of the DNS record.
    fn kind(&self) -> &'static str {
        match self {
            PublicKey::Rsa(_) => "rsa",
            PublicKey::Ed25519(_) => "ed25519",
        }
    }

    /// The TXT record that publishes this key: `v=DKIM1; k=rsa; p=…`.
    fn record(&self) -> String {
        let p = match self {
            // The SubjectPublicKeyInfo, as opendkim-genkey and dkimpy publish it.
            PublicKey::Rsa(key) => key
                .to_public_key_der()
                .map(|der| STANDARD.encode(der.as_bytes()))
                .unwrap_or_default(),
            PublicKey::Ed25519(key) => STANDARD.encode(key),
        };
        format!("v=DKIM1; k={}; p={p}", self.kind())
    }

    /// How the check names the key: `rsa, 2048 bits` or `ed25519`.
    fn describe(&self) -> String {
        match self {
            PublicKey::Rsa(key) => format!("rsa, {} bits", key.n().bits()),
            PublicKey::Ed25519(_) => "ed25519".into(),
        }
    }
}

/// `email.dkim`, checked and ready: the signer, and what the check compares.
#[derive(Clone)]
pub struct Dkim {
    /// `d=`: the domain the signature speaks for.
    pub domain: String,
    /// `s=`: the selector, the key's name under `_domainkey.DOMAIN`.
    pub selector: String,
    config: Arc<DkimConfig>,
    /// The public half of the private key.
    public: PublicKey,
    /// `email.dkim.public_key`, when the admin gave it.
    published: Option<PublicKey>,
}

/// Names the domain, selector and kind of key; the private key is `[redacted]`, as
/// every secret of the settings is.
impl fmt::Debug for Dkim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dkim")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("key", &self.public.kind())
            .field("private_key", &crate::secret::Secret::default())
            .finish()
    }
}

/// Which setting was at fault, and why, for the settings error that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DkimError {
    /// The private key cannot be used; the reason never quotes the key.
    PrivateKey(String),
    /// `email.dkim.public_key` is not a DKIM public key.
    PublicKey(String),
    Domain(String),
    Selector(String),
}

impl Dkim {
    /// The signer for `domain` and `selector` with `private_key` (the key's text, as
    /// read from its file or given as a secret), and the public key to compare with.
    pub fn new(
        domain: &str,
        selector: &str,
        private_key: &str,
        public_key: Option<&str>,
    ) -> Result<Dkim, DkimError> {
        check_name(domain).map_err(|e| DkimError::Domain(format!("`{domain}` is not a domain name: {e}")))?;
        if !domain.contains('.') {
            return Err(DkimError::Domain(format!(
                "`{domain}` is not a domain name: it has no dot"
            )));
        }
        check_name(selector)
            .map_err(|e| DkimError::Selector(format!("`{selector}` cannot be a selector: {e}")))?;
        let (key, public) = signing_key(private_key).map_err(DkimError::PrivateKey)?;
        let published = public_key
            .map(parse_record)
            .transpose()
            .map_err(DkimError::PublicKey)?;
        let config = DkimConfig::new(
            selector.to_string(),
            domain.to_string(),
            key,
            SIGNED_HEADERS
                .iter()
                .map(|name| HeaderName::new_from_ascii_str(name))
                .collect(),
            // Relaxed on both: relays that re-fold a header or trim trailing spaces
            // leave the signature valid.
            DkimCanonicalization {
                header: DkimCanonicalizationType::Relaxed,
                body: DkimCanonicalizationType::Relaxed,
            },
        );
        Ok(Dkim {
            domain: domain.to_string(),
            selector: selector.to_string(),
            config: Arc::new(config),
            public,
            published,
        })
    }

    /// Adds the `DKIM-Signature` header to `message`, which must be complete: a
    /// signed header or body changed after this breaks the signature.
    pub fn sign(&self, message: &mut Message) {
        message.sign(&self.config);
    }

    /// Whether the private key matches `email.dkim.public_key`: `Ok` with what was
    /// found, or `Err` with what is wrong and what to publish instead. Without a
    /// public key to compare with, `Ok` saying what to publish.
    pub fn check(&self) -> Result<String, String> {
        let name = format!("{}._domainkey.{}", self.selector, self.domain);
        match &self.published {
            None => Ok(format!(
                "e-mails are signed for d={} s={} ({}); email.dkim.public_key is not set, so \
                 nothing to compare: receivers look up the TXT record {name}, which should be \
                 \"{}\"",
                self.domain,
                self.selector,
                self.public.describe(),
                self.public.record()
            )),
            Some(published) if *published == self.public => Ok(format!(
                "the private key matches email.dkim.public_key ({}); e-mails are signed for d={} s={}",
                self.public.describe(),
                self.domain,
                self.selector
            )),
            Some(published) => Err(format!(
                "the private key does not match email.dkim.public_key (a {} key): receivers \
                 that find that key at {name} will fail every signature; publish \"{}\" \
                 there, or set the private key that belongs to the published one",
                published.describe(),
                self.public.record()
            )),
        }
    }
}

/// A domain or selector: dot-separated labels of letters, digits, `-` and `_`.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".into());
    }
    if name.split('.').any(str::is_empty) {
        return Err("it has an empty label".into());
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        Some(c) => Err(format!("{c:?} is not allowed (letters, digits, -, _ and . are)")),
        None => Ok(()),
    }
}

/// The key lettre signs with and its public half, from the key's text.
fn signing_key(text: &str) -> Result<(DkimSigningKey, PublicKey), String> {
    let text = text.trim();
    let Some(label) = pem_label(text) else {
        // Not PEM: the base64 of an Ed25519 seed, as dkimpy writes it.
        let seed = STANDARD
            .decode(text.split_whitespace().collect::<String>())
            .ok()
            .filter(|bytes| bytes.len() == 32)
            .ok_or("is neither a PEM key (-----BEGIN …) nor the base64 of a 32-byte Ed25519 key")?;
        return ed25519(&seed);
    };
    match label {
        "RSA PRIVATE KEY" => {
            let key = RsaPrivateKey::from_pkcs1_pem(text)
                .map_err(|e| format!("is not a readable RSA private key (PKCS#1): {e}"))?;
            rsa(&key)
        }
        "PRIVATE KEY" => {
            let der = pem_body(text)?;
            let info = PrivateKeyInfo::try_from(der.as_slice())
                .map_err(|e| format!("is not a readable PKCS#8 private key: {e}"))?;
            if info.algorithm.oid == ED25519_OID {
                // The key is an OCTET STRING holding the 32-byte seed (RFC 8410 7).
                match info.private_key {
                    [0x04, 0x20, seed @ ..] if seed.len() == 32 => ed25519(seed),
                    _ => Err("holds an Ed25519 key of the wrong length".into()),
                }
            } else {
                let key = RsaPrivateKey::from_pkcs8_der(&der).map_err(|e| {
                    format!(
                        "is a PKCS#8 key of algorithm {}, neither RSA nor Ed25519 ({e}): DKIM \
                         signs with those two",
                        info.algorithm.oid
                    )
                })?;
                rsa(&key)
            }
        }
        "ENCRYPTED PRIVATE KEY" => Err("is encrypted: give the key without a passphrase".into()),
        other => Err(format!(
            "is a PEM \"{other}\", not an RSA or Ed25519 private key: DKIM signs with those two"
        )),
    }
}

fn rsa(key: &RsaPrivateKey) -> Result<(DkimSigningKey, PublicKey), String> {
    let bits = key.n().bits();
    if bits < MIN_RSA_BITS {
        return Err(format!(
            "is an RSA key of {bits} bits: receivers ignore signatures by keys under \
             {MIN_RSA_BITS} bits (2048 is usual)"
        ));
    }
    // lettre reads PKCS#1 only.
    let pkcs1 = key
        .to_pkcs1_pem(LineEnding::LF)
        .map_err(|e| format!("cannot be re-encoded for signing: {e}"))?;
    let signing = DkimSigningKey::new(&pkcs1, DkimSigningAlgorithm::Rsa)
        .map_err(|e| format!("is not usable for signing: {e}"))?;
    Ok((signing, PublicKey::Rsa(RsaPublicKey::from(key))))
}

fn ed25519(seed: &[u8]) -> Result<(DkimSigningKey, PublicKey), String> {
    let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(seed)
        .map_err(|e| format!("is not a usable Ed25519 key: {e}"))?;
    let public: [u8; 32] = ring::signature::KeyPair::public_key(&pair)
        .as_ref()
        .try_into()
        .map_err(|_| "is not a usable Ed25519 key".to_string())?;
    let signing = DkimSigningKey::new(&STANDARD.encode(seed), DkimSigningAlgorithm::Ed25519)
        .map_err(|e| format!("is not usable for signing: {e}"))?;
    Ok((signing, PublicKey::Ed25519(public)))
}

/// `X` of a PEM text's first line `-----BEGIN X-----`.
fn pem_label(text: &str) -> Option<&str> {
    text.lines()
        .next()?
        .trim()
        .strip_prefix("-----BEGIN ")?
        .strip_suffix("-----")
}

/// The bytes between a PEM text's BEGIN and END lines.
fn pem_body(text: &str) -> Result<Vec<u8>, String> {
    let base64: String = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with("-----"))
        .collect();
    STANDARD
        .decode(base64)
        .map_err(|e| format!("is a PEM text whose body is not base64: {e}"))
}

/// `email.dkim.public_key`: the TXT record (`v=DKIM1; k=rsa; p=…`, quotes and the
/// breaks between DNS strings allowed), or its `p=` value alone (RSA then).
fn parse_record(text: &str) -> Result<PublicKey, String> {
    let text: String = text.chars().filter(|c| *c != '"').collect();
    let mut kind = "rsa".to_string();
    let mut p = None;
    if text.contains('=') && text.contains("p=") {
        for tag in text.split(';') {
            let Some((name, value)) = tag.split_once('=') else {
                continue;
            };
            let value: String = value.split_whitespace().collect();
            match name.trim() {
                "k" => kind = value,
                "p" => p = Some(value),
                _ => {}
            }
        }
    } else {
        p = Some(text.split_whitespace().collect());
    }
    let p = p.ok_or("has no p= tag (the public key)")?;
    if p.is_empty() {
        return Err("has an empty p=: that record revokes the key".into());
    }
    let bytes = STANDARD
        .decode(&p)
        .map_err(|e| format!("p= is not base64: {e}"))?;
    match kind.as_str() {
        "rsa" => RsaPublicKey::from_public_key_der(&bytes)
            .or_else(|_| RsaPublicKey::from_pkcs1_der(&bytes))
            .map(PublicKey::Rsa)
            .map_err(|e| format!("p= is not an RSA public key: {e}")),
        "ed25519" => bytes
            .try_into()
            .map(PublicKey::Ed25519)
            .map_err(|_| "p= is not an Ed25519 public key (32 bytes)".to_string()),
        other => Err(format!(
            "k={other} is not a key type DKIM signs with (rsa, ed25519)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Test keys, generated once with OpenSSL 3 (tests/dkim/README.md says how).
    const RSA_PKCS8: &str = include_str!("../../../tests/dkim/rsa2048.pem");
    const RSA_PKCS1: &str = include_str!("../../../tests/dkim/rsa2048-pkcs1.pem");
    const RSA_PUBLIC: &str = include_str!("../../../tests/dkim/rsa2048.txt");
    const OTHER_RSA_PUBLIC: &str = include_str!("../../../tests/dkim/other-rsa2048.txt");
    const ED25519_PKCS8: &str = include_str!("../../../tests/dkim/ed25519.pem");
    const ED25519_SEED: &str = include_str!("../../../tests/dkim/ed25519.seed");
    const ED25519_PUBLIC: &str = include_str!("../../../tests/dkim/ed25519.txt");
    const RSA_512: &str = include_str!("../../../tests/dkim/rsa512.pem");
    const EC: &str = include_str!("../../../tests/dkim/ec.pem");

    fn message() -> Message {
        Message::builder()
            .from("shop@example.com".parse().unwrap())
            .to("ann@example.org".parse().unwrap())
            .subject("Hello")
            .body("Hi Ann\r\n".to_string())
            .unwrap()
    }

    fn signature(dkim: &Dkim) -> String {
        let mut message = message();
        dkim.sign(&mut message);
        let text = String::from_utf8(message.formatted()).unwrap();
        text.lines()
            .skip_while(|l| !l.starts_with("DKIM-Signature:"))
            .take_while(|l| !l.is_empty())
            .take_while(|l| l.starts_with("DKIM-Signature:") || l.starts_with([' ', '\t']))
            .collect()
    }

    #[test]
    fn an_rsa_key_in_either_pem_form_signs_and_matches_its_record() {
        for key in [RSA_PKCS8, RSA_PKCS1] {
            let dkim = Dkim::new("example.com", "s2048", key, Some(RSA_PUBLIC)).unwrap();
            let header = signature(&dkim);
            for tag in ["a=rsa-sha256", "d=example.com", "s=s2048", "c=relaxed/relaxed"] {
                assert!(header.contains(tag), "{tag} in {header}");
            }
            assert!(
                header.contains("list-unsubscribe-post"),
                "RFC 8058 wants it signed: {header}"
            );
            let report = dkim.check().unwrap();
            assert!(report.contains("matches"), "{report}");
            assert!(report.contains("2048 bits"), "{report}");
        }
    }

    #[test]
    fn an_ed25519_key_signs_with_ed25519_sha256() {
        for key in [ED25519_PKCS8, ED25519_SEED] {
            let dkim = Dkim::new("example.com", "ed", key, Some(ED25519_PUBLIC)).unwrap();
            assert!(signature(&dkim).contains("a=ed25519-sha256"));
            assert!(dkim.check().unwrap().contains("matches"));
        }
        // Without a record to compare with, the check says which one to publish.
        let dkim = Dkim::new("example.com", "ed", ED25519_PKCS8, None).unwrap();
        let report = dkim.check().unwrap();
        assert!(report.contains("ed._domainkey.example.com"), "{report}");
        assert!(report.contains(ED25519_PUBLIC.trim()), "{report}");
    }

    #[test]
    fn a_key_that_is_not_the_published_one_is_reported_with_the_record_to_publish() {
        let dkim = Dkim::new("example.com", "s2048", RSA_PKCS8, Some(OTHER_RSA_PUBLIC)).unwrap();
        let report = dkim.check().unwrap_err();
        assert!(report.contains("does not match"), "{report}");
        assert!(report.contains("s2048._domainkey.example.com"), "{report}");
        assert!(
            report.contains(RSA_PUBLIC.trim()),
            "names the record that matches: {report}"
        );
        let ed = Dkim::new("example.com", "s2048", ED25519_PKCS8, Some(RSA_PUBLIC)).unwrap();
        assert!(ed.check().unwrap_err().contains("a rsa, 2048 bits key"));
    }

    #[test]
    fn unusable_keys_are_refused_with_the_reason_and_never_quoted() {
        let refused = |key: &str| match Dkim::new("example.com", "s", key, None) {
            Err(DkimError::PrivateKey(reason)) => reason,
            other => panic!("{other:?}"),
        };
        assert!(refused(RSA_512).contains("512 bits"));
        assert!(refused(EC).contains("neither RSA nor Ed25519"), "{}", refused(EC));
        assert!(refused("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n").contains("encrypted"));
        assert!(refused("hunter2 secret").contains("neither a PEM key"));
        let broken = RSA_PKCS1.replace("MII", "XII");
        let reason = refused(&broken);
        assert!(reason.contains("RSA private key"), "{reason}");
        for line in RSA_PKCS1.lines().skip(1).take(3) {
            assert!(!reason.contains(line), "quotes the key: {reason}");
        }
    }

    #[test]
    fn a_bad_domain_selector_or_public_key_is_named() {
        let new = |domain, selector, public| Dkim::new(domain, selector, RSA_PKCS8, public).unwrap_err();
        assert!(matches!(new("example", "s", None), DkimError::Domain(_)));
        assert!(matches!(new("exa mple.com", "s", None), DkimError::Domain(_)));
        assert!(matches!(
            new("example.com", "s;x=1", None),
            DkimError::Selector(_)
        ));
        assert!(matches!(new("example.com", "", None), DkimError::Selector(_)));
        let DkimError::PublicKey(reason) = new("example.com", "s", Some("v=DKIM1; k=rsa; p=")) else {
            panic!()
        };
        assert!(reason.contains("revokes"), "{reason}");
        assert!(matches!(
            new("example.com", "s", Some("v=DKIM1; p=bm90IGEga2V5")),
            DkimError::PublicKey(_)
        ));
    }

    #[test]
    fn a_record_split_into_quoted_dns_strings_is_read() {
        let (head, tail) = RSA_PUBLIC.trim().split_at(60);
        let split = format!("\"{head}\" \"{tail}\"");
        let dkim = Dkim::new("example.com", "s", RSA_PKCS8, Some(&split)).unwrap();
        assert!(dkim.check().unwrap().contains("matches"));
        let p_only = RSA_PUBLIC.trim().rsplit("p=").next().unwrap();
        let dkim = Dkim::new("example.com", "s", RSA_PKCS8, Some(p_only)).unwrap();
        assert!(dkim.check().unwrap().contains("matches"));
    }

    #[test]
    fn debug_never_shows_the_key() {
        let dkim = Dkim::new("example.com", "s", RSA_PKCS1, None).unwrap();
        let shown = format!("{dkim:?}");
        assert_eq!(
            shown,
            "Dkim { domain: \"example.com\", selector: \"s\", key: \"rsa\", private_key: [redacted] }"
        );
    }
}
